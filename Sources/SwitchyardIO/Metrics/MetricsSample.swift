import SwitchyardCore

/// Everything one scrape exports, as plain values: the figures of every worker already summed
/// (`ConnectionFigures.merged`), the backends as the registry and health checker see them,
/// build and process figures. Built on the metrics thread for each scrape; rendered by
/// `MetricsExposition`.
public struct MetricsSample: Sendable {
    /// One listener's figures, summed over the workers.
    public struct Listener: Sendable {
        public var service: String
        /// `HOST:PORT` as configured.
        public var listener: String
        public var figures: ConnectionFigures

        public init(service: String, listener: String, figures: ConnectionFigures) {
            self.service = service
            self.listener = listener
            self.figures = figures
        }
    }

    /// One backend of one service.
    public struct Backend: Sendable {
        public var service: String
        /// `HOST:PORT` as `show backends` names it.
        public var address: String
        public var weight: Int
        /// Health-check state: up (1) or down (0).
        public var healthy: Bool
        public var state: AdminState
        /// Connections open to it now.
        public var active: Int
        /// Connections made to it since start.
        public var connections: UInt64
        /// Failed connects and connections ended by an error on its side.
        public var failures: UInt64
        public var bytesToBackend: UInt64
        public var bytesFromBackend: UInt64
        /// Its successful connects, summed over the workers.
        public var connectTime: LatencyHistogram
        /// How long its last health check took, and whether it passed; nil before the first
        /// check and when checks are off (the gauges are then left out).
        public var lastCheckSeconds: Double?
        public var lastCheckSucceeded: Bool?
        /// Every completed health check's round trip.
        public var checkDuration: LatencyHistogram
        /// Seconds until the certificate of its last TLS check's handshake expires (negative once
        /// expired); nil without TLS checks (issue 22).
        public var certificateExpirySeconds: Double?
        /// TLS handshakes with it (`backend-tls`) that completed and that failed; nil without.
        public var tlsHandshakes: (ok: UInt64, failed: UInt64)?

        public init(
            service: String, address: String, weight: Int, healthy: Bool, state: AdminState,
            active: Int, connections: UInt64, failures: UInt64, bytesToBackend: UInt64, bytesFromBackend: UInt64,
            connectTime: LatencyHistogram = LatencyHistogram(), lastCheckSeconds: Double? = nil,
            lastCheckSucceeded: Bool? = nil, checkDuration: LatencyHistogram = LatencyHistogram(),
            certificateExpirySeconds: Double? = nil
        ) {
            self.service = service
            self.address = address
            self.weight = weight
            self.healthy = healthy
            self.state = state
            self.active = active
            self.connections = connections
            self.failures = failures
            self.bytesToBackend = bytesToBackend
            self.bytesFromBackend = bytesFromBackend
            self.connectTime = connectTime
            self.lastCheckSeconds = lastCheckSeconds
            self.lastCheckSucceeded = lastCheckSucceeded
            self.checkDuration = checkDuration
            self.certificateExpirySeconds = certificateExpirySeconds
        }
    }

    public var build: BuildInfo
    /// The standard `process_*` figures; nil leaves them out (tests of other families).
    public var process: ProcessFigures?
    public var listeners: [Listener]
    public var backends: [Backend]
    /// Provided buffers in all workers' pools, and how many hold data now.
    public var providedBuffers: Int
    public var providedBuffersInUse: Int
    /// Splice pipes taken from the workers' pools now.
    public var pipesInUse: Int
    /// Bytes of stalled directions parked in the workers' own memory now (see Worker+Parking).
    public var parkedBytes: Int = 0
    /// `switchyard_instance_ready`: false while drained (`instance drain`) or withdrawing.
    public var instanceReady = true
    /// Access-log lines dropped because a worker's queue was full.
    public var accessLogDroppedLines: UInt64
    /// `route-by-sni` counts: (service, listener, route label, connections).
    public var sniRoutes: [(service: String, listener: String, route: String, count: UInt64)] = []
    /// Handshake counts of each service that terminates TLS, by service name.
    public var tlsHandshakes: [(service: String, figures: TLSHandshakeFigures)] = []
    /// Each terminating service's certificates: file, first name, seconds until it expires.
    public var tlsCertificates: [(service: String, certificate: String, name: String, expirySeconds: Double)] = []
    /// Services whose listeners require a PROXY header (`switchyard_proxy_header_errors_total` is shown for them).
    public var acceptProxyServices: Set<String> = []

    public init(
        build: BuildInfo, process: ProcessFigures? = nil, listeners: [Listener] = [], backends: [Backend] = [],
        providedBuffers: Int = 0, providedBuffersInUse: Int = 0, pipesInUse: Int = 0, accessLogDroppedLines: UInt64 = 0
    ) {
        self.build = build
        self.process = process
        self.listeners = listeners
        self.backends = backends
        self.providedBuffers = providedBuffers
        self.providedBuffersInUse = providedBuffersInUse
        self.pipesInUse = pipesInUse
        self.accessLogDroppedLines = accessLogDroppedLines
    }
}
