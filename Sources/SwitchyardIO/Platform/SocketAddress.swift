import CSwitchyard
import Glibc
import SwitchyardCore

/// A resolved IPv4 or IPv6 socket address, ready for connect(2).
struct SocketAddress: Sendable {
    private var storage = sockaddr_storage()
    private(set) var length: socklen_t = 0

    var family: Int32 { Int32(storage.ss_family) }

    /// The address of an IP literal; no lookup.
    init(_ address: IPAddress, port: UInt16) {
        length = SocketAddress.fill(&storage, address: address, port: port)
    }

    /// The endpoint's literal address, or the first TCP address getaddrinfo(3) returns for its
    /// hostname. Blocking for a hostname: the health checker calls it on a lookup thread, once
    /// per backend, and caches the answer.
    /// Throws a message naming the host and gai_strerror's text.
    static func resolve(_ endpoint: Endpoint) throws(ResolveError) -> SocketAddress {
        if let address = endpoint.address { return SocketAddress(address, port: endpoint.port) }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(endpoint.host, String(endpoint.port), &hints, &list)
        guard status == 0 else {
            let text = status == EAI_SYSTEM ? errnoText(Glibc.errno) : String(cString: gai_strerror(status))
            throw ResolveError(message: "cannot resolve \(endpoint.host): \(text)")
        }
        defer { freeaddrinfo(list) }
        var entry = list
        while let info = entry?.pointee {
            if let raw = info.ai_addr, info.ai_family == AF_INET || info.ai_family == AF_INET6 {
                var address = SocketAddress()
                withUnsafeMutableBytes(of: &address.storage) {
                    $0.copyMemory(from: UnsafeRawBufferPointer(start: raw, count: Int(info.ai_addrlen)))
                }
                address.length = info.ai_addrlen
                return address
            }
            entry = info.ai_next
        }
        throw ResolveError(message: "cannot resolve \(endpoint.host): no IPv4 or IPv6 address")
    }

    private init() {}

    /// Lends the address to `body` as the pointer connect(2) takes.
    func withSockaddr<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        withUnsafeBytes(of: storage) { bytes in
            body(bytes.baseAddress!.assumingMemoryBound(to: sockaddr.self), length)
        }
    }
}

struct ResolveError: Error, Sendable, CustomStringConvertible {
    var description: String { message }
    var message: String
}

/// Conversions between `IPAddress` and C socket addresses kept in a caller's `sockaddr_storage`
/// (the workers keep one per connection slot, alive until the connect completes).
extension SocketAddress {
    /// The IP address part, or nil for another family.
    var ipAddress: IPAddress? { SocketAddress.ipAddress(of: storage) }

    /// Fills `storage` with the address of `address`:`port`; returns the length to pass to the kernel.
    static func fill(_ storage: inout sockaddr_storage, address: IPAddress, port: UInt16) -> socklen_t {
        storage = sockaddr_storage()
        switch address {
        case let .v4(a, b, c, d):
            return withUnsafeMutableBytes(of: &storage) { raw in
                let sin = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self)
                sin.pointee.sin_family = sa_family_t(AF_INET)
                sin.pointee.sin_port = port.bigEndian
                sin.pointee.sin_addr.s_addr = (UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)).bigEndian
                return socklen_t(MemoryLayout<sockaddr_in>.size)
            }
        case let .v6(bytes):
            return withUnsafeMutableBytes(of: &storage) { raw in
                let sin6 = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self)
                sin6.pointee.sin6_family = sa_family_t(AF_INET6)
                sin6.pointee.sin6_port = port.bigEndian
                withUnsafeMutableBytes(of: &sin6.pointee.sin6_addr) { target in
                    for (index, byte) in bytes.enumerated() { target[index] = byte }
                }
                return socklen_t(MemoryLayout<sockaddr_in6>.size)
            }
        }
    }

    /// The address family of `address`.
    static func family(of address: IPAddress) -> Int32 {
        address.isIPv6 ? AF_INET6 : AF_INET
    }

    /// Decodes the address part of a socket address, or nil for other families.
    static func ipAddress(of storage: sockaddr_storage) -> IPAddress? {
        var copy = storage
        return withUnsafeBytes(of: &copy) { raw -> IPAddress? in
            switch Int32(storage.ss_family) {
            case AF_INET:
                let sin = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self).pointee
                let value = UInt32(bigEndian: sin.sin_addr.s_addr)
                return .v4(UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff))
            case AF_INET6:
                let sin6 = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self).pointee
                var bytes = [UInt8](repeating: 0, count: 16)
                withUnsafeBytes(of: sin6.sin6_addr) { source in
                    for index in 0..<16 { bytes[index] = source[index] }
                }
                return .v6(bytes)
            default:
                return nil
            }
        }
    }

    /// The port of a socket address (host order).
    static func port(of storage: sockaddr_storage) -> UInt16 {
        var copy = storage
        return withUnsafeBytes(of: &copy) { raw in
            switch Int32(storage.ss_family) {
            case AF_INET: UInt16(bigEndian: raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self).pointee.sin_port)
            case AF_INET6: UInt16(bigEndian: raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self).pointee.sin6_port)
            default: 0
            }
        }
    }
}

/// Resolves an endpoint whose host is not an IP literal (see `SocketAddress.resolve`) and keeps
/// the host as written. Blocking: call it on the main thread or the control side, never on a worker.
public func resolve(_ endpoint: Endpoint) throws(ConfigError) -> Endpoint {
    if endpoint.address != nil { return endpoint }
    let socketAddress: SocketAddress
    do {
        socketAddress = try SocketAddress.resolve(endpoint)
    } catch {
        throw ConfigError(error.message)
    }
    guard let address = socketAddress.ipAddress else {
        throw ConfigError("cannot resolve \(endpoint.host): no IPv4 or IPv6 address")
    }
    var resolved = endpoint
    resolved.address = address
    return resolved
}
