import Testing
@testable import SwitchyardCore

/// The table of issue 17's example, plus a wildcard over a shorter suffix and an exact name
/// under a wildcard.
private func exampleRoutes(default defaultTarget: String? = "web-tls") throws -> SNIRoutes<String> {
    try SNIRoutes([
        ("api.example.com", "kube-api"),
        ("*.db.example.com", "postgres-tls"),
        ("*.example.com", "any-example"),
        ("primary.db.example.com", "postgres-primary"),
    ], default: defaultTarget)
}

@Suite struct SNIRoutesTests {
    @Test(arguments: [
        ("api.example.com", "kube-api", 0),
        ("API.Example.COM", "kube-api", 0),
        ("a.db.example.com", "postgres-tls", 1),
        ("replica-7.DB.example.com", "postgres-tls", 1),
        ("primary.db.example.com", "postgres-primary", 3),
        ("db.example.com", "any-example", 2),
        ("www.example.com", "any-example", 2),
    ])
    func namesGoToTheLongestMatchingPattern(name: String, target: String, route: Int) throws {
        let decision = try exampleRoutes().route(serverName: name)
        #expect(decision.outcome == .matched(route: route))
        #expect(decision.target == target)
    }

    /// A one-label wildcard matches exactly one label: not the suffix itself, not two labels.
    @Test(arguments: ["example.com", "a.b.db.example.com", "x.y.example.com", "example.org", "com", "", ".db.example.com",
                      "api.example.com.evil", "apiexample.com", "db.example.com.", "a.db.example.co"])
    func namesThatMatchNoPatternGoToTheDefault(name: String) throws {
        let decision = try exampleRoutes().route(serverName: name)
        #expect(decision.outcome == .noMatch, "'\(name)'")
        #expect(decision.target == "web-tls")
    }

    @Test func withoutADefaultUnmatchedConnectionsHaveNoTarget() throws {
        let routes = try exampleRoutes(default: nil)
        #expect(routes.route(serverName: "nope.org").target == nil)
        #expect(routes.route(serverName: nil).target == nil)
        #expect(routes.route(.notTLS).target == nil)
        #expect(routes.route(serverName: "api.example.com").target == "kube-api")
    }

    @Test func helloResultsMapToTheirCounters() throws {
        let routes = try exampleRoutes()
        let cases: [(ClientHelloResult, SNIRoutes<String>.Decision.Outcome, String?)] = [
            (.hello(sni: "api.example.com", alpn: ["h2"]), .matched(route: 0), "kube-api"),
            (.hello(sni: "x.db.example.com", alpn: []), .matched(route: 1), "postgres-tls"),
            (.hello(sni: nil, alpn: ["h2"]), .noServerName, "web-tls"),
            (.hello(sni: "other.org", alpn: []), .noMatch, "web-tls"),
            (.notTLS, .malformed, "web-tls"),
            (.malformed(.sslv2Hello), .malformed, "web-tls"),
            (.malformed(.truncated(.hostName)), .malformed, "web-tls"),
            (.needMoreData, .malformed, "web-tls"),
        ]
        for (hello, outcome, target) in cases {
            let decision = routes.route(hello)
            #expect(decision.outcome == outcome, "\(hello)")
            #expect(decision.target == target, "\(hello)")
        }
    }

    @Test(arguments: CapturedClientHellos.all)
    func capturedHellosAreRouted(_ capture: CapturedClientHello) throws {
        let decision = try exampleRoutes().route(ClientHello.parse(capture.bytes))
        switch capture.serverName {
        case nil:
            #expect(decision.outcome == .noServerName)
        case "api.example.com":
            #expect(decision.outcome == .matched(route: 0))
        case "a.db.example.com", "db1.db.example.com":
            #expect(decision.outcome == .matched(route: 1))
        case "www.example.com", "legacy.example.com":
            #expect(decision.outcome == .matched(route: 2))
        case let name:
            Issue.record("no expectation for \(name ?? "nil")")
        }
    }

    @Test func patternsAreKeptLowercasedInTheirOrder() throws {
        let routes = try SNIRoutes([("API.Example.com", 1), ("*.DB.example.com", 2)])
        #expect(routes.routes.map(\.pattern) == ["api.example.com", "*.db.example.com"])
        #expect(routes.routes.map(\.target) == [1, 2])
        #expect(routes.defaultTarget == nil)
        #expect(routes.route(serverName: "x.db.EXAMPLE.com").target == 2)
    }

    @Test func anEmptyTableSendsEverythingToTheDefault() throws {
        let routes = try SNIRoutes<String>([], default: "fallback")
        #expect(routes.route(serverName: "a.example.com").outcome == .noMatch)
        #expect(routes.route(serverName: "a.example.com").target == "fallback")
    }

    @Test(arguments: [
        ("", "route-by-sni: a pattern is empty"),
        ("*", "route-by-sni: '*' matches every name; use default instead"),
        ("*.", "route-by-sni: '*.' matches every name; use default instead"),
        ("a*.example.com", "route-by-sni: 'a*.example.com' may have '*' only as its whole first label, as in *.example.com"),
        ("*a.example.com", "route-by-sni: '*a.example.com' may have '*' only as its whole first label, as in *.example.com"),
        ("api.*.com", "route-by-sni: 'api.*.com' may have '*' only as its whole first label, as in *.example.com"),
        ("**.example.com", "route-by-sni: '**.example.com' may have '*' only as its whole first label, as in *.example.com"),
        ("*.*.example.com", "route-by-sni: '*.*.example.com' may have '*' only as its whole first label, as in *.example.com"),
        ("*.example.com.", "route-by-sni: '*.example.com.' is not '*.' followed by a valid host name"),
        ("*..com", "route-by-sni: '*..com' is not '*.' followed by a valid host name"),
        ("example.com.", "route-by-sni: 'example.com.' is not a valid host name (letters, digits, '-', '_' in dot-separated labels, no trailing dot)"),
        ("-bad.example.com", "route-by-sni: '-bad.example.com' is not a valid host name (letters, digits, '-', '_' in dot-separated labels, no trailing dot)"),
        ("a..b", "route-by-sni: 'a..b' is not a valid host name (letters, digits, '-', '_' in dot-separated labels, no trailing dot)"),
        ("ex ample.com", "route-by-sni: 'ex ample.com' is not a valid host name (letters, digits, '-', '_' in dot-separated labels, no trailing dot)"),
        ("exämple.com", "route-by-sni: 'exämple.com' is not a valid host name (letters, digits, '-', '_' in dot-separated labels, no trailing dot)"),
    ])
    func badPatternsSayWhatIsWrong(pattern: String, message: String) {
        #expect(throws: ConfigError(message)) { try SNIRoutes([(pattern, "x")]) }
    }

    @Test(arguments: [
        ["api.example.com", "API.example.com"], ["*.db.example.com", "*.DB.Example.Com"], ["a.b", "x.y", "a.b"],
    ])
    func aPatternGivenTwiceIsRefused(patterns: [String]) {
        let duplicate = patterns.last!
        #expect(throws: ConfigError("route-by-sni: '\(duplicate)' is given twice (names compare case-insensitively)")) {
            try SNIRoutes(patterns.map { ($0, "x") })
        }
    }

    @Test func anExactNameAndTheWildcardOverItsSuffixCoexist() throws {
        let routes = try SNIRoutes([("example.com", "apex"), ("*.example.com", "sub")])
        #expect(routes.route(serverName: "example.com").target == "apex")
        #expect(routes.route(serverName: "www.example.com").target == "sub")
    }
}
