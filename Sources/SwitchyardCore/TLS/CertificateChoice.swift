/// Which of a terminating service's certificates answers a ClientHello: the one whose DNS names
/// (its subjectAltName entries) match the client's SNI, exactly or by a one-label wildcard
/// (`*.example.com` matches `a.example.com`, neither `example.com` nor `a.b.example.com`),
/// an exact name beating a wildcard; the first certificate when none matches or there is no
/// SNI. When two certificates carry the same name, the earlier one answers for it.
///
/// Thread safety: an immutable value, built when the service's TLS context is made and read by
/// every worker during handshakes.
public struct CertificateChoice: Sendable {
    private let routes: SNIRoutes<Int>

    /// `names[i]`: the DNS names of certificate `i`, as read from it. Names that are not valid
    /// host names (an IP address SAN is not a DNS name, a malformed entry) are skipped.
    public init(names: [[String]]) {
        var pairs: [(pattern: String, target: Int)] = []
        var seen: Set<String> = []
        for (index, list) in names.enumerated() {
            for name in list {
                let wildcard = name.hasPrefix("*.")
                guard let host = HostName.normalized(wildcard ? name.dropFirst(2) : Substring(name)) else { continue }
                let pattern = wildcard ? "*." + host : host
                guard seen.insert(pattern).inserted else { continue }
                pairs.append((pattern, index))
            }
        }
        // Every pattern is a normalized, unique host name or wildcard: the table cannot refuse it.
        routes = (try? SNIRoutes(pairs, default: 0)) ?? (try! SNIRoutes([], default: 0))
    }

    /// The index of the certificate for `serverName` (nil: the client sent no SNI).
    public func certificate(for serverName: String?) -> Int {
        routes.route(serverName: serverName).target ?? 0
    }
}
