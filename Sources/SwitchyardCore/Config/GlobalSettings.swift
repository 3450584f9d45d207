/// Settings of the whole process: the command-line flags that are not about one service.
public struct GlobalSettings: Equatable, Sendable {
    /// Worker threads; nil means one per online CPU.
    public var workers: Int?
    public var relay: RelayMode = .auto
    /// Path of the admin socket; nil means the default path (`AdminSocketPath.current()`).
    public var adminSocket: String?
    /// False: no admin socket (`--no-admin-socket`, `admin-socket: off`).
    public var adminSocketEnabled = true
    /// Permission bits of the admin socket files (`admin-socket-mode`, octal); connecting needs write.
    public var adminSocketMode = AdminAccess.defaultSocketMode
    /// Group of the admin socket files (`admin-socket-group`: a name or gid); nil: the process's.
    public var adminSocketGroup: String?
    /// A second socket that serves only `show` and `help` (`admin-socket-readonly`); nil: none.
    public var adminSocketReadOnly: String?
    /// Most client connections open at once; nil means what the descriptor limit allows.
    public var maxConnections: Int?
    public var shutdownGrace: Duration = .seconds(30)
    /// `withdraw-delay`: after SIGTERM or SIGINT, how long `/healthz` answers 503 while the
    /// instance still accepts, so that a router withdraws it first (0: stop accepting at once).
    public var withdrawDelay: Duration = .zero
    /// The longest `withdraw-delay` accepted.
    public static let maximumWithdrawDelay = Duration.seconds(3600)
    /// KiB.
    public var bufferSize = 64
    public var buffers = 1024
    /// KiB.
    public var pipeSize = 1024
    /// MiB a worker may hold of stalled directions' bytes moved out of its provided buffers
    /// (`parked-memory`); nil: 64 MiB, or the pool's size when that is larger.
    public var parkedMemory: Int?
    public var logLevel: LogLevel = .info
    /// Where admin changes are kept across restarts and reloads; nil keeps none.
    public var stateFile: String?
    /// DNS servers for `dns`/`dns-srv` pools and backend hostnames; empty means the
    /// nameservers of /etc/resolv.conf.
    public var resolvers: [Endpoint] = []
    /// Where `GET /metrics` and `/healthz` are served; nil: nowhere (the default).
    public var metrics: Endpoint?
    /// Where the status page (`/`) and its data (`/status.json`) are served; nil: nowhere (the
    /// default). It may be the metrics address: one listener then serves both.
    public var status: Endpoint?
    /// The status page's actions (drain, ready, maint, weight) are accepted (`status-admin`);
    /// false: the page is read-only and every POST is refused.
    public var statusAdmin = false
    /// The file whose first line is the token a status page action must carry.
    public var statusAdminTokenFile: String?
    /// Client addresses the status page's actions are accepted from; empty: loopback only.
    public var statusAdminFrom: [CIDR] = []
    /// `stderr` or a file path for one line per closed connection; nil: no access log.
    public var accessLog: String?
    public var accessLogFormat: AccessLogFormat = .text
    /// Entries of the per-source table the services' per-client controls share (fixed memory).
    public var sourceTableSize = GlobalSettings.defaultSourceTableSize
    /// `busy-polling`: each worker spins briefly on its completion queue before it sleeps, for a
    /// window that adapts to its traffic (`BusyPollingPolicy`; none when idle).
    public var busyPolling = false
    /// `tls-ticket-rotation`: how long a session ticket key encrypts new tickets before the
    /// next takes over (the one before still decrypts for as long again; `TicketKeyRing`).
    public var tlsTicketRotation = TicketKeyRing.defaultRotation

    public init() {}

    public static let defaultSourceTableSize = 65_536
    public static let sourceTableSizeRange = 64...16_777_216

    public static let workerRange = 1...256
    public static let bufferSizeRange = 4...1024
    public static let buffersRange = 16...32768
    public static let pipeSizeRange = 64...16384
    public static let parkedMemoryRange = 1...65536

    /// The settings that a reload cannot change in a running process.
    public func restartOnlyDifferences(to other: GlobalSettings) -> [String] {
        var changes: [String] = []
        func note<T: Equatable>(_ key: String, _ a: T, _ b: T, _ text: (T) -> String) {
            if a != b { changes.append("\(key) \(text(a)) -> \(text(b))") }
        }
        note("workers", workers, other.workers) { $0.map(String.init) ?? "auto" }
        note("relay", relay, other.relay) { $0.rawValue }
        note("admin-socket", adminSocketEnabled ? adminSocket ?? "default" : "off",
             other.adminSocketEnabled ? other.adminSocket ?? "default" : "off") { $0 }
        note("admin-socket-mode", adminSocketMode, other.adminSocketMode) { "0" + String($0, radix: 8) }
        note("admin-socket-group", adminSocketGroup, other.adminSocketGroup) { $0 ?? "default" }
        note("admin-socket-readonly", adminSocketReadOnly, other.adminSocketReadOnly) { $0 ?? "none" }
        note("max-connections", maxConnections, other.maxConnections) { $0.map(String.init) ?? "auto" }
        note("buffer-size", bufferSize, other.bufferSize) { "\($0)" }
        note("buffers", buffers, other.buffers) { "\($0)" }
        note("pipe-size", pipeSize, other.pipeSize) { "\($0)" }
        note("parked-memory", parkedMemory, other.parkedMemory) { $0.map(String.init) ?? "auto" }
        note("log-level", logLevel, other.logLevel) { $0.rawValue }
        note("state-file", stateFile, other.stateFile) { $0 ?? "none" }
        note("metrics", metrics, other.metrics) { $0?.description ?? "off" }
        note("status", status, other.status) { $0?.description ?? "off" }
        note("status-admin", statusAdmin, other.statusAdmin) { "\($0)" }
        note("status-admin-token-file", statusAdminTokenFile, other.statusAdminTokenFile) { $0 ?? "none" }
        note("status-admin-from", statusAdminFrom, other.statusAdminFrom) { $0.isEmpty ? "loopback" : $0.map(\.description).joined(separator: ",") }
        note("access-log", accessLog, other.accessLog) { $0 ?? "off" }
        note("access-log-format", accessLogFormat, other.accessLogFormat) { $0.rawValue }
        note("source-table-size", sourceTableSize, other.sourceTableSize) { "\($0)" }
        note("busy-polling", busyPolling, other.busyPolling) { "\($0)" }
        note("resolvers", resolvers, other.resolvers) { $0.isEmpty ? "/etc/resolv.conf" : $0.map(\.description).joined(separator: ",") }
        return changes
    }

    public func validate() throws(ConfigIssue) {
        if let workers, !Self.workerRange.contains(workers) {
            throw ConfigIssue(path: [.key("workers")], "workers \(workers) must be from 1 to 256")
        }
        if !Self.bufferSizeRange.contains(bufferSize) {
            throw ConfigIssue(path: [.key("buffer-size")], "buffer-size \(bufferSize) must be from 4 to 1024 (KiB)")
        }
        if !Self.buffersRange.contains(buffers) || buffers.nonzeroBitCount != 1 {
            throw ConfigIssue(path: [.key("buffers")], "buffers \(buffers) must be a power of two from 16 to 32768")
        }
        if !Self.pipeSizeRange.contains(pipeSize) {
            throw ConfigIssue(path: [.key("pipe-size")], "pipe-size \(pipeSize) must be from 64 to 16384 (KiB)")
        }
        if let parkedMemory, !Self.parkedMemoryRange.contains(parkedMemory) {
            throw ConfigIssue(path: [.key("parked-memory")], "parked-memory \(parkedMemory) must be from 1 to 65536 (MiB)")
        }
        if let maxConnections, maxConnections < 1 {
            throw ConfigIssue(path: [.key("max-connections")], "max-connections \(maxConnections) must be at least 1")
        }
        if shutdownGrace < .zero {
            throw ConfigIssue(path: [.key("shutdown-grace")], "shutdown-grace must not be negative")
        }
        if withdrawDelay < .zero || withdrawDelay > Self.maximumWithdrawDelay {
            throw ConfigIssue(path: [.key("withdraw-delay")], "withdraw-delay must be from 0s to \(Self.maximumWithdrawDelay.shortDescription)")
        }
        if let stateFile, stateFile.isEmpty {
            throw ConfigIssue(path: [.key("state-file")], "state-file is empty: give a path")
        }
        if let adminSocket, adminSocket.isEmpty {
            throw ConfigIssue(path: [.key("admin-socket")], "admin-socket is empty: give a path or off")
        }
        if let adminSocketReadOnly, adminSocketReadOnly.isEmpty {
            throw ConfigIssue(path: [.key("admin-socket-readonly")], "admin-socket-readonly is empty: give a path")
        }
        if let adminSocketReadOnly, adminSocketEnabled, adminSocketReadOnly == adminSocket {
            throw ConfigIssue(path: [.key("admin-socket-readonly")], "admin-socket-readonly \(adminSocketReadOnly) is the admin socket's path: give it a path of its own")
        }
        if let accessLog, accessLog.isEmpty {
            throw ConfigIssue(path: [.key("access-log")], "access-log is empty: give stderr or a file path")
        }
        if !Self.sourceTableSizeRange.contains(sourceTableSize) {
            throw ConfigIssue(path: [.key("source-table-size")],
                              "source-table-size \(sourceTableSize) must be from \(Self.sourceTableSizeRange.lowerBound) to \(Self.sourceTableSizeRange.upperBound)")
        }
        if statusAdmin {
            guard status != nil else {
                throw ConfigIssue(path: [.key("status-admin")], "status-admin needs status: give the status page an address")
            }
            guard let file = statusAdminTokenFile, !file.isEmpty else {
                throw ConfigIssue(path: [.key("status-admin-token-file")], "status-admin needs status-admin-token-file: the file holding the token an action must carry")
            }
        }
        if !TicketKeyRing.rotationRange.contains(tlsTicketRotation) {
            throw ConfigIssue(path: [.key("tls-ticket-rotation")],
                              "tls-ticket-rotation must be from \(TicketKeyRing.rotationRange.lowerBound.shortDescription) to \(TicketKeyRing.rotationRange.upperBound.shortDescription)")
        }
        for (index, resolver) in resolvers.enumerated() where resolver.address == nil {
            throw ConfigIssue(path: [.key("resolvers"), .index(index)], "resolvers: '\(resolver)' must be an IP address and port")
        }
    }
}

extension GlobalSettings {
    /// The file's top-level keys; each is the flag of the same name.
    static let fileKeys = [
        "workers", "relay", "admin-socket", "max-connections", "shutdown-grace", "withdraw-delay", "buffer-size", "buffers",
        "pipe-size", "log-level", "state-file", "resolvers", "metrics", "access-log", "access-log-format",
        "source-table-size", "parked-memory", "admin-socket-mode", "admin-socket-group", "admin-socket-readonly",
        "status", "status-admin", "status-admin-token-file", "status-admin-from", "busy-polling",
        "tls-ticket-rotation",
    ]

    /// The defaults with the file's top-level keys over them (checked by `validate()`).
    init(fileKeysOf container: KeyedDecodingContainer<ConfigKey>) throws {
        self.init()
        if let value = try container.value("workers", as: Int.self) { workers = value }
        if let value = try container.choice("relay", RelayMode.self) { relay = value }
        if let value = try container.value("admin-socket", as: String.self) {
            if value == "off" { adminSocketEnabled = false } else { adminSocket = value }
        }
        if let value = try container.parsed("admin-socket-mode", AdminAccess.parseSocketMode) { adminSocketMode = value }
        adminSocketGroup = try container.parsed("admin-socket-group") { (text) throws(ConfigError) -> String in
            try AdminAccess.checkSocketGroup(text)
            return text
        }
        adminSocketReadOnly = try container.value("admin-socket-readonly")
        maxConnections = try container.value("max-connections")
        if let value = try container.duration("shutdown-grace") ?? nil { shutdownGrace = value }
        if let value = try container.duration("withdraw-delay") ?? nil { withdrawDelay = value }
        if let value = try container.value("buffer-size", as: Int.self) { bufferSize = value }
        if let value = try container.value("buffers", as: Int.self) { buffers = value }
        if let value = try container.value("pipe-size", as: Int.self) { pipeSize = value }
        parkedMemory = try container.value("parked-memory")
        if let value = try container.choice("log-level", LogLevel.self) { logLevel = value }
        stateFile = try container.value("state-file")
        resolvers = try container.parsedList("resolvers") { (text) throws(ConfigError) -> Endpoint in
            let server = try Endpoint(parsing: text)
            guard server.address != nil else { throw ConfigError("'\(text)' must be an IP address and port, such as 127.0.0.1:53") }
            return server
        } ?? []
        metrics = try container.parsed("metrics") { (text) throws(ConfigError) in try Endpoint(parsing: text, allowPortZero: true) }
        status = try container.parsed("status") { (text) throws(ConfigError) in try Endpoint(parsing: text, allowPortZero: true) }
        if let value = try container.flag("status-admin") { statusAdmin = value }
        statusAdminTokenFile = try container.value("status-admin-token-file")
        statusAdminFrom = try container.parsedList("status-admin-from") { (text) throws(ConfigError) in try CIDR(parsing: text) } ?? []
        accessLog = try container.value("access-log")
        if let value = try container.choice("access-log-format", AccessLogFormat.self) { accessLogFormat = value }
        if let value = try container.value("source-table-size", as: Int.self) { sourceTableSize = value }
        if let value = try container.flag("busy-polling") { busyPolling = value }
        if let value = try container.duration("tls-ticket-rotation") ?? nil { tlsTicketRotation = value }
    }
}

/// How bytes move between a client and its backend.
public enum RelayMode: String, CaseIterable, Sendable, CustomStringConvertible {
    /// Receive into provided buffers and send from them.
    case copy
    /// Zero copy through a pipe: readiness from the ring, `splice(2)` to move bytes.
    case splice
    /// Copy, switching a direction to splice once it behaves like a bulk stream.
    case auto

    public var description: String { rawValue }
}

/// The lowest level of log line written (swift-log's levels, by name).
public enum LogLevel: String, CaseIterable, Sendable {
    case trace, debug, info, notice, warning, error, critical
}
