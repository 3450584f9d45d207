/// One line of the admin protocol, parsed. See README, "Admin socket", for the wire format.
///
/// Backends are named `SERVICE/HOST:PORT`, or `HOST:PORT` exactly as they were added where that
/// is unambiguous; the parser checks the syntax and `AdminController` looks the name up.
public enum AdminCommand: Sendable, Equatable {
    case help
    /// `show backends [SERVICE] [json]`; nil: every service.
    case showBackends(service: String?, json: Bool)
    case showServices(json: Bool)
    case showStats(json: Bool)
    /// `show sources [SERVICE] [json]`: the busiest sources of the per-client controls.
    case showSources(service: String?, json: Bool)
    /// `show certificates [json]`: the terminating services' certificates.
    case showCertificates(json: Bool)
    case drain(BackendName)
    case ready(BackendName)
    case maint(BackendName)
    case weight(BackendName, Int)
    /// `add [SERVICE/]HOST:PORT[,weight=N]`.
    case add(service: String?, BackendSpec)
    case remove(BackendName)
    /// Wait until the backend has no open connections, or the timeout passes.
    case wait(BackendName, Duration)
    /// Close the backend's open connections now.
    case shutdown(BackendName)
    /// Read the configuration file again and apply what changed.
    case reload
    /// `instance drain` / `instance ready`: this instance's own readiness (`/healthz`).
    case instance(InstanceReadinessChange)
    /// Internal: a new process taking over asks for the listeners (`takeover`), then tells this
    /// one to stop accepting (`takeover commit`). See `TakeoverStep`.
    case takeover(TakeoverStep)

    /// The longest `wait` timeout accepted.
    public static let maximumWait = Duration.seconds(3600)

    /// Usage lines, also the body of the `help` reply.
    public static let usage: [String] = [
        "help                          this list",
        "show backends [SERVICE] [json]  backends (of one service): state, health, weight, connections, bytes",
        "show services [json]          every service: listeners, algorithm, backends, connections",
        "show stats [json]             process totals: uptime, workers, connections, bytes",
        "show sources [SERVICE] [json]  busiest client sources: open connections, connection rate, refusals",
        "show certificates [json]      TLS certificates in use: names, issuer, not-after, services",
        "drain BACKEND                 no new connections; open ones finish",
        "ready BACKEND                 take new connections again (after drain or maint)",
        "maint BACKEND                 no new connections and no health checks",
        "weight BACKEND N              set the weight, 0 to \(BackendSpec.maximumWeight)",
        "add BACKEND[,weight=N]        add a backend (it is health checked before it is trusted)",
        "remove BACKEND                remove a backend that has no open connections",
        "wait BACKEND TIMEOUT          reply when the backend has no open connections (e.g. wait h:80 30s)",
        "shutdown BACKEND              close every open connection to the backend now",
        "reload                        re-read the configuration file and apply the difference",
        "instance drain                /healthz answers 503 so a router withdraws this instance; it keeps relaying",
        "instance ready                /healthz answers as the backends allow again",
        "BACKEND is [SERVICE/]HOST:PORT as given at startup or to add, e.g. pg/10.0.0.5:5432 or [::1]:8080;",
        "the service may be left out where only one service has that backend",
    ]

    /// Parses one line without its newline (a trailing `\r` is ignored, for `nc -C` and telnet).
    /// Words are separated by spaces or tabs. Throws an `AdminCommandError` whose message is
    /// sent to the operator as is.
    public init(parsing line: String) throws(AdminCommandError) {
        var text = Substring(line)
        if text.hasSuffix("\r") { text = text.dropLast() }
        guard text.unicodeScalars.allSatisfy({ $0 == "\t" || (0x20..<0x7F).contains($0.value) }) else {
            throw AdminCommandError("the line holds bytes that are not printable ASCII; commands are plain text, one per line")
        }
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard let verb = words.first else {
            throw AdminCommandError("empty command; send 'help' for the list")
        }
        let arguments = Array(words.dropFirst())

        func expectArguments(_ count: Int, usage: String) throws(AdminCommandError) {
            guard arguments.count == count else {
                let problem = arguments.count < count ? "missing arguments" : "too many arguments"
                throw AdminCommandError("\(problem); usage: \(usage)")
            }
        }
        func backend(_ text: String) throws(AdminCommandError) -> BackendName {
            do {
                return try BackendName(parsing: text)
            } catch {
                throw AdminCommandError("bad BACKEND: \(error.message)")
            }
        }

        switch verb.lowercased() {
        case "help":
            try expectArguments(0, usage: "help")
            self = .help
        case "show":
            let showUsage = "show backends [SERVICE] [json], show services [json], show stats [json], show sources [SERVICE] [json] or show certificates [json]"
            guard let what = arguments.first?.lowercased() else {
                throw AdminCommandError("missing arguments; usage: \(showUsage)")
            }
            var rest = Array(arguments.dropFirst())
            let json = rest.last?.lowercased() == "json"
            if json { rest.removeLast() }
            switch what {
            case "backends", "sources":
                guard rest.count <= 1 else {
                    throw AdminCommandError("too many arguments; usage: show \(what) [SERVICE] [json]")
                }
                if let service = rest.first, !ServiceConfiguration.isValidName(service) {
                    throw AdminCommandError("'\(service)' is not a service name; usage: show \(what) [SERVICE] [json]")
                }
                self = what == "sources" ? .showSources(service: rest.first, json: json) : .showBackends(service: rest.first, json: json)
            case "services", "stats", "certificates":
                if let extra = rest.first {
                    throw rest.count == 1 && !json
                        ? AdminCommandError("unknown format '\(extra)'; usage: show \(what) [json]")
                        : AdminCommandError("too many arguments; usage: show \(what) [json]")
                }
                self = what == "stats" ? .showStats(json: json) : what == "certificates" ? .showCertificates(json: json) : .showServices(json: json)
            default:
                throw AdminCommandError("cannot show '\(arguments[0])'; usage: \(showUsage)")
            }
        case "drain":
            try expectArguments(1, usage: "drain BACKEND")
            self = .drain(try backend(arguments[0]))
        case "ready":
            try expectArguments(1, usage: "ready BACKEND")
            self = .ready(try backend(arguments[0]))
        case "maint":
            try expectArguments(1, usage: "maint BACKEND")
            self = .maint(try backend(arguments[0]))
        case "weight":
            try expectArguments(2, usage: "weight BACKEND N")
            let endpoint = try backend(arguments[0])
            do {
                self = .weight(endpoint, try BackendSpec.parseWeight(arguments[1], context: "weight"))
            } catch {
                throw AdminCommandError(error.message)
            }
        case "add":
            try expectArguments(1, usage: "add BACKEND[,weight=N]")
            do {
                let (service, rest) = try BackendName.splitService(arguments[0])
                self = .add(service: service, try BackendSpec(parsing: rest))
            } catch {
                throw AdminCommandError("bad BACKEND: \(error.message)")
            }
        case "remove":
            try expectArguments(1, usage: "remove BACKEND")
            self = .remove(try backend(arguments[0]))
        case "wait":
            try expectArguments(2, usage: "wait BACKEND TIMEOUT")
            let endpoint = try backend(arguments[0])
            let timeout: Duration
            do {
                timeout = try Duration(parsing: arguments[1])
            } catch {
                throw AdminCommandError("bad TIMEOUT: \(error.message)")
            }
            guard timeout <= Self.maximumWait else {
                throw AdminCommandError("bad TIMEOUT: \(arguments[1]) is longer than the limit of \(Self.maximumWait.shortDescription)")
            }
            self = .wait(endpoint, timeout)
        case "shutdown":
            try expectArguments(1, usage: "shutdown BACKEND")
            self = .shutdown(try backend(arguments[0]))
        case "reload":
            try expectArguments(0, usage: "reload")
            self = .reload
        case "instance":
            try expectArguments(1, usage: "instance drain|ready")
            guard let change = InstanceReadinessChange(rawValue: arguments[0].lowercased()) else {
                throw AdminCommandError("unknown instance change '\(arguments[0])'; usage: instance drain|ready")
            }
            self = .instance(change)
        case "takeover":
            self = .takeover(try TakeoverStep(parsing: arguments))
        default:
            throw AdminCommandError("unknown command '\(verb)'; send 'help' for the list")
        }
    }
}

/// Why a command was refused; `message` is the text after `ERROR: `.
public struct AdminCommandError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A backend as the admin protocol names it: `SERVICE/HOST:PORT`, or `HOST:PORT` alone.
public struct BackendName: Hashable, Sendable, CustomStringConvertible {
    /// Nil when the name left the service out.
    public var service: String?
    public var endpoint: Endpoint

    public init(service: String? = nil, endpoint: Endpoint) {
        self.service = service
        self.endpoint = endpoint
    }

    public init(parsing text: String) throws(ConfigError) {
        let (service, rest) = try Self.splitService(text)
        self.init(service: service, endpoint: try Endpoint(parsing: rest))
    }

    /// Splits `SERVICE/REST` (the service must be a valid name) from `REST` alone.
    public static func splitService(_ text: String) throws(ConfigError) -> (String?, String) {
        guard let slash = text.firstIndex(of: "/") else { return (nil, text) }
        let service = String(text[..<slash])
        guard ServiceConfiguration.isValidName(service) else {
            throw ConfigError("'\(service)' in '\(text)' is not a service name (letters, digits, '_', '.' and '-')")
        }
        return (service, String(text[text.index(after: slash)...]))
    }

    public var description: String {
        service.map { "\($0)/\(endpoint)" } ?? endpoint.description
    }
}
