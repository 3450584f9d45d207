import CSwitchyard
import Glibc
import SwitchyardCore

/// What one worker publishes once per tick for the metrics scrape: its listeners' figures, its
/// backends' connect-time histograms, and its buffer and pipe use.
public struct WorkerFigures: Sendable {
    /// A backend of a service, as the figures key it.
    public struct BackendKey: Hashable, Sendable {
        public var service: String
        public var backendID: Int
    }

    /// By listener id.
    public var listeners: [Int: ConnectionFigures] = [:]
    public var backendConnectTime: [BackendKey: LatencyHistogram] = [:]
    /// SNI routing counts by listener id, then route.
    public var sniRoutes: [Int: [String: UInt64]] = [:]
    /// TLS handshake counts by listener id (terminating listeners only).
    public var tlsHandshakes: [Int: TLSHandshakeFigures] = [:]
    /// TLS handshakes of connections routed by SNI to a terminating service, by that service.
    public var routedTLSHandshakes: [String: TLSHandshakeFigures] = [:]
    public var buffersInUse = 0
    public var pipesInUse = 0
    public var parkedBytes = 0

    public init() {}
}

/// What the figures and the access log record about one connection (precise clocks:
/// `LatencyClock.now()` nanoseconds).
struct ConnectionAccounting {
    var acceptedAt: UInt64 = 0
    /// Wall-clock nanoseconds at accept; only read when the access log is on.
    var acceptedWallClock: Int64 = 0
    /// Time the successful connect took; nil until one succeeded.
    var connectNanoseconds: Int64?
    /// The direction whose source ended first (client close or backend close).
    var firstEnd: ConnectionStateMachine.Direction?
    /// Set when the cause is known better than the state machine's reason (the end of the grace).
    var causeOverride: TerminationCause?
    /// Bytes moved each way over the connection's life.
    var bytesUp: UInt64 = 0
    var bytesDown: UInt64 = 0
    /// The terminated TLS session, for the access log (only filled when it is on).
    var tls: AccessLogTLS?
}

// Figures and the access log. Counting is plain arithmetic on the worker's own memory; the
// tick publishes a copy (one lock per tick, none per operation), and the scrape sums copies.
extension Worker {
    func publishFigures() {
        var published = WorkerFigures()
        for listener in listeners {
            published.listeners[listener.id] = listener.figures
            if !listener.sniRoutes.isEmpty { published.sniRoutes[listener.id] = listener.sniRoutes }
            if !listener.tlsHandshakes.isEmpty { published.tlsHandshakes[listener.id] = listener.tlsHandshakes }
        }
        published.routedTLSHandshakes = routedTLSHandshakes
        published.backendConnectTime = backendConnectTime
        published.buffersInUse = buffers.lent
        published.pipesInUse = pipes.lent
        published.parkedBytes = parkedBytes
        context.figures.publish(worker: index, published)
    }

    /// Why `connection` ended, in the metrics' and the access log's words.
    func terminationCause(_ connection: Connection, _ reason: ConnectionStateMachine.CloseReason) -> TerminationCause {
        if let override = connection.accounting.causeOverride { return override }
        switch reason {
        case .finished: return connection.accounting.firstEnd == .backendToClient ? .backendClose : .clientClose
        case .noBackend: return connection.backend.tried.isEmpty ? .noBackend : .connectFailure
        case .clientError: return .clientReset
        case .backendError: return .backendReset
        case .idleTimeout: return .idleTimeout
        case .administrative: return .adminShutdown
        }
    }

    /// Counts a connection that has just been released, and hands its access-log line over.
    func recordClosed(_ connection: Connection, reason: ConnectionStateMachine.CloseReason) {
        let cause = terminationCause(connection, reason)
        let duration = Int64(clamping: LatencyClock.now() &- connection.accounting.acceptedAt)
        connection.listener?.figures.recordClose(cause, sessionNanoseconds: duration)
        guard let accessLog, let listener = connection.listener, let service = connection.service else { return }
        let record = AccessLogRecord(
            acceptedAtNanoseconds: connection.accounting.acceptedWallClock, client: connection.client, listener: listener.name,
            service: service.registry.service, backend: connection.backend.name,
            connectNanoseconds: connection.accounting.connectNanoseconds, durationNanoseconds: duration,
            bytesFromClient: connection.accounting.bytesUp, bytesToClient: connection.accounting.bytesDown,
            retries: UInt32(max(0, connection.backend.tried.count - 1)), cause: cause, serverName: connection.sni.serverName,
            tls: connection.accounting.tls)
        _ = accessLog.enqueue(record)
    }

    /// A connect that succeeded took `nanoseconds`: for the listener, the backend's histogram,
    /// and least-latency's moving average.
    func recordConnected(_ connection: Connection, backend stats: BackendStats?) {
        let finished = LatencyClock.now()
        let took = finished &- connection.backend.connectStartedAt
        connection.accounting.connectNanoseconds = Int64(clamping: took)
        connection.listener?.figures.connectTime.record(nanoseconds: Int64(clamping: took))
        if let service = connection.service?.registry.service {
            let key = WorkerFigures.BackendKey(service: service, backendID: connection.backend.id)
            backendConnectTime[key, default: LatencyHistogram()].record(nanoseconds: Int64(clamping: took))
        }
        stats?.connectLatency.record(nanoseconds: took, now: finished)
    }

    /// A failed connect counts as slow for least-latency: the time until it failed.
    func recordConnectFailed(_ connection: Connection, backend stats: BackendStats?) {
        let finished = LatencyClock.now()
        connection.listener?.figures.connectFailures &+= 1
        stats?.connectLatency.record(nanoseconds: finished &- connection.backend.connectStartedAt, now: finished)
    }

    static func wallClockNanoseconds() -> Int64 {
        var time = Glibc.timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }
}
