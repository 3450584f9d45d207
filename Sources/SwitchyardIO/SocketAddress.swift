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
        switch address {
        case .v4:
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            withUnsafeMutableBytes(of: &sin.sin_addr) { $0.copyBytes(from: address.bytes) }
            setStorage(from: sin)
        case .v6:
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &sin6.sin6_addr) { $0.copyBytes(from: address.bytes) }
            setStorage(from: sin6)
        }
    }

    private mutating func setStorage<Address>(from address: Address) {
        var address = address
        withUnsafeBytes(of: &address) { source in
            withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: source) }
        }
        length = socklen_t(MemoryLayout<Address>.size)
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
