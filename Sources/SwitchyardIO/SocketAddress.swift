import CSwitchyard
import Glibc
import SwitchyardCore

/// Conversions between `IPAddress`/`Endpoint` and C socket addresses, and name resolution.
enum SocketAddress {
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

/// Resolves an endpoint whose host is not an IP literal with getaddrinfo(3), preferring IPv4.
/// Blocking: call it on the main thread or the control side, never on a worker.
public func resolve(_ endpoint: Endpoint) throws(ConfigError) -> Endpoint {
    if endpoint.address != nil { return endpoint }
    var hints = addrinfo()
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var list: UnsafeMutablePointer<addrinfo>?
    let status = getaddrinfo(endpoint.host, nil, &hints, &list)
    guard status == 0, let list else {
        throw ConfigError("cannot resolve '\(endpoint.host)': \(String(cString: gai_strerror(status)))")
    }
    defer { freeaddrinfo(list) }
    var found: [IPAddress] = []
    var cursor: UnsafeMutablePointer<addrinfo>? = list
    while let entry = cursor {
        if let sockaddr = entry.pointee.ai_addr {
            var storage = sockaddr_storage()
            withUnsafeMutableBytes(of: &storage) { target in
                target.copyMemory(from: UnsafeRawBufferPointer(start: sockaddr, count: Int(entry.pointee.ai_addrlen)))
            }
            if let address = SocketAddress.ipAddress(of: storage) { found.append(address) }
        }
        cursor = entry.pointee.ai_next
    }
    guard let chosen = found.first(where: { !$0.isIPv6 }) ?? found.first else {
        throw ConfigError("cannot resolve '\(endpoint.host)': no IPv4 or IPv6 address")
    }
    var resolved = endpoint
    resolved.address = chosen
    return resolved
}
