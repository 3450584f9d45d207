/// Process-wide figures for `show stats`, supplied by the executable through a provider closure.
public struct ProcessStats: Sendable, Equatable {
    public var uptime: Duration
    public var workers: Int
    /// How bytes are relayed, e.g. `splice` or `buffers`.
    public var relayMode: String
    /// The `--balance` algorithm name.
    public var balance: String
    public var openConnections: Int
    public var totalConnections: Int
    public var bytesFromClients: Int
    public var bytesToClients: Int
    /// The process id, so that two processes during a handover can be told apart.
    public var pid: Int = 0
    /// False once the process has stopped accepting (shutting down).
    public var accepting = true
    /// Whether the instance asks a router for new flows (`instance drain`, `withdraw-delay`).
    public var instance = InstanceReadiness.ready
    public var version = ""
    public var commit = ""
    // PROXY protocol.
    /// Clients of `accept-proxy` listeners closed for their header, by `ProxyHeaderFailure.rawValue`
    /// (all services); empty when no service accepts PROXY headers.
    public var proxyHeaderErrors: [UInt64] = []
    /// Backend connects that found no free local port (issue 13, `source`).
    public var sourcePortExhausted = 0
    /// Whether the kernel offers kTLS: `available` or `unavailable: WHY` (empty: not probed).
    public var kernelTLS = ""

    public init(
        uptime: Duration, workers: Int, relayMode: String, balance: String,
        openConnections: Int, totalConnections: Int, bytesFromClients: Int, bytesToClients: Int
    ) {
        self.uptime = uptime
        self.workers = workers
        self.relayMode = relayMode
        self.balance = balance
        self.openConnections = openConnections
        self.totalConnections = totalConnections
        self.bytesFromClients = bytesFromClients
        self.bytesToClients = bytesToClients
    }
}
