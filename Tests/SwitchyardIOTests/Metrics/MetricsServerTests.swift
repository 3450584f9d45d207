import Foundation
import Glibc
import Synchronization
import SwitchyardCore
import SwitchyardIO
import Testing

/// A blocking loopback HTTP client that can also misbehave. The receive timeout only bounds a
/// wait that should end by itself, generously: a sanitizer's run on a busy machine is slow.
final class RawHTTPConnection {
    let fd: Int32

    /// Connects to 127.0.0.1:`port` from `source` (a loopback address; the kernel's choice when nil).
    init(port: Int, receiveTimeout: Int = 30, from source: String? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemCallError(call: "socket", errno: errno) }
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            inet_pton(AF_INET, source, &local.sin_addr)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else { throw SystemCallError(call: "bind \(source)", errno: errno) }
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        // A class's deinit runs even when its init throws once every property is set: it closes
        // the descriptor, and closing it here as well closed whatever socket reused the number.
        guard result == 0 else { throw SystemCallError(call: "connect 127.0.0.1:\(port)", errno: errno) }
        var timeout = timeval(tv_sec: receiveTimeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    /// Sends everything (or as much as the peer takes before an error); returns bytes sent.
    @discardableResult
    func write(_ bytes: [UInt8]) -> Int {
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if count <= 0 { break }
            offset += count
        }
        return offset
    }

    @discardableResult
    func write(_ text: String) -> Int { write(Array(text.utf8)) }

    /// Reads one response: status line, headers, and a body of Content-Length bytes. Nil on
    /// EOF, reset or timeout before it is complete.
    func readResponse(toHead isHead: Bool = false) -> HTTPTestResponse? {
        var buffer: [UInt8] = []
        while true {
            if let end = buffer.firstRange(of: Array("\r\n\r\n".utf8)) {
                let head = String(decoding: buffer[..<end.lowerBound], as: UTF8.self)
                let lines = head.components(separatedBy: "\r\n")
                let status = Int(lines[0].split(separator: " ").dropFirst().first ?? "") ?? 0
                var headers: [String: String] = [:]
                for line in lines.dropFirst() {
                    guard let colon = line.firstIndex(of: ":") else { continue }
                    headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
                let length = isHead ? 0 : (Int(headers["content-length"] ?? "0") ?? 0)
                while buffer.count - end.upperBound < length {
                    guard let chunk = readChunk() else { return nil }
                    buffer += chunk
                }
                let body = Array(buffer[end.upperBound..<(end.upperBound + length)])
                return HTTPTestResponse(status: status, headers: headers, body: body)
            }
            guard let chunk = readChunk() else { return nil }
            buffer += chunk
        }
    }

    private func readChunk() -> [UInt8]? {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(fd, &chunk, chunk.count, 0)
            // A signal landing on this thread is not the server's answer: read again.
            if count < 0 && errno == EINTR { continue }
            return count > 0 ? Array(chunk[..<count]) : nil
        }
    }

    /// Whether nothing has ended the connection yet (no EOF, reset or bytes waiting).
    func isOpen() -> Bool {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_DONTWAIT) | Int32(MSG_PEEK)) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
    }

    /// Whether the server closed the connection (EOF or reset) within the receive timeout;
    /// anything it sends first is read and ignored.
    func closedByServer() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(fd, &chunk, chunk.count, 0)
            if count > 0 { continue }
            if count == 0 { return true }
            return errno == ECONNRESET
        }
    }
}

struct HTTPTestResponse {
    var status: Int
    var headers: [String: String]
    var body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }
}

/// A server on a free loopback port serving `KnownFigures.sample`, with a switchable `/healthz`.
final class TestMetricsServer: Sendable {
    let server: ControlHTTPServer
    let healthy = Atomic<Bool>(true)
    let scrapes = Atomic<Int>(0)
    /// The format of the latest `/metrics` answer.
    let lastFormat = Mutex<ExpositionFormat?>(nil)

    /// `fixedBody`, when given, is served as `/metrics` instead of the exposition.
    init(requestTimeout: Duration = .seconds(5), maxConnections: Int = 64, sample: MetricsSample = KnownFigures.sample,
         fixedBody: [UInt8]? = nil) throws {
        let box = UncheckedBox<TestMetricsServer?>(nil)
        server = try ControlHTTPServer(
            host: "127.0.0.1", port: 0, requestTimeout: requestTimeout, maxConnections: maxConnections,
            render: { format in
                box.value?.scrapes.wrappingAdd(1, ordering: .relaxed)
                box.value?.lastFormat.withLock { $0 = format }
                return fixedBody ?? MetricsExposition.render(sample, format: format)
            },
            health: { InstanceReadiness.ready.healthz(anyBackendSelectable: box.value?.healthy.load(ordering: .relaxed) ?? false) })
        box.value = self
    }

    var port: Int { server.port }

    /// GET /metrics on a new connection.
    func scrape(accept: String? = nil) throws -> HTTPTestResponse? {
        let connection = try RawHTTPConnection(port: port)
        connection.write("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\(accept.map { "Accept: \($0)\r\n" } ?? "")\r\n")
        return connection.readResponse()
    }
}

/// Lets the render closure reach the object that owns the server; set once before any request.
final class UncheckedBox<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}

@Suite struct MetricsServerTests {
    static let expectedBody = MetricsExposition.render(KnownFigures.sample)

    @Test func metricsAnswersWithTheTextExposition() throws {
        let server = try TestMetricsServer()
        let response = try #require(try server.scrape())
        #expect(response.status == 200)
        #expect(response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
        #expect(response.body == Self.expectedBody)
    }

    @Test func openMetricsWhenTheScraperAsksForIt() throws {
        let server = try TestMetricsServer()
        let response = try #require(try server.scrape(accept: "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"))
        #expect(response.status == 200)
        #expect(response.headers["content-type"] == "application/openmetrics-text; version=1.0.0; charset=utf-8")
        #expect(response.text.hasSuffix("# EOF\n"))
        #expect(response.body == MetricsExposition.render(KnownFigures.sample, format: .openMetrics))
    }

    @Test func healthzFollowsWhetherABackendIsSelectable() throws {
        let server = try TestMetricsServer()
        let connection = try RawHTTPConnection(port: server.port)
        connection.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        let up = try #require(connection.readResponse())
        #expect(up.status == 200)
        #expect(up.text == "ok\n")
        server.healthy.store(false, ordering: .relaxed)
        // Same connection: keep-alive is honoured.
        connection.write("GET /healthz?probe=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        let down = try #require(connection.readResponse())
        #expect(down.status == 503)
        #expect(down.text == "no backend is selectable\n")
        connection.write("HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let head = try #require(connection.readResponse(toHead: true))
        #expect(head.status == 503)
        #expect(head.headers["content-length"] == "25")
        #expect(head.headers["connection"] == "close")
        #expect(connection.closedByServer())
    }

    @Test(arguments: [
        ("GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n", 404, nil),
        ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 404, nil),
        ("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", 405, "GET, HEAD"),
        ("DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 405, "GET, HEAD"),
    ] as [(String, Int, String?)])
    func wrongPathOrMethodGetsAnHTTPErrorAndTheServerGoesOn(request: String, status: Int, allow: String?) throws {
        let server = try TestMetricsServer()
        let connection = try RawHTTPConnection(port: server.port)
        connection.write(request)
        let response = try #require(connection.readResponse())
        #expect(response.status == status)
        #expect(response.headers["allow"] == allow)
        #expect(server.scrapes.load(ordering: .relaxed) == 0)
        #expect(try server.scrape()?.body == Self.expectedBody)
    }

    @Test(arguments: [
        "\u{0}\u{1}\u{2}garbage\r\n\r\n",
        "GET /metrics HTTP/9.9\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nHost x\r\n\r\n",
        "\r\n\r\n\r\n\r\nHELLO\r\n\r\n",
    ])
    func garbageGetsBadRequestAndTheServerGoesOn(garbage: String) throws {
        let server = try TestMetricsServer()
        let connection = try RawHTTPConnection(port: server.port)
        connection.write(garbage)
        let response = try #require(connection.readResponse())
        #expect(response.status == 400)
        #expect(response.headers["connection"] == "close")
        #expect(connection.closedByServer())
        #expect(try server.scrape()?.body == Self.expectedBody)
    }

    @Test func oneMebibyteHeaderIsRefusedWith431AndTheServerGoesOn() throws {
        let server = try TestMetricsServer()
        let connection = try RawHTTPConnection(port: server.port)
        let request = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + String(repeating: "a", count: 1 << 20) + "\r\n\r\n"
        connection.write(request)
        let response = try #require(connection.readResponse())
        #expect(response.status == 431)
        #expect(response.text.contains("request headers too large"))
        #expect(connection.closedByServer())
        #expect(server.scrapes.load(ordering: .relaxed) == 0)
        #expect(try server.scrape()?.body == Self.expectedBody)
    }

    @Test func clientThatNeverFinishesIsClosedAfterTheTimeoutWhileOthersAreServed() throws {
        let server = try TestMetricsServer(requestTimeout: .seconds(3))
        let clock = ContinuousClock()
        let start = clock.now
        let unfinished = try RawHTTPConnection(port: server.port)
        unfinished.write("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        let silent = try RawHTTPConnection(port: server.port)
        // Both are open and waiting; a scrape is still answered, before either is closed (an
        // order, not a time: a sanitizer's slow run may take long over it).
        #expect(try server.scrape()?.body == Self.expectedBody)
        if clock.now - start < .milliseconds(2500) {
            #expect(unfinished.isOpen() && silent.isOpen(), "a waiting client was closed before the request timeout")
        }
        // Trickling bytes does not extend the allowance.
        for _ in 0..<3 {
            usleep(200_000)
            unfinished.write("a")
        }
        #expect(unfinished.closedByServer())
        #expect(silent.closedByServer())
        #expect(clock.now - start >= .milliseconds(2900), "closed before the 3 s request timeout")
        #expect(try server.scrape()?.body == Self.expectedBody)
    }

    @Test func clientThatNeverReadsIsClosedAfterTheTimeout() throws {
        // A response far larger than the socket buffers can hold.
        let server = try TestMetricsServer(requestTimeout: .seconds(1), fixedBody: [UInt8](repeating: 0x41, count: 16 << 20))
        let lazy = try RawHTTPConnection(port: server.port)
        var small: Int32 = 4096
        setsockopt(lazy.fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        lazy.write("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        usleep(1_500_000)
        // The server has closed its socket by now; the kernel may still be delivering what it
        // had queued, so ask: a byte sent to a closed socket is answered with a reset.
        lazy.write("x")
        usleep(200_000)
        // Drain what already arrived; then a live connection would say EAGAIN, a reset one ECONNRESET.
        var chunk = [UInt8](repeating: 0, count: 65536)
        var result = 0
        var code: Int32 = 0
        for _ in 0..<10_000 {
            result = recv(lazy.fd, &chunk, chunk.count, Int32(MSG_DONTWAIT))
            code = errno
            if result <= 0 { break }
        }
        #expect(result == 0 || (result < 0 && code == ECONNRESET), "recv returned \(result), errno \(code)")
        #expect(try server.scrape()?.status == 200)
    }

    @Test func connectionsPastTheLimitAreClosedAtAccept() throws {
        let server = try TestMetricsServer(maxConnections: 2)
        let first = try RawHTTPConnection(port: server.port)
        let second = try RawHTTPConnection(port: server.port)
        usleep(100_000)
        let third = try RawHTTPConnection(port: server.port)
        #expect(third.closedByServer())
        first.write("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(first.readResponse()?.body == Self.expectedBody)
        _ = second
    }

    /// One client holding every connection it may (here a quarter of 8, so 2) leaves the rest to
    /// others: its third is closed at accept while another address still gets an answer.
    @Test func oneClientMayHoldOnlyAQuarterOfTheConnections() throws {
        let server = try TestMetricsServer(maxConnections: 8)
        var held = try (0..<2).map { _ in try RawHTTPConnection(port: server.port, from: "127.0.0.2") }
        usleep(100_000)
        let third = try RawHTTPConnection(port: server.port, from: "127.0.0.2")
        #expect(third.closedByServer())
        let other = try RawHTTPConnection(port: server.port, from: "127.0.0.3")
        other.write("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(other.readResponse()?.body == Self.expectedBody)
        // Places come back when its connections close.
        held.removeAll()
        var answered = false
        for _ in 0..<50 where !answered {
            usleep(100_000)
            guard let again = try? RawHTTPConnection(port: server.port, from: "127.0.0.2") else { continue }
            again.write("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            answered = again.readResponse()?.body == Self.expectedBody
        }
        #expect(answered, "127.0.0.2 got no place back after closing its connections")
    }

    @Test func bindingATakenPortFailsWithALine() throws {
        let server = try TestMetricsServer()
        #expect {
            _ = try ControlHTTPServer(host: "127.0.0.1", port: server.port, render: { _ in [] }, health: { (true, "ok\n") })
        } throws: { error in
            "\(error)".hasPrefix("cannot listen for metrics on 127.0.0.1:\(server.port): ")
        }
    }

    @Test func stopClosesTheListener() throws {
        let server = try TestMetricsServer()
        let port = server.port
        server.server.stop()
        server.server.stop()
        #expect(throws: SystemCallError.self) { _ = try RawHTTPConnection(port: port) }
    }
}
