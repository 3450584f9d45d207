import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import SwitchyardCore

/// The `--metrics HOST:PORT` listener: HTTP/1.1 on one swift-nio event-loop thread of its own,
/// off the workers.
///
/// - `GET /metrics` (or `HEAD`) answers 200 with the exposition, in OpenMetrics when the
///   `Accept` header prefers it (`ExpositionFormat.negotiate`), else the Prometheus text format.
/// - `GET /healthz` answers 200 `ok` while `health()` says so (the instance is ready and some
///   backend is selectable), else 503 with a line saying why, for a router's or an upstream
///   load balancer's check.
/// - Any other path is 404; another method on those paths is 405 with `Allow: GET, HEAD`; a
///   request that does not parse is 400 and one whose headers pass 16 KiB is 431, each sent
///   with `Connection: close`, after which the input is drained for up to a second so the
///   client can read the answer, and the connection is closed.
/// - Every connection must deliver a complete request, and read the whole response, within
///   `requestTimeout` of connecting or of its previous response; otherwise it is closed. So a
///   client that sends nothing, trickles bytes, or never reads holds one descriptor for at most
///   that long, never the thread. At most `maxConnections` are open at once; more are closed at
///   accept.
///
/// Thread safety: `init` and `stop()` from any thread except the server's own; the closures are
/// called on the server's thread.
public final class MetricsServer: Sendable {
    /// The address actually bound (the port the kernel chose when 0 was asked).
    public let host: String
    public let port: Int

    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    private let stopped = Atomic<Bool>(false)

    /// Binds `host:port` and starts serving. `render` produces the exposition for a format;
    /// `health` answers `/healthz` (200 or 503, and the body's line). Throws when the address cannot be bound (message names it),
    /// also when another socket listens there, unless `joiningTakeover`: a process taking over
    /// (serve --takeover) binds next to the running one's listener, which stops at the commit.
    public init(
        host: String, port: Int,
        requestTimeout: Duration = .seconds(5),
        maxConnections: Int = 64,
        joiningTakeover: Bool = false,
        logger: Logger = Logger(label: "switchyard.metrics"),
        render: @escaping @Sendable (ExpositionFormat) -> [UInt8],
        health: @escaping @Sendable () -> (ok: Bool, body: String)
    ) throws(MetricsServerError) {
        // The listener has SO_REUSEPORT (for a takeover); a plain bind first keeps any other
        // listener on the port, a second instance's say, a reason to fail.
        if !joiningTakeover, port != 0, let address = IPAddress(host) {
            do {
                try Socket.checkAvailable(Endpoint(address: address, port: UInt16(clamping: port)))
            } catch {
                throw MetricsServerError("cannot listen for metrics on \(MetricsServer.describe(host: host, port: port)): \(error)")
            }
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let routes = MetricsRoutes(render: render, health: health, logger: logger)
        let timeout = TimeAmount.nanoseconds(max(requestTimeout.nanosecondsClamped, 1_000_000))
        let open = ConnectionCount(limit: maxConnections)
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = MetricsHTTPHandler.maxHeaderBytes
        limits.maxHeaderListSize = MetricsHTTPHandler.maxHeaderBytes
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
                guard open.enter() else {
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in open.leave() }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withErrorHandling: false,
                        withEncoderConfiguration: .init(),
                        withDecoderLimitConfiguration: decoderLimits)
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(routes: routes, timeout: timeout))
                }
            }
        do {
            channel = try bootstrap.bind(host: host, port: port).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw MetricsServerError("cannot listen for metrics on \(MetricsServer.describe(host: host, port: port)): \(error)")
        }
        self.group = group
        self.host = host
        self.port = channel.localAddress?.port ?? port
    }

    /// Serves the exposition of `sample()` (called once per scrape, on the server's thread).
    public convenience init(
        host: String, port: Int,
        requestTimeout: Duration = .seconds(5),
        maxConnections: Int = 64,
        joiningTakeover: Bool = false,
        logger: Logger = Logger(label: "switchyard.metrics"),
        sample: @escaping @Sendable () -> MetricsSample,
        health: @escaping @Sendable () -> (ok: Bool, body: String)
    ) throws(MetricsServerError) {
        try self.init(
            host: host, port: port, requestTimeout: requestTimeout, maxConnections: maxConnections,
            joiningTakeover: joiningTakeover, logger: logger,
            render: { format in MetricsExposition.render(sample(), format: format) }, health: health)
    }

    deinit { stop() }

    /// Closes the listener and every connection and ends the thread. Safe to call twice.
    public func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }

    static func describe(host: String, port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

/// Why the metrics listener could not start, as one line.
public struct MetricsServerError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// What the handler calls; shared by every connection.
struct MetricsRoutes: Sendable {
    let render: @Sendable (ExpositionFormat) -> [UInt8]
    let health: @Sendable () -> (ok: Bool, body: String)
    let logger: Logger
}

/// Connections open now, against the limit.
private final class ConnectionCount: Sendable {
    private let open = Atomic<Int>(0)
    private let limit: Int

    init(limit: Int) { self.limit = max(limit, 1) }

    /// Takes a place; false (and nothing taken) when all are taken.
    func enter() -> Bool {
        if open.wrappingAdd(1, ordering: .relaxed).newValue > limit {
            open.wrappingSubtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    func leave() { open.wrappingSubtract(1, ordering: .relaxed) }
}

/// One connection's requests. Runs on the server's event loop only.
final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// Longest request head accepted (field and total); longer gets 431.
    static let maxHeaderBytes = 16 * 1024
    /// How long input is drained after an error response before the connection is closed.
    static let lingerTime = TimeAmount.seconds(1)

    private let routes: MetricsRoutes
    private let timeout: TimeAmount
    private var head: HTTPRequestHead?
    private var deadline: Scheduled<Void>?
    /// An error response was sent; everything else the client sends is discarded.
    private var failed = false

    init(routes: MetricsRoutes, timeout: TimeAmount) {
        self.routes = routes
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context, after: timeout) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context, after: timeout)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        switch unwrapInboundIn(data) {
        case let .head(request):
            head = request
        case .body:
            // Discarded unread: these paths take no body, and the deadline bounds a long one.
            break
        case .end:
            guard let request = head else { return }
            head = nil
            respond(context, to: request)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if failed { return }
        // Inside a request (its head read, its end not yet), no response may start before
        // the request ends (HTTPServerPipelineHandler asserts it): close without one.
        if head != nil {
            failed = true
            context.close(promise: nil)
            return
        }
        if let parserError = error as? HTTPParserError {
            if parserError == .headerOverflow {
                fail(context, status: .requestHeaderFieldsTooLarge, text: "request headers too large: the limit is \(Self.maxHeaderBytes) bytes\n")
            } else {
                fail(context, status: .badRequest, text: "bad request: \(parserError)\n")
            }
        } else {
            context.close(promise: nil)
        }
    }

    private func respond(_ context: ChannelHandlerContext, to request: HTTPRequestHead) {
        let path = request.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        let keepAlive = request.isKeepAlive
        let isGet = request.method == .GET || request.method == .HEAD
        switch path {
        case "/metrics" where isGet:
            let format = ExpositionFormat.negotiate(accept: request.headers.first(name: "accept"))
            let body = routes.render(format)
            send(context, request: request, status: .ok, contentType: format.contentType, body: body, keepAlive: keepAlive)
        case "/healthz" where isGet:
            let health = routes.health()
            send(context, request: request, status: health.ok ? .ok : .serviceUnavailable, contentType: "text/plain; charset=utf-8",
                 body: Array(health.body.utf8), keepAlive: keepAlive)
        case "/metrics", "/healthz":
            send(context, request: request, status: .methodNotAllowed, contentType: "text/plain; charset=utf-8",
                 body: Array("method \(request.method) not allowed: use GET or HEAD\n".utf8), keepAlive: keepAlive,
                 extraHeaders: [("Allow", "GET, HEAD")])
        default:
            send(context, request: request, status: .notFound, contentType: "text/plain; charset=utf-8",
                 body: Array("not found: this server has /metrics and /healthz\n".utf8), keepAlive: keepAlive)
        }
    }

    private func send(
        _ context: ChannelHandlerContext, request: HTTPRequestHead, status: HTTPResponseStatus, contentType: String,
        body: [UInt8], keepAlive: Bool, extraHeaders: [(String, String)] = []
    ) {
        var headers = HTTPHeaders([("Content-Type", contentType), ("Content-Length", "\(body.count)")] + extraHeaders)
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let version = request.version.major == 1 && request.version.minor == 0 ? HTTPVersion.http1_0 : .http1_1
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))), promise: nil)
        if request.method != .HEAD && !body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        let channel = context.channel
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let contextBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { result in
            guard case .success = result, keepAlive else {
                channel.close(promise: nil)
                return
            }
            // The next request gets a fresh allowance.
            loopBound.value.arm(contextBound.value, after: loopBound.value.timeout)
        }
    }

    /// Sends an error with `Connection: close`, half-closes, and drains the input for a moment
    /// so that the client reads the answer instead of a reset, then closes.
    private func fail(_ context: ChannelHandlerContext, status: HTTPResponseStatus, text: String) {
        failed = true
        let body = Array(text.utf8)
        let headers = HTTPHeaders([("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "\(body.count)"), ("Connection", "close")])
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            channel.close(mode: .output, promise: nil)
        }
        arm(context, after: Self.lingerTime)
    }

    /// (Re)starts the allowance: the connection is closed when it runs out.
    private func arm(_ context: ChannelHandlerContext, after time: TimeAmount) {
        deadline?.cancel()
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: time) {
            channel.close(promise: nil)
        }
    }
}
