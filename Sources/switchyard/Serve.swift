import ArgumentParser
import Glibc
import Logging
import SwitchyardCore
import SwitchyardIO

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Accept TCP connections and relay each to a backend.",
        discussion: """
        BACKEND is HOST:PORT[,weight=N]; write IPv6 addresses as [ADDR]:PORT. Durations take a \
        unit: 500ms, 2s, 1m.
        """
    )

    @Option(name: .customLong("listen"), help: ArgumentHelp(
        "Address to accept clients on, as HOST:PORT; repeat the option to listen on several.",
        valueName: "HOST:PORT"), transform: ArgumentValue.endpoint)
    var listen: [Endpoint] = []

    @Option(help: ArgumentHelp("Read services and settings from this YAML file (README, \"Configuration file\"); SIGHUP or 'switchyard admin reload' reads it again.", valueName: "FILE"))
    var config: String?

    @Option(help: "Worker threads, each with its own io_uring ring and listener. Defaults to one per online CPU.")
    var workers: Int?

    @Option(help: "How bytes move: copy (provided buffers), splice (zero copy through pipes) or auto (copy, then splice once a direction streams). Default: auto.")
    var relay: RelayMode?

    @Option(help: "How a backend is chosen for each new client. Default: round-robin.")
    var balance: BalanceAlgorithm?

    @OptionGroup
    var serviceOptions: ServiceOptions

    @OptionGroup(title: "Per-client controls")
    var clientControls: ClientControlOptions

    @Option(help: "Most client connections open at once; further clients are closed at once. Defaults to what the descriptor limit allows.")
    var maxConnections: Int?

    @Option(help: ArgumentHelp("After SIGTERM or SIGINT, how long open connections may continue before they are closed. Default: 30s.", valueName: "D"),
            transform: ArgumentValue.duration)
    var shutdownGrace: Duration?

    @Option(help: ArgumentHelp("After SIGTERM or SIGINT, how long /healthz answers 503 while the instance still accepts, so that a router polling it withdraws the instance before it stops accepting. Default: 0s.", valueName: "D"),
            transform: ArgumentValue.duration)
    var withdrawDelay: Duration?

    @Option(help: ArgumentHelp("Size of one receive buffer of the copy relay, in KiB (4 to 1024); each worker has --buffers of them. Default: 64.", valueName: "KiB"))
    var bufferSize: Int?

    @Option(help: "Receive buffers per worker, a power of two from 16 to 32768. Memory is only used once a buffer has been filled. Default: 1024.")
    var buffers: Int?

    @Option(help: ArgumentHelp("Size each splice pipe is grown to with F_SETPIPE_SZ, in KiB (64 to 16384). Default: 1024.", valueName: "KiB"))
    var pipeSize: Int?

    @Option(help: ArgumentHelp("Most memory one worker may hold, in MiB (1 to 65536), of stalled clients' bytes moved out of its shared receive buffers; past it a stalled direction keeps its buffers. Default: 64, or the buffer pool's size if larger.", valueName: "MiB"))
    var parkedMemory: Int?

    @Option(help: "Lowest level of log line written to standard error. Default: info.")
    var logLevel: LogLevel?

    @Option(help: ArgumentHelp("Serve Prometheus metrics (GET /metrics) and a health check (GET /healthz) on this address. Off by default.", valueName: "HOST:PORT"),
            transform: ArgumentValue.endpoint)
    var metrics: Endpoint?

    @Option(help: ArgumentHelp("Serve the live status page (GET /) and its data (GET /status.json) on this address; it may be the --metrics address. Off by default.", valueName: "HOST:PORT"),
            transform: ArgumentValue.endpoint)
    var status: Endpoint?

    @Flag(help: "Let the status page drain, ready, maint and reweight backends (POST requests carrying the token of --status-admin-token-file, from --status-admin-from). Off by default: the page is read-only.")
    var statusAdmin = false

    @Option(help: ArgumentHelp("File whose first line is the token a status page action must carry (needed by --status-admin); read at each action, so it can be replaced while running.", valueName: "PATH"))
    var statusAdminTokenFile: String?

    @Option(help: ArgumentHelp("Client address block the status page's actions are accepted from (repeatable). Default: loopback only.", valueName: "CIDR"),
            transform: { (text: String) throws -> CIDR in try CIDR(parsing: text) })
    var statusAdminFrom: [CIDR] = []

    @Option(help: ArgumentHelp("Write one line per closed connection to stderr or to this file (reopened on SIGUSR1). Off by default.", valueName: "stderr|PATH"))
    var accessLog: String?

    @Option(help: "Access log lines as text (like HAProxy's tcplog) or json. Default: text.")
    var accessLogFormat: AccessLogFormat?

    @Option(help: ArgumentHelp("Keep changes made through the admin socket (drain, maint, weight, add, remove) in this file and re-apply them at start and after a reload.", valueName: "PATH"))
    var stateFile: String?

    @OptionGroup
    var healthOptions: HealthOptions

    @Option(help: ArgumentHelp("Path of the admin UNIX socket, or off for none (as --no-admin-socket). Defaults to /run/switchyard/admin.sock for root (the directory is made with mode 0700) and to $XDG_RUNTIME_DIR/switchyard.sock for other users; without XDG_RUNTIME_DIR another user must give a path.", valueName: "PATH"))
    var adminSocket: String?

    @Option(help: ArgumentHelp("Permission bits of the admin socket files, in octal (connecting needs write permission): 0660 lets the socket's group connect. Peers that are neither this user nor root may only use show and help. Default: 0600.", valueName: "MODE"),
            transform: { (text: String) throws -> UInt32 in try AdminAccess.parseSocketMode(text) })
    var adminSocketMode: UInt32?

    @Option(help: ArgumentHelp("Group of the admin socket files, by name or gid, for use with --admin-socket-mode. Default: the process's group.", valueName: "GROUP"),
            transform: { (text: String) throws -> String in
                try AdminAccess.checkSocketGroup(text)
                return text
            })
    var adminSocketGroup: String?

    @Option(help: ArgumentHelp("Also serve a second admin socket at this path that answers only show and help (anything else: ERROR: read-only admin socket), for monitoring users; it takes --admin-socket-mode and --admin-socket-group too. Off by default.", valueName: "PATH"))
    var adminSocketReadonly: String?

    @Flag(inversion: .prefixedNo, help: "Spin briefly on each worker's completion queue before it sleeps, while traffic flows (a window of up to 50µs that adapts to the gaps between completions; none when idle): fewer wake-ups for small requests, for some CPU. Default: off.")
    var busyPolling: Bool?

    @Option(help: ArgumentHelp("How long a TLS session ticket key encrypts new tickets before a new one takes over; the previous key still resumes tickets for as long again. Keys are shared by every worker and kept across reload and takeover. Default: 12h.", valueName: "D"),
            transform: ArgumentValue.duration)
    var tlsTicketRotation: Duration?

    @Flag(help: "Do not open the admin socket.")
    var noAdminSocket = false

    @Flag(help: "Take over from the switchyard serving the admin socket (a binary upgrade): receive its listening sockets and admin changes, accept on them, then let it stop accepting and drain. If any step fails, it carries on and this exits non-zero.")
    var takeover = false

    @Argument(help: ArgumentHelp("The backends, as HOST:PORT[,weight=N][,priority=N][,backup][,max-connections=N][,slow-start=D].", valueName: "BACKEND"),
              transform: ArgumentValue.backend)
    var backends: [BackendSpec] = []

    /// Options that describe the one service of the command-line form; with --config the file
    /// says these per service.
    private var serviceOptionsGiven: [String] {
        (balance != nil ? ["--balance"] : []) + (serviceOptions.given + clientControls.givenSettings).map { "--" + $0.key } + healthOptions.given
    }

    func validate() throws {
        if takeover && noAdminSocket {
            throw ValidationError("--takeover reaches the running switchyard through its admin socket; it cannot be used with --no-admin-socket")
        }
        if let config {
            if !backends.isEmpty {
                throw ValidationError("--config \(config) and backends on the command line cannot be mixed: list the backends in the file")
            }
            if !listen.isEmpty {
                throw ValidationError("--config \(config) and --listen cannot be mixed: give each service its listen addresses in the file")
            }
            if let option = serviceOptionsGiven.first {
                throw ValidationError("--config \(config) and \(option) cannot be mixed: set it in the file, per service or under defaults")
            }
            return
        }
        if listen.isEmpty { throw ValidationError("--listen HOST:PORT is required (or --config FILE)") }
        if backends.isEmpty { throw ValidationError("at least one BACKEND (HOST:PORT) is required") }
        if serviceOptions.given.contains(where: { $0.key == "accept-proxy-from" }) && !serviceOptions.acceptProxy {
            throw ValidationError("--accept-proxy-from limits who may send a PROXY header: it needs --accept-proxy")
        }
        do {
            try commandLineConfiguration().validate()
        } catch {
            throw ValidationError(Self.flagMessage(error))
        }
    }

    /// A validation message as the command line names things: `--workers 0 ...` for a global key.
    static func flagMessage(_ issue: ConfigIssue) -> String {
        if issue.path.count == 1, case let .key(key) = issue.path[0], issue.message.hasPrefix(key) {
            return "--" + issue.message
        }
        return issue.message
    }

    /// The global settings the flags give, over `base` (the file's, or the defaults).
    func globalSettings(over base: GlobalSettings) -> GlobalSettings {
        var global = base
        if let workers { global.workers = workers }
        if let relay { global.relay = relay }
        if let maxConnections { global.maxConnections = maxConnections }
        if let shutdownGrace { global.shutdownGrace = shutdownGrace }
        if let withdrawDelay { global.withdrawDelay = withdrawDelay }
        if let bufferSize { global.bufferSize = bufferSize }
        if let buffers { global.buffers = buffers }
        if let pipeSize { global.pipeSize = pipeSize }
        if let parkedMemory { global.parkedMemory = parkedMemory }
        if let logLevel { global.logLevel = logLevel }
        if let stateFile { global.stateFile = stateFile }
        if let metrics { global.metrics = metrics }
        if let status { global.status = status }
        if statusAdmin { global.statusAdmin = true }
        if let statusAdminTokenFile { global.statusAdminTokenFile = statusAdminTokenFile }
        if !statusAdminFrom.isEmpty { global.statusAdminFrom = statusAdminFrom }
        if let accessLog { global.accessLog = accessLog }
        if let accessLogFormat { global.accessLogFormat = accessLogFormat }
        if let size = clientControls.sourceTableSize { global.sourceTableSize = size }
        if let busyPolling { global.busyPolling = busyPolling }
        if let tlsTicketRotation { global.tlsTicketRotation = tlsTicketRotation }
        // `off` means none, as the file's `admin-socket: off` does (a socket named "off" is ./off).
        if let adminSocket {
            if adminSocket == "off" { global.adminSocketEnabled = false } else { global.adminSocket = adminSocket }
        }
        if noAdminSocket { global.adminSocketEnabled = false }
        if let adminSocketMode { global.adminSocketMode = adminSocketMode }
        if let adminSocketGroup { global.adminSocketGroup = adminSocketGroup }
        if let adminSocketReadonly { global.adminSocketReadOnly = adminSocketReadonly }
        return global
    }

    /// The command-line form: one service named `default`.
    func commandLineConfiguration() throws(ConfigIssue) -> Configuration {
        var service = ServiceConfiguration(name: ServiceConfiguration.defaultName, listen: listen, backends: backends)
        if let balance { service.balance = balance }
        service.settings = ServiceSettings(serviceOptions.given + clientControls.givenSettings)
        do {
            service.health = try healthOptions.configuration()
        } catch {
            throw ConfigIssue(path: [.key("health")], error.message)
        }
        return Configuration(global: globalSettings(over: GlobalSettings()), services: [service])
    }

    func run() throws {
        blockTerminationSignals()
        let configuration: Configuration
        if let config {
            do {
                var fromFile = try Instance.readConfiguration(config)
                fromFile.global = globalSettings(over: fromFile.global)
                try fromFile.global.validate()
                configuration = fromFile
            } catch let error as ConfigError {
                fail(error.message)
            } catch let issue as ConfigIssue {
                fail(Self.flagMessage(issue))
            }
        } else {
            do {
                configuration = try commandLineConfiguration()
            } catch {
                fail(Self.flagMessage(error))
            }
        }
        let level = Logger.Level(rawValue: configuration.global.logLevel.rawValue) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        do {
            let instance = try Instance(configuration: configuration, configFile: config, build: BuildInfo.current, logger: Logger(label: "switchyard"))
            try instance.run(takeover: takeover)
        } catch {
            fail(error.message)
        }
    }
}
