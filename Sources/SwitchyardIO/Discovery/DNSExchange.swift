import CSwitchyard
import Glibc
import SwitchyardCore

/// How one question is asked: each attempt waits `timeout` for an answer; `attempts` rounds go
/// through every server in turn, as glibc's stub resolver does (resolv.conf(5) `timeout`, `attempts`).
public struct DNSQueryPolicy: Hashable, Sendable {
    /// IP literals with their ports (53 for `/etc/resolv.conf` servers).
    public var servers: [Endpoint]
    public var timeout: Duration
    public var attempts: Int

    public init(servers: [Endpoint], timeout: Duration = .seconds(1), attempts: Int = 2) {
        self.servers = servers
        self.timeout = timeout
        self.attempts = attempts
    }

    /// Throws a `ConfigError` when a server is not an IP literal, none is given, or the timeout
    /// or attempts are out of bounds (100ms to 30s, 1 to 5).
    public func validate() throws(ConfigError) {
        guard !servers.isEmpty else { throw ConfigError("resolvers: at least one DNS server is needed") }
        for server in servers where server.address == nil {
            throw ConfigError("resolvers: '\(server)' must be an IP address with a port, such as 10.0.0.53:53")
        }
        guard timeout >= .milliseconds(100), timeout <= .seconds(30) else {
            throw ConfigError("DNS query timeout \(timeout.shortDescription) must be from 100ms to 30s")
        }
        guard (1...5).contains(attempts) else {
            throw ConfigError("DNS query attempts \(attempts) must be from 1 to 5")
        }
    }
}

/// One question (a name and a type) asked of the servers until one answers it, confined to the
/// discovery thread.
///
/// Each attempt uses a fresh socket (so a fresh random source port) and a fresh random id, and
/// its UDP socket is connected to the server, so the kernel drops datagrams from anyone else;
/// a datagram that is not the answer to this query is dropped and the wait goes on (RFC 5452).
/// A truncated answer is asked again of the same server over TCP (RFC 7766). SERVFAIL, REFUSED
/// and other error codes, refused connections and timeouts move on to the next attempt; the
/// last such failure is the result when every attempt has failed. NOERROR (with or without
/// records) and NXDOMAIN end the exchange.
final class DNSExchange {
    enum Outcome {
        case answered(DNSReply)
        case failed(DNSResolutionFailure)
    }

    private enum Transport {
        case udp
        case tcpConnecting
        case tcpSending(offset: Int)
        case tcpReading([UInt8])
    }

    /// Largest datagram read: far more than the 512 bytes a server may send without EDNS, so a
    /// server that sends more is still understood.
    private static let datagramCapacity = 4096

    let name: DNSName
    let type: DNSRecordType
    private let policy: DNSQueryPolicy
    private var attempt = -1
    private var transport = Transport.udp
    private var query: DNSQuery
    private var lastFailure: DNSResolutionFailure?
    private(set) var fd: Int32 = -1
    private(set) var deadline: ContinuousClock.Instant
    /// DNS messages sent so far (each UDP attempt and each TCP retry counts one).
    private(set) var messagesSent = 0

    init(name: DNSName, type: DNSRecordType, policy: DNSQueryPolicy, now: ContinuousClock.Instant) {
        self.name = name
        self.type = type
        self.policy = policy
        self.query = DNSQuery(id: 0, name: name, type: type)
        self.deadline = now
    }

    deinit {
        closeSocket()
    }

    /// The events to poll for on `fd`.
    var pollEvents: Int16 {
        switch transport {
        case .udp, .tcpReading: Int16(POLLIN)
        case .tcpConnecting, .tcpSending: Int16(POLLOUT)
        }
    }

    private var server: Endpoint { policy.servers[attempt % policy.servers.count] }

    /// Sends the first attempt; returns the outcome when it ends at once (every attempt refused).
    func start(now: ContinuousClock.Instant) -> Outcome? {
        nextAttempt(now: now)
    }

    /// Handles poll's `revents` for `fd`; returns the outcome when the exchange ended.
    func handle(revents: Int16, now: ContinuousClock.Instant) -> Outcome? {
        switch transport {
        case .udp:
            return receiveDatagram(now: now)
        case .tcpConnecting:
            let error = Socket.connectError(fd)
            if error != 0 {
                return fail(.system("TCP connect to \(server): \(errnoPhrase(error))"), now: now)
            }
            transport = .tcpSending(offset: 0)
            return sendTCP(from: 0, now: now)
        case let .tcpSending(offset):
            return sendTCP(from: offset, now: now)
        case let .tcpReading(received):
            return receiveTCP(received, now: now)
        }
    }

    /// Ends the current attempt if its deadline has passed; returns the outcome when that was the last one.
    func expire(now: ContinuousClock.Instant) -> Outcome? {
        guard deadline <= now else { return nil }
        return fail(.timeout, now: now)
    }

    /// Closes the socket of the attempt in flight, if any.
    func closeSocket() {
        if fd >= 0 { closeDescriptor(fd) }
        fd = -1
    }

    /// Records `failure` for the attempt that just ended and starts the next one.
    private func fail(_ failure: DNSResolutionFailure, now: ContinuousClock.Instant) -> Outcome? {
        lastFailure = failure
        return nextAttempt(now: now)
    }

    /// Starts attempts until one is under way (returns nil) or none is left (returns the failure).
    private func nextAttempt(now: ContinuousClock.Instant) -> Outcome? {
        closeSocket()
        while true {
            attempt += 1
            guard attempt < policy.attempts * policy.servers.count else {
                return .failed(lastFailure ?? (policy.servers.isEmpty ? .system("no DNS server to ask") : .timeout))
            }
            query = DNSQuery(id: UInt16.random(in: 0...UInt16.max), name: name, type: type)
            transport = .udp
            deadline = now + policy.timeout
            do throws(SystemCallError) {
                fd = try openSocket(datagram: true)
                let bytes = query.bytes
                messagesSent += 1
                let socketFD = fd
                let sent = bytes.withUnsafeBytes { Socket.send(socketFD, $0) }
                if sent < 0 { throw SystemCallError(call: "send to \(server)", errno: Int32(-sent)) }
                return nil
            } catch {
                lastFailure = .system(error.description)
                closeSocket()
            }
        }
    }

    /// A non-blocking socket connected (UDP) or connecting (TCP) to the current server.
    private func openSocket(datagram: Bool) throws(SystemCallError) -> Int32 {
        guard let ip = server.address else {
            throw SystemCallError(call: "connect to \(server): not an IP address", errno: EINVAL)
        }
        let address = SocketAddress(ip, port: server.port)
        let kind = datagram ? SOCK_DGRAM.rawValue : SOCK_STREAM.rawValue
        let socketFD = try systemCall("socket") {
            socket(address.family, Int32(kind) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        let result = Socket.connect(socketFD, to: address)
        let code = -result
        if result != 0 && !(code == EINPROGRESS && !datagram) {
            closeDescriptor(socketFD)
            throw SystemCallError(call: "connect to \(server)", errno: code)
        }
        return socketFD
    }

    private func receiveDatagram(now: ContinuousClock.Instant) -> Outcome? {
        var buffer = [UInt8](repeating: 0, count: Self.datagramCapacity)
        // Drain every queued datagram: stray ones must not hide the answer behind them.
        while true {
            let count = buffer.withUnsafeMutableBytes { Socket.receive(fd, into: $0, flags: Int32(MSG_TRUNC)) }
            if count < 0 {
                let code = Int32(-count)
                if code == EAGAIN { return nil }
                // ECONNREFUSED: an ICMP port unreachable came back, nothing listens there.
                return fail(.system("\(server): \(errnoPhrase(code))"), now: now)
            }
            guard count <= buffer.count else {
                return fail(.malformed("datagram of \(count) bytes from \(server) is larger than \(buffer.count)"), now: now)
            }
            let reply: DNSReply
            do {
                reply = try DNSReply(answering: query, bytes: Array(buffer[0..<count]))
            } catch where error.isForeign {
                continue
            } catch {
                return fail(.malformed("\(error) (from \(server))"), now: now)
            }
            return conclude(reply, now: now)
        }
    }

    /// Acts on a reply to the current attempt, over either transport.
    private func conclude(_ reply: DNSReply, now: ContinuousClock.Instant) -> Outcome? {
        switch reply.outcome {
        case .answer, .nameError:
            closeSocket()
            return .answered(reply)
        case let .failure(code):
            return fail(.serverFailure(code), now: now)
        case .truncated:
            guard case .udp = transport else {
                return fail(.malformed("truncated answer over TCP from \(server)"), now: now)
            }
            return retryOverTCP(now: now)
        }
    }

    private func retryOverTCP(now: ContinuousClock.Instant) -> Outcome? {
        closeSocket()
        deadline = now + policy.timeout
        do throws(SystemCallError) {
            fd = try openSocket(datagram: false)
            transport = .tcpConnecting
            messagesSent += 1
            return nil
        } catch {
            return fail(.system(error.description), now: now)
        }
    }

    private func sendTCP(from offset: Int, now: ContinuousClock.Instant) -> Outcome? {
        let bytes = query.tcpBytes
        let sent = bytes.withUnsafeBytes { Socket.send(fd, UnsafeRawBufferPointer(rebasing: $0[offset...])) }
        if sent < 0 {
            let code = Int32(-sent)
            if code == EAGAIN {
                transport = .tcpSending(offset: offset)
                return nil
            }
            return fail(.system("TCP send to \(server): \(errnoPhrase(code))"), now: now)
        }
        transport = offset + sent < bytes.count ? .tcpSending(offset: offset + sent) : .tcpReading([])
        return nil
    }

    private func receiveTCP(_ received: [UInt8], now: ContinuousClock.Instant) -> Outcome? {
        var received = received
        // The length prefix says how much is coming; read no more than that (at most 65537 bytes).
        let expected = received.count >= 2 ? 2 + (Int(received[0]) << 8 | Int(received[1])) : 2
        var chunk = [UInt8](repeating: 0, count: min(expected - received.count, 65536))
        let count = chunk.withUnsafeMutableBytes { Socket.receive(fd, into: $0) }
        if count < 0 {
            let code = Int32(-count)
            if code == EAGAIN { return nil }
            return fail(.system("TCP receive from \(server): \(errnoPhrase(code))"), now: now)
        }
        if count == 0 {
            return fail(.malformed("\(server) closed the TCP connection after \(received.count) of \(expected) bytes"), now: now)
        }
        received += chunk[0..<count]
        let total = received.count >= 2 ? 2 + (Int(received[0]) << 8 | Int(received[1])) : Int.max
        if total == 2 {
            return fail(.malformed("empty TCP message from \(server)"), now: now)
        }
        if received.count == 2 {
            transport = .tcpReading(received)
            // The length is known now: read on at once, the message usually came with it.
            return receiveTCP(received, now: now)
        }
        guard received.count == total else {
            transport = .tcpReading(received)
            return nil
        }
        do {
            // Over TCP nobody else can inject bytes: an answer to another question is an error.
            let reply = try DNSReply(answering: query, bytes: Array(received[2...]))
            transport = .tcpReading(received)
            return conclude(reply, now: now)
        } catch {
            return fail(.malformed("\(error) (from \(server) over TCP)"), now: now)
        }
    }
}
