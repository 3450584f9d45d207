/// One line of the admin protocol, parsed. See README, "Admin socket", for the wire format.
///
/// Backends are named `HOST:PORT` exactly as they were added; the parser checks the syntax and
/// `AdminController` looks the name up.
public enum AdminCommand: Sendable, Equatable {
    case help
    case showBackends(json: Bool)
    case showStats(json: Bool)
    case drain(Endpoint)
    case ready(Endpoint)
    case maint(Endpoint)
    case weight(Endpoint, Int)
    case add(BackendSpec)
    case remove(Endpoint)
    /// Wait until the backend has no open connections, or the timeout passes.
    case wait(Endpoint, Duration)
    /// Close the backend's open connections now.
    case shutdown(Endpoint)

    /// The longest `wait` timeout accepted.
    public static let maximumWait = Duration.seconds(3600)

    /// Usage lines, also the body of the `help` reply.
    public static let usage: [String] = [
        "help                          this list",
        "show backends [json]          every backend: admin state, health, weight, connections, bytes",
        "show stats [json]             process totals: uptime, workers, connections, bytes",
        "drain BACKEND                 no new connections; open ones finish",
        "ready BACKEND                 take new connections again (after drain or maint)",
        "maint BACKEND                 no new connections and no health checks",
        "weight BACKEND N              set the weight, 0 to \(BackendSpec.maximumWeight)",
        "add BACKEND[,weight=N]        add a backend (it is health checked before it is trusted)",
        "remove BACKEND                remove a backend that has no open connections",
        "wait BACKEND TIMEOUT          reply when the backend has no open connections (e.g. wait h:80 30s)",
        "shutdown BACKEND              close every open connection to the backend now",
        "BACKEND is HOST:PORT as given at startup or to add, e.g. 10.0.0.5:8080 or [::1]:8080",
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
        func backend(_ text: String) throws(AdminCommandError) -> Endpoint {
            do {
                return try Endpoint(parsing: text)
            } catch {
                throw AdminCommandError("bad BACKEND: \(error.message)")
            }
        }

        switch verb.lowercased() {
        case "help":
            try expectArguments(0, usage: "help")
            self = .help
        case "show":
            guard let what = arguments.first else {
                throw AdminCommandError("missing arguments; usage: show backends [json] or show stats [json]")
            }
            let json: Bool
            switch arguments.count {
            case 1: json = false
            case 2 where arguments[1].lowercased() == "json": json = true
            case 2: throw AdminCommandError("unknown format '\(arguments[1])'; usage: show \(what) [json]")
            default: throw AdminCommandError("too many arguments; usage: show \(what) [json]")
            }
            switch what.lowercased() {
            case "backends": self = .showBackends(json: json)
            case "stats": self = .showStats(json: json)
            default: throw AdminCommandError("cannot show '\(what)'; usage: show backends [json] or show stats [json]")
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
                self = .add(try BackendSpec(parsing: arguments[0]))
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
