import CSwitchyard
import Glibc
import Logging
import Synchronization
import SwitchyardCore

// Reading the configuration file and resolving the names in it.
extension Instance {
    /// Reads and validates a configuration file; the error names the file, line and column.
    public static func readConfiguration(_ path: String) throws(ConfigError) -> Configuration {
        let text: String
        do {
            guard let contents = try readTextFile(path) else {
                throw ConfigError("\(path): no such file")
            }
            text = contents
        } catch let error as ConfigError {
            throw error
        } catch {
            throw ConfigError("cannot read \(path): \(error)")
        }
        do {
            return try ConfigFile.parse(text, file: path)
        } catch {
            throw ConfigError(error.description)
        }
    }

    /// `service` with every backend's host resolved to an address.
    static func resolved(_ service: ServiceConfiguration) throws(ConfigError) -> ServiceConfiguration {
        var copy = service
        for index in copy.backends.indices {
            do {
                copy.backends[index].endpoint = try resolve(copy.backends[index].endpoint)
            } catch {
                throw ConfigError("service \(service.name): \(error.message)")
            }
        }
        return copy
    }

    /// Loads every terminating service's certificates and keys as a start would (readable, not
    /// encrypted, key matching certificate, chain in order, cipher strings OpenSSL knows), and
    /// finds expired certificates (which a start only warns about); one message per problem.
    public static func tlsProblems(_ configuration: Configuration) -> [String] {
        var problems: [String] = []
        for service in configuration.services {
            do {
                if let context = try tlsContext(of: service) { problems += expiryWarnings(context, service: service.name) }
            } catch {
                problems.append(error.message)
            }
        }
        do {
            _ = try BackendTLSContexts.make(configuration)  // TLS to backends: their CA, cert and key files
        } catch {
            problems.append(error.message)
        }
        return problems
    }

    /// One line per expired certificate of `context`.
    static func expiryWarnings(_ context: TLSServerContext, service: String) -> [String] {
        let now = secondsSinceEpoch()
        return context.certificates.compactMap { certificate in
            guard let notAfter = certificate.notAfter, notAfter <= now else { return nil }
            return "service \(service): tls: certificate \(certificate.path) \(CertificateExpiry.describe(notAfter: notAfter, now: now)): clients will refuse it"
        }
    }

    /// Checks that every name in `configuration` resolves; returns one message per failure.
    public static func resolutionProblems(_ configuration: Configuration) -> [String] {
        var problems: [String] = []
        for service in configuration.services {
            var endpoints = service.listen + service.backends.map(\.endpoint)
            if case let .addresses(name, port)? = service.discovery { endpoints.append(Endpoint(host: name, port: port)) }
            for endpoint in endpoints {
                do {
                    _ = try resolve(endpoint)
                } catch {
                    problems.append("service \(service.name): \(error.message)")
                }
            }
        }
        return problems
    }
}
