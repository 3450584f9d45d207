import NIOCore
import NIOHTTP1
import SwitchyardCore

/// One connection's requests. Runs on the server's event loop only.
final class ControlHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// Longest request head accepted (field and total); longer gets 431.
    static let maxHeaderBytes = 16 * 1024
    /// How long input is drained after an error response before the connection is closed.
    static let lingerTime = TimeAmount.seconds(1)

    private let routes: [any ControlRoutes]
    private let timeout: TimeAmount
    private var head: HTTPRequestHead?
    /// The body read so far, and the most the request's route takes (0: none; a body is then
    /// discarded unread, as the deadline bounds a long one).
    private var body: [UInt8] = []
    private var bodyLimit = 0
    private var bodyTooLarge = false
    private var deadline: Scheduled<Void>?
    /// An error response was sent; everything else the client sends is discarded.
    private var failed = false

    init(routes: [any ControlRoutes], timeout: TimeAmount) {
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
            body = []
            bodyTooLarge = false
            let path = ControlRequest(head: request, body: [], peer: nil).path
            bodyLimit = routes.lazy.compactMap { $0.bodyLimit(method: request.method, path: path) }.first ?? 0
        case var .body(part):
            guard bodyLimit > 0, !bodyTooLarge else { break }
            if body.count + part.readableBytes > bodyLimit {
                bodyTooLarge = true
                body = []
            } else if let bytes = part.readBytes(length: part.readableBytes) {
                body += bytes
            }
        case .end:
            guard let request = head else { return }
            head = nil
            if bodyTooLarge {
                bodyTooLarge = false
                fail(context, status: .payloadTooLarge, text: "request body too large: the limit is \(bodyLimit) bytes\n")
                return
            }
            let peer = context.channel.remoteAddress?.ipAddress.flatMap { IPAddress($0) }
            respond(context, to: ControlRequest(head: request, body: body, peer: peer))
            body = []
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

    private func respond(_ context: ChannelHandlerContext, to request: ControlRequest) {
        let response = routes.lazy.compactMap { $0.respond(to: request) }.first
            ?? .text(.notFound, "not found: this server has \(routes.flatMap(\.paths).joined(separator: ", "))\n")
        send(context, request: request.head, status: response.status, contentType: response.contentType, body: response.body,
             keepAlive: request.head.isKeepAlive, extraHeaders: response.headers)
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
