/// The `route-by-sni` table of a TLS listener: server-name patterns to targets (services), plus an
/// optional default for hellos that match no pattern, carry no server name, or are not hellos.
///
/// Patterns are exact host names (`api.example.com`) or one-label wildcards (`*.db.example.com`,
/// which matches `a.db.example.com` but neither `db.example.com` nor `a.b.db.example.com`).
/// Names compare case-insensitively. The longest match wins: a name can match at most one exact
/// pattern and one wildcard (the one made by replacing its first label with `*`), and the exact
/// pattern is the longer, so an exact pattern beats a wildcard.
///
/// Thread safety: an immutable value, built on the control thread and read by every worker.
public struct SNIRoutes<Target: Sendable>: Sendable {
    public struct Route: Sendable {
        /// The pattern, lowercased.
        public let pattern: String
        public let target: Target
    }

    /// The routes in the order given; a `Decision.Outcome.matched(route:)` is an index here, so a
    /// worker can keep one counter per route in an array.
    public let routes: [Route]
    /// Where a connection goes when no route matches (nil: it is closed).
    public let defaultTarget: Target?

    /// Route index by exact name.
    private let exact: [String: Int]
    /// Route index by the suffix after `*.` of a wildcard pattern.
    private let wildcards: [String: Int]

    /// Builds the table from `(pattern, target)` pairs.
    ///
    /// Throws, with a one-line reason quoting the pattern, for: an empty pattern, a `*` anywhere
    /// but as the whole first label (`a*.example.com`, `api.*.com`, `**.example.com`), a bare `*`
    /// (that is what `default` is for), a name that is not a valid host name (see `HostName`;
    /// this refuses a trailing dot), and a pattern given twice (case-insensitively).
    public init(_ routes: [(pattern: String, target: Target)], default defaultTarget: Target? = nil) throws(ConfigError) {
        var built: [Route] = []
        var exact: [String: Int] = [:]
        var wildcards: [String: Int] = [:]
        for (pattern, target) in routes {
            let normalized: String
            let isWildcard = pattern.hasPrefix("*.")
            if pattern.isEmpty {
                throw ConfigError("route-by-sni: a pattern is empty")
            } else if pattern == "*" || pattern == "*." {
                throw ConfigError("route-by-sni: '\(pattern)' matches every name; use default instead")
            } else if isWildcard {
                let suffix = pattern.dropFirst(2)
                if suffix.contains("*") {
                    throw ConfigError("route-by-sni: '\(pattern)' may have '*' only as its whole first label, as in *.example.com")
                }
                guard let name = HostName.normalized(suffix) else {
                    throw ConfigError("route-by-sni: '\(pattern)' is not '*.' followed by a valid host name")
                }
                normalized = "*." + name
            } else {
                if pattern.contains("*") {
                    throw ConfigError("route-by-sni: '\(pattern)' may have '*' only as its whole first label, as in *.example.com")
                }
                guard let name = HostName.normalized(pattern) else {
                    throw ConfigError("route-by-sni: '\(pattern)' is not a valid host name (letters, digits, '-', '_' in dot-separated labels, no trailing dot)")
                }
                normalized = name
            }
            let index = built.count
            let key = isWildcard ? String(normalized.dropFirst(2)) : normalized
            let inserted = isWildcard
                ? wildcards.updateValue(index, forKey: key) == nil
                : exact.updateValue(index, forKey: key) == nil
            guard inserted else {
                throw ConfigError("route-by-sni: '\(pattern)' is given twice (names compare case-insensitively)")
            }
            built.append(Route(pattern: normalized, target: target))
        }
        self.routes = built
        self.defaultTarget = defaultTarget
        self.exact = exact
        self.wildcards = wildcards
    }

    /// Where a connection goes, and which counter it adds to.
    public struct Decision: Sendable {
        public enum Outcome: Hashable, Sendable {
            /// The route at this index of `routes` matched the server name.
            case matched(route: Int)
            /// A well-formed ClientHello without a server name.
            case noServerName
            /// A server name that no route matches.
            case noMatch
            /// Not a well-formed ClientHello: not TLS, SSLv2, malformed, too large, or cut short
            /// (the client stopped sending or the `sni-timeout` passed first).
            case malformed
        }

        public let outcome: Outcome
        /// The matched route's target, or `defaultTarget` for every other outcome; nil means close.
        public let target: Target?
    }

    /// The route for `serverName` (compared case-insensitively), or the default.
    public func route(serverName: String?) -> Decision {
        guard let serverName else { return Decision(outcome: .noServerName, target: defaultTarget) }
        let name = Self.lowercased(serverName)
        if let index = exact[name] {
            return Decision(outcome: .matched(route: index), target: routes[index].target)
        }
        if let dot = name.firstIndex(of: "."), dot != name.startIndex,
           let index = wildcards[String(name[name.index(after: dot)...])] {
            return Decision(outcome: .matched(route: index), target: routes[index].target)
        }
        return Decision(outcome: .noMatch, target: defaultTarget)
    }

    /// The route for what `ClientHelloReader` made of a connection's first bytes. Pass its
    /// result as it stands when the client closed or `sni-timeout` passed: `needMoreData` then
    /// counts as malformed, like `notTLS` and `malformed`.
    public func route(_ hello: ClientHelloResult) -> Decision {
        switch hello {
        case let .hello(serverName, _):
            return route(serverName: serverName)
        case .needMoreData, .notTLS, .malformed:
            return Decision(outcome: .malformed, target: defaultTarget)
        }
    }

    /// ASCII lowercase: host names are ASCII, and anything else will match no pattern anyway.
    private static func lowercased(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 >= 0x41 && $0 <= 0x5A }) else { return text }
        return String(decoding: text.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self)
    }
}
