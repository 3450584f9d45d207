import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import SwitchyardCore

/// An HTTP/1.1 listener of the control side (`--metrics`, `--status`) on one swift-nio
/// event-loop thread of its own, off the workers. What it serves is its `ControlRoutes`: the
/// metrics ones (`/metrics`, `/healthz`), the status page's, or both when they share an address.
///
/// - A path no route set serves is 404; a method a route does not take is 405 with `Allow`; a
///   request that does not parse is 400, one whose headers pass 16 KiB is 431 and one whose
///   body passes its route's limit is 413, each sent with `Connection: close`, after which the
///   input is drained for up to a second so the client can read the answer, and the
///   connection is closed.
/// - Every connection must deliver a complete request, and read the whole response, within
///   `requestTimeout` of connecting or of its previous response; otherwise it is closed. So a
///   client that sends nothing, trickles bytes, or never reads holds one descriptor for at most
///   that long, never the thread. At most `maxConnections` are open at once, and at most a
///   quarter of them (rounded up) from one client address; more are closed at accept.
///
/// Thread safety: `init` and `stop()` from any thread except the server's own; the closures are
/// called on the server's thread.
public final class ControlHTTPServer: Sendable {
    /// The address actually bound (the port the kernel chose when 0 was asked).
    public let host: String
    public let port: Int

    private let group: MultiThreadedEventLoopGroup
    /// False when the thread is another server's (`sharingThreadOf`): that one ends it.
    private let ownsGroup: Bool
    private let channel: any Channel
    private let stopped = Atomic<Bool>(false)

    /// Binds `host:port` and starts serving `routes` (the first that serves a path answers it).
    /// `purpose` names the listener in errors ("metrics", "the status page"). Throws when the address cannot be bound (message names it),
    /// also when another socket listens there, unless `joiningTakeover`: a process taking over
    /// (serve --takeover) binds next to the running one's listener, which stops at the commit.
    /// With `sharingThreadOf`, it serves on that server's thread (which that server ends), with
    /// a connection cap of its own.
    init(
        host: String, port: Int,
        requestTimeout: Duration = .seconds(5),
        maxConnections: Int = 64,
        joiningTakeover: Bool = false,
        logger: Logger = Logger(label: "switchyard.metrics"),
        purpose: String = "metrics",
        sharingThreadOf other: ControlHTTPServer? = nil,
        routes: [any ControlRoutes]
    ) throws(ControlHTTPServerError) {
        // The listener has SO_REUSEPORT (for a takeover); a plain bind first keeps any other
        // listener on the port, a second instance's say, a reason to fail.
        if !joiningTakeover, port != 0, let address = IPAddress(host) {
            do {
                try Socket.checkAvailable(Endpoint(address: address, port: UInt16(clamping: port)))
            } catch {
                throw ControlHTTPServerError("cannot listen for \(purpose) on \(ControlHTTPServer.describe(host: host, port: port)): \(error)")
            }
        }
        let group = other?.group ?? MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let ownsGroup = other == nil
        let timeout = TimeAmount.nanoseconds(max(requestTimeout.nanosecondsClamped, 1_000_000))
        let open = ConnectionCount(limit: maxConnections)
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = ControlHTTPHandler.maxHeaderBytes
        limits.maxHeaderListSize = ControlHTTPHandler.maxHeaderBytes
        limits.maxHeaderFieldCount = 100
        let decoderLimits = limits
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // So that a process taking over (serve --takeover) can listen next to this one
            // until this one stops at the commit; anyone else is kept out by the bind above.
            .serverChannelOption(.socketOption(NIOBSDSocket.Option(rawValue: SO_REUSEPORT)), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                let source = channel.remoteAddress?.ipAddress ?? "unknown"
                guard open.enter(source: source) else {
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in open.leave(source: source) }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withErrorHandling: false,
                        withEncoderConfiguration: .init(),
                        withDecoderLimitConfiguration: decoderLimits)
                    try channel.pipeline.syncOperations.addHandler(ControlHTTPHandler(routes: routes, timeout: timeout))
                }
            }
        do {
            channel = try bootstrap.bind(host: host, port: port).wait()
        } catch {
            if ownsGroup { try? group.syncShutdownGracefully() }
            throw ControlHTTPServerError("cannot listen for \(purpose) on \(ControlHTTPServer.describe(host: host, port: port)): \(error)")
        }
        self.group = group
        self.ownsGroup = ownsGroup
        self.host = host
        self.port = channel.localAddress?.port ?? port
    }

    /// The metrics listener alone: `/metrics` renders `render(format)`, `/healthz` answers
    /// `health()`.
    public convenience init(
        host: String, port: Int,
        requestTimeout: Duration = .seconds(5),
        maxConnections: Int = 64,
        joiningTakeover: Bool = false,
        logger: Logger = Logger(label: "switchyard.metrics"),
        render: @escaping @Sendable (ExpositionFormat) -> [UInt8],
        health: @escaping @Sendable () -> (ok: Bool, body: String)
    ) throws(ControlHTTPServerError) {
        try self.init(
            host: host, port: port, requestTimeout: requestTimeout, maxConnections: maxConnections,
            joiningTakeover: joiningTakeover, logger: logger,
            routes: [MetricsRoutes(render: render, health: health)])
    }

    /// Runs `body` every `interval` on the server's thread until `stop()`.
    func every(_ interval: TimeAmount, _ body: @escaping @Sendable () -> Void) {
        _ = group.next().scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in body() }
    }

    deinit { stop() }

    /// Closes the listener and every connection and ends the thread (unless it is another
    /// server's). Safe to call twice.
    public func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        try? channel.close().wait()
        if ownsGroup { try? group.syncShutdownGracefully() }
    }

    static func describe(host: String, port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

/// Why a control listener could not start, as one line.
public struct ControlHTTPServerError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// Connections open now, against the limit, and per client address against a quarter of it,
/// so that one client holding connections open (each for up to the request timeout) leaves
/// places for a scraper and an on-call engineer's browser.
final class ConnectionCount: Sendable {
    private let open = Atomic<Int>(0)
    private let limit: Int
    let perSourceLimit: Int
    /// Open connections by client address; an entry exists only while it has one, so there are
    /// at most `limit` entries.
    private let bySource = Mutex<[String: Int]>([:])

    init(limit: Int) {
        self.limit = max(limit, 1)
        perSourceLimit = max(1, (self.limit + 3) / 4)
    }

    /// Takes a place for a client of `source` (its address); false (and nothing taken) when all
    /// places, or all of its source's, are taken.
    func enter(source: String) -> Bool {
        if open.wrappingAdd(1, ordering: .relaxed).newValue > limit {
            open.wrappingSubtract(1, ordering: .relaxed)
            return false
        }
        let admitted = bySource.withLock { counts in
            let count = counts[source, default: 0]
            guard count < perSourceLimit else { return false }
            counts[source] = count + 1
            return true
        }
        if !admitted { open.wrappingSubtract(1, ordering: .relaxed) }
        return admitted
    }

    func leave(source: String) {
        bySource.withLock { counts in
            let count = counts[source, default: 1] - 1
            counts[source] = count > 0 ? count : nil
        }
        open.wrappingSubtract(1, ordering: .relaxed)
    }
}
