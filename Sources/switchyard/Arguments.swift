import ArgumentParser
import Logging
import SwitchyardCore
import SwitchyardIO

extension RelayMode: ExpressibleByArgument {}
extension BalanceAlgorithm: ExpressibleByArgument {}

extension LogLevel: ExpressibleByArgument {}

/// Parsers for option values, each throwing a `ConfigError` that names the bad value.
enum ArgumentValue {
    static func endpoint(_ text: String) throws -> Endpoint {
        try Endpoint(parsing: text, allowPortZero: true)
    }

    static func backend(_ text: String) throws -> BackendSpec {
        try BackendSpec(parsing: text)
    }

    static func duration(_ text: String) throws -> Duration {
        try Duration(parsing: text)
    }

    static func positiveDuration(_ text: String) throws -> Duration {
        let value = try Duration(parsing: text)
        guard value > .zero else { throw ConfigError("'\(text)' must be longer than 0") }
        return value
    }
}

extension HealthCheckConfig.ExpectMatch: ExpressibleByArgument {}
extension HealthCheckType.Kind: ExpressibleByArgument {}

extension AccessLogFormat: ExpressibleByArgument {}
