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

    @Option(help: ArgumentHelp("How long a backend connect may take before the next backend is tried. Default: 5s.", valueName: "D"),
            transform: ArgumentValue.positiveDuration)
    var connectTimeout: Duration?

    @Option(help: ArgumentHelp("Close a connection after this long with no bytes in either direction. Off by default.", valueName: "D"),
            transform: ArgumentValue.positiveDuration)
    var idleTimeout: Duration?

    @Option(help: ArgumentHelp("Count an established backend connection as dead after this long without an answer (TCP_USER_TIMEOUT and keepalive), so a backend that vanished without FIN or RST is noticed. Kernel defaults (minutes) when not given.", valueName: "D"),
            transform: ArgumentValue.positiveDuration)
    var backendTimeout: Duration?

    // PROXY protocol.
    @Option(help: ArgumentHelp("Start every connection to a backend with a PROXY protocol header of this version (v1 text or v2 binary) carrying the client's and the listener's addresses. Off by default.", valueName: "v1|v2"))
    var sendProxy: ProxyProtocolVersion?

    @Flag(help: "Require a PROXY protocol header (v1 or v2) from every client, as sent by a load balancer in front; the address it carries is the client's for ip-hash, the access log and metrics. Clients without a valid header within 3s are closed.")
    var acceptProxy = false

    @Option(help: ArgumentHelp("With --accept-proxy: only these peers may send a header; anyone else is closed. Without it any peer may claim any client address.", valueName: "CIDR[,CIDR...]"),
            transform: ArgumentValue.cidrList)
    var acceptProxyFrom: [CIDR]?
    // Many connections to one backend (issue 13).
    @Option(help: ArgumentHelp("Local addresses to connect to backends from, comma-separated and used in rotation (IP_BIND_ADDRESS_NO_PORT: the kernel picks the port at connect time); each one adds a full ephemeral port range towards every backend. Default: the kernel chooses.", valueName: "ADDR[,ADDR...]"),
            transform: SourceAddresses.parse)
    var source: [IPAddress]?

    @OptionGroup(title: "Per-client controls")
    var clientControls: ClientControlOptions

    @Option(help: "Most client connections open at once; further clients are closed at once. Defaults to what the descriptor limit allows.")
    var maxConnections: Int?

    // Queue and slow start (issue 13).
    @Option(help: ArgumentHelp("Clients that may wait when every backend is at its max-connections (0: none wait). Default: 1024.", valueName: "N"),
            transform: { (text: String) throws -> Int in try ServiceSettings.parseQueueSize(text) })
    var queueSize: Int?

    @Option(help: ArgumentHelp("How long a client may wait in the queue before it is closed. Default: 5s.", valueName: "D"),
            transform: { (text: String) throws -> Duration in try ServiceSettings.parseQueueTimeout(text) })
    var queueTimeout: Duration?

    @Option(help: ArgumentHelp("Ramp a backend that comes up or is added from a small share to its full weight over this long. Off by default.", valueName: "D"),
            transform: { (text: String) throws -> Duration in try BackendSpec.parseSlowStart(text, context: "--slow-start") })
    var slowStart: Duration?

    // Failover tiers and what happens to sessions when a backend goes.
    @Option(help: ArgumentHelp("Once less than this share of a failover tier's weight is healthy, send its clients on to the next tier in proportion (as Envoy's priority load with an overprovisioning factor). Off by default: a tier takes every client while any of it is healthy.", valueName: "P%"),
            transform: { (text: String) throws -> Int in try FailoverTiers.parseThreshold(text) })
    var failoverThreshold: Int?

    @Option(help: "What a backend marked down by its health checks does to its open connections: none keeps them, shutdown-sessions closes them with a reset. Default: none.")
    var onDown: OnBackendDown?

    @Option(help: "What a failover tier coming back does to the connections of the tiers after it (backups): none keeps them, shutdown-backup-sessions closes them with a reset so that their clients reconnect to it. Default: none.")
    var onUp: OnBackendUp?

    @Option(help: ArgumentHelp("How long a removed backend's open connections may stay before they are closed with a reset. Off by default: they stay until they end.", valueName: "D"),
            transform: { (text: String) throws -> Duration in try ServiceSettings.parseRemovalGrace(text) })
    var removalGrace: Duration?

    @Option(help: ArgumentHelp("After SIGTERM or SIGINT, how long open connections may continue before they are closed. Default: 30s.", valueName: "D"),
            transform: ArgumentValue.duration)
    var shutdownGrace: Duration?

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

    @Option(help: ArgumentHelp("Write one line per closed connection to stderr or to this file (reopened on SIGUSR1). Off by default.", valueName: "stderr|PATH"))
    var accessLog: String?

    @Option(help: "Access log lines as text (like HAProxy's tcplog) or json. Default: text.")
    var accessLogFormat: AccessLogFormat?

    @Option(help: ArgumentHelp("Keep changes made through the admin socket (drain, maint, weight, add, remove) in this file and re-apply them at start and after a reload.", valueName: "PATH"))
    var stateFile: String?

    @Option(help: ArgumentHelp("Time between two health checks of one backend. Default: 2s.", valueName: "D"),
            transform: ArgumentValue.positiveDuration)
    var healthInterval: Duration?

    @Option(help: ArgumentHelp("Time one health check may take, from connect to the expected reply. Default: 1s.", valueName: "D"),
            transform: ArgumentValue.positiveDuration)
    var healthTimeout: Duration?

    @Option(help: "Consecutive successful checks that bring a down backend up (1 to 100). Default: 2.")
    var rise: Int?

    @Option(help: "Consecutive failed checks (or failed client connects) that take a backend down (1 to 100). Default: 3.")
    var fall: Int?

    @Option(help: ArgumentHelp("Bytes a health check writes once connected; escapes \\r \\n \\t \\0 \\\\ \\xHH are decoded.", valueName: "TEXT"))
    var healthSend: String?

    @Option(help: ArgumentHelp("Text a health check's reply must contain (same escapes); without it a connect is enough.", valueName: "TEXT"))
    var healthExpect: String?

    @Option(help: "Whether the expected text may appear anywhere in the reply (contains) or must start it (prefix). Default: contains.")
    var healthExpectMatch: HealthCheckConfig.ExpectMatch?

    @Option(help: ArgumentHelp("Check each backend by speaking its protocol instead of --health-send/--health-expect: redis (PING), redis-primary (also role:master), postgres (a startup message for user postgres), mysql (the greeting), http (GET / with a 200-399 status) or smtp (banner, EHLO, QUIT). Each type's options (auth, user, path, status...) are set in a configuration file.", valueName: "TYPE"))
    var healthType: HealthCheckType.Kind?

    @Flag(help: "Start each health check with the PROXY header the backends require (the --send-proxy version, v1 without it).")
    var checkSendProxy = false

    @Flag(help: "Do not run health checks: every backend stays up unless drained or in maintenance.")
    var noHealthCheck = false

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
        var given: [String] = []
        if balance != nil { given.append("--balance") }
        if connectTimeout != nil { given.append("--connect-timeout") }
        if idleTimeout != nil { given.append("--idle-timeout") }
        if backendTimeout != nil { given.append("--backend-timeout") }
        if queueSize != nil { given.append("--queue-size") }
        if queueTimeout != nil { given.append("--queue-timeout") }
        if slowStart != nil { given.append("--slow-start") }
        // Failover tiers and sessions.
        if failoverThreshold != nil { given.append("--failover-threshold") }
        if onDown != nil { given.append("--on-down") }
        if onUp != nil { given.append("--on-up") }
        if removalGrace != nil { given.append("--removal-grace") }
        // PROXY protocol.
        if sendProxy != nil { given.append("--send-proxy") }
        if acceptProxy { given.append("--accept-proxy") }
        if acceptProxyFrom != nil { given.append("--accept-proxy-from") }
        if healthInterval != nil { given.append("--health-interval") }
        if healthTimeout != nil { given.append("--health-timeout") }
        if rise != nil { given.append("--rise") }
        if fall != nil { given.append("--fall") }
        if healthSend != nil { given.append("--health-send") }
        if healthExpect != nil { given.append("--health-expect") }
        if healthExpectMatch != nil { given.append("--health-expect-match") }
        if healthType != nil { given.append("--health-type") }  // issue 22
        if checkSendProxy { given.append("--check-send-proxy") }
        if noHealthCheck { given.append("--no-health-check") }
        if source != nil { given.append("--source") }  // Source addresses (issue 13).
        return given + clientControls.given
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
        // PROXY protocol.
        if acceptProxyFrom != nil && !acceptProxy {
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
        if let bufferSize { global.bufferSize = bufferSize }
        if let buffers { global.buffers = buffers }
        if let pipeSize { global.pipeSize = pipeSize }
        if let parkedMemory { global.parkedMemory = parkedMemory }
        if let logLevel { global.logLevel = logLevel }
        if let stateFile { global.stateFile = stateFile }
        if let metrics { global.metrics = metrics }
        if let accessLog { global.accessLog = accessLog }
        if let accessLogFormat { global.accessLogFormat = accessLogFormat }
        if let size = clientControls.sourceTableSize { global.sourceTableSize = size }
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
        if let connectTimeout { service.connectTimeout = connectTimeout }
        service.idleTimeout = idleTimeout
        service.backendTimeout = backendTimeout
        if let queueSize { service.queueSize = queueSize }
        if let queueTimeout { service.queueTimeout = queueTimeout }
        if let slowStart, slowStart > .zero { service.slowStart = slowStart }
        // Failover tiers and sessions.
        service.failoverThreshold = failoverThreshold
        if let onDown { service.onDown = onDown }
        if let onUp { service.onUp = onUp }
        service.removalGrace = removalGrace
        // PROXY protocol.
        service.sendProxy = sendProxy
        service.acceptProxy = acceptProxy
        service.acceptProxyFrom = acceptProxyFrom ?? []
        if let source { service.source = source }  // Source addresses (issue 13).
        service.clientControls = clientControls.controls
        do {
            service.health = noHealthCheck ? nil : try healthConfiguration()
        } catch {
            throw ConfigIssue(path: [.key("health")], error.message)
        }
        return Configuration(global: globalSettings(over: GlobalSettings()), services: [service])
    }

    func healthConfiguration() throws(ConfigError) -> HealthCheckConfig {
        var configuration = HealthCheckConfig()
        if let healthInterval { configuration.interval = healthInterval }
        if let healthTimeout { configuration.timeout = healthTimeout }
        if let rise { configuration.rise = rise }
        if let fall { configuration.fall = fall }
        if let healthExpectMatch { configuration.expectMatch = healthExpectMatch }
        if let healthSend { configuration.send = try HealthCheckConfig.decodeEscapes(healthSend) }
        if let healthExpect { configuration.expect = try HealthCheckConfig.decodeEscapes(healthExpect) }
        configuration.type = healthType.map(HealthCheckType.init)  // issue 22
        configuration.checkSendProxy = checkSendProxy
        try configuration.validate()
        return configuration
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

// PROXY protocol.
extension ProxyProtocolVersion: ExpressibleByArgument {}
extension OnBackendDown: ExpressibleByArgument {}
extension OnBackendUp: ExpressibleByArgument {}

extension ArgumentValue {
    /// `CIDR[,CIDR...]`, each as `accept-proxy-from` takes it.
    static func cidrList(_ text: String) throws -> [CIDR] {
        try text.split(separator: ",", omittingEmptySubsequences: false).map { (part) throws(ConfigError) in
            try CIDR(parsing: String(part))
        }
    }
}
