import Testing
@testable import SwitchyardCore

@Test(arguments: [
    ("PING\\r\\n", Array("PING\r\n".utf8)),
    ("+PONG", Array("+PONG".utf8)),
    ("a\\tb\\nc", Array("a\tb\nc".utf8)),
    ("back\\\\slash", Array("back\\slash".utf8)),
    ("\\x00\\x7f\\xFF", [0x00, 0x7F, 0xFF]),
    ("nul\\0", Array("nul".utf8) + [0]),
    ("", []),
    ("é", [0xC3, 0xA9]),
])
func escapesDecode(_ text: String, _ bytes: [UInt8]) throws {
    #expect(try HealthCheckConfig.decodeEscapes(text) == bytes)
}

@Test(arguments: [
    ("abc\\", "'abc\\' ends with a lone '\\'; write '\\\\' for a backslash"),
    ("\\q", "'\\q': unknown escape '\\q'; use \\r, \\n, \\t, \\0, \\\\ or \\xHH"),
    ("\\x4", "'\\x4': '\\x' must be followed by two hex digits, as in \\x0d"),
    ("\\xZZ", "'\\xZZ': '\\x' must be followed by two hex digits, as in \\x0d"),
])
func badEscapesAreRefusedWithTheirText(_ text: String, _ message: String) {
    #expect(throws: ConfigError(message)) { try HealthCheckConfig.decodeEscapes(text) }
}

@Test func defaultsAreHAProxyLike() {
    let config = HealthCheckConfig()
    #expect(config.interval == .seconds(2))
    #expect(config.timeout == .seconds(1))
    #expect(config.rise == 2)
    #expect(config.fall == 3)
    #expect(config.send == nil && config.expect == nil)
    #expect(config.summary == "tcp connect every 2s, timeout 1s, rise 2, fall 3")
}

@Test func configParsesCommandLineText() throws {
    let config = try HealthCheckConfig(interval: "500ms", timeout: "200ms", rise: 1, fall: 5, send: "PING\\r\\n", expect: "+PONG")
    #expect(config.interval == .milliseconds(500))
    #expect(config.send == Array("PING\r\n".utf8))
    #expect(config.expect == Array("+PONG".utf8))
}

@Test(arguments: [
    (["interval": "1ms"], "health check interval 1ms is too short: use 10ms or more"),
    (["timeout": "0"], "health check timeout must be at least 1ms"),
    (["rise": "0"], "health check rise 0 must be from 1 to 100"),
    (["fall": "101"], "health check fall 101 must be from 1 to 100"),
    (["send": ""], "health check send payload is empty"),
    (["expect": ""], "health check expect text is empty"),
])
func outOfRangeConfigIsRefused(_ values: [String: String], _ message: String) {
    #expect(throws: ConfigError(message)) {
        try HealthCheckConfig(
            interval: values["interval"], timeout: values["timeout"], rise: values["rise"].flatMap { Int($0) },
            fall: values["fall"].flatMap { Int($0) }, send: values["send"], expect: values["expect"])
    }
}

/// `send`/`expect` are the two-step sequence `send`, then `expect` (contains or prefix).
@Test func sendAndExpectRunAsATwoStepSequence() {
    var config = HealthCheckConfig(send: Array("PING\r\n".utf8), expect: Array("PONG".utf8))
    var dialog = config.dialog(checking: Endpoint(host: "127.0.0.1", port: 6379))
    #expect(dialog.advance(.connected) == .send(Array("PING\r\n".utf8)))
    #expect(dialog.advance(.sent) == .receive)
    #expect(dialog.advance(.received(Array("+PON".utf8))) == .receive)
    #expect(dialog.advance(.received(Array("G\r\n".utf8))) == .pass("expected reply"))

    config.expectMatch = .prefix
    dialog = config.dialog(checking: Endpoint(host: "127.0.0.1", port: 6379))
    _ = dialog.advance(.connected)
    _ = dialog.advance(.sent)
    #expect(dialog.advance(.received(Array("+P".utf8))) == .fail("step 2 (expect prefix 'PONG'): got '+P'"),
            "a prefix that already differs fails at once")

    var connectOnly = HealthCheckConfig().dialog(checking: Endpoint(host: "h", port: 1))
    #expect(connectOnly.advance(.connected) == .pass("connected"))
    var sendOnly = HealthCheckConfig(send: [0x41]).dialog(checking: Endpoint(host: "h", port: 1))
    #expect(sendOnly.advance(.connected) == .send([0x41]))
    #expect(sendOnly.advance(.sent) == .pass("connected and sent"))
    var closed = HealthCheckConfig(expect: Array("220".utf8)).dialog(checking: Endpoint(host: "h", port: 1))
    #expect(closed.advance(.connected) == .receive)
    #expect(closed.advance(.closed) == .fail("step 1 (expect contains '220'): got nothing (then closed)"))
}

@Test func hexDecodesPairsWithOptionalSpaces() throws {
    #expect(try HealthCheckConfig.decodeHex("2a310d0a") == [0x2A, 0x31, 0x0D, 0x0A])
    #expect(try HealthCheckConfig.decodeHex("2A 31\t0d 0A") == [0x2A, 0x31, 0x0D, 0x0A])
    #expect(try HealthCheckConfig.decodeHex("") == [])
    #expect(throws: ConfigError("'abc' has an odd number of hex digits; write bytes as pairs, as in 0d0a")) {
        try HealthCheckConfig.decodeHex("abc")
    }
    #expect(throws: ConfigError("'a b': a space splits a byte; write hex digits in pairs, as in 0d0a")) {
        try HealthCheckConfig.decodeHex("a b")
    }
    #expect(throws: ConfigError("'zz': 'z' is not a hex digit; write bytes as pairs, as in 2a310d0a")) {
        try HealthCheckConfig.decodeHex("zz")
    }
    #expect(throws: ConfigError("'\n': '\\n' is not a hex digit; write bytes as pairs, as in 2a310d0a")) {
        try HealthCheckConfig.decodeHex("\n")
    }
}

/// A service's health section of a file, parsed.
private func health(_ section: String) throws -> HealthCheckConfig? {
    let text = "services:\n  a:\n    listen: [127.0.0.1:1]\n    backends: [127.0.0.1:2]\n    health:\n"
        + section.split(separator: "\n").map { "      " + $0 }.joined(separator: "\n") + "\n"
    return try ConfigFile.parse(text, file: "health.yaml").services[0].health
}

@Suite struct HealthFileKeysTests {
    @Test func stepsParseEveryKindOfStep() throws {
        let config = try #require(try health("""
            timeout: 500ms
            steps:
              - send: "AUTH s3cret\\r\\n"
              - expect: {string: "+OK", match: prefix}
              - send-hex: "2a31 0d0a"
              - expect: {hex: "2b504f4e47"}
              - expect: {regex: "role:(master|primary)", match: contains}
              - send: 'QUIT\\r\\n'
              - expect: close
            """))
        #expect(config.steps == [
            .send(Array("AUTH s3cret\r\n".utf8)),
            .expect(HealthExpectation(.bytes(Array("+OK".utf8)), match: .prefix)),
            .send([0x2A, 0x31, 0x0D, 0x0A]),
            .expect(HealthExpectation(.bytes(Array("+PONG".utf8)), match: .contains)),
            .expect(HealthExpectation(.regex("role:(master|primary)"), match: .contains)),
            .send(Array("QUIT\r\n".utf8)),
            .expect(HealthExpectation(.close)),
        ])
        #expect(config.timeout == .milliseconds(500))
        #expect(config.summary == "tcp connect + 7 steps every 2s, timeout 500ms, rise 2, fall 3")
    }

    @Test func typesParseWithTheirOptions() throws {
        var redis = HealthCheckType(.redisPrimary)
        redis.auth = "pw"
        redis.user = "checker"
        #expect(try health("{type: redis-primary, auth: pw, user: checker}")?.type == redis)
        var postgres = HealthCheckType(.postgres)
        postgres.user = "app"
        postgres.database = "orders"
        #expect(try health("{type: postgres, user: app, database: orders}")?.type == postgres)
        #expect(try health("{type: mysql}")?.type == HealthCheckType(.mysql))
        var http = HealthCheckType(.http)
        http.method = "HEAD"
        http.path = "/primary"
        http.host = "patroni"
        http.status = 200...200
        http.body = "ok"
        let parsedHTTP = try health("{type: http, method: HEAD, path: /primary, host: patroni, status: 200, body: ok}")
        #expect(parsedHTTP?.type == http)
        #expect(parsedHTTP?.summary == "http HEAD /primary every 2s, timeout 1s, rise 2, fall 3")
        var smtp = HealthCheckType(.smtp)
        smtp.ehlo = "lb.example.com"
        #expect(try health("{type: smtp, ehlo: lb.example.com}")?.type == smtp)
    }

    @Test func httpDefaultsToGetSlashWithTheTargetAsHost() throws {
        let config = try #require(try health("{type: http}"))
        var dialog = config.dialog(checking: Endpoint(host: "10.0.0.1", port: 8008))
        #expect(dialog.advance(.connected) == .send(Array(
            "GET / HTTP/1.1\r\nHost: 10.0.0.1:8008\r\nUser-Agent: switchyard-health\r\nConnection: close\r\n\r\n".utf8)))
    }

    @Test func checkSendProxyIsAHealthKeyAndABackendOverride() throws {
        let text = """
            services:
              a:
                listen: [127.0.0.1:1]
                health: {check-send-proxy: true}
                send-proxy: v2
                backends:
                  - {address: 127.0.0.1:2}
                  - {address: 127.0.0.1:3, check-send-proxy: false, check-tls: true}
            """
        let service = try ConfigFile.parse(text + "\n", file: "a.yaml").services[0]
        #expect(service.health?.checkSendProxy == true)
        #expect(service.backends.map(\.checkSendProxy) == [nil, false])
        #expect(service.backends.map(\.checkTLS) == [nil, true])
        #expect(try health("{interval: 1s}")?.checkSendProxy == false)
    }

    @Test func defaultsGiveWhatIsCheckedAsAWhole() throws {
        let text = """
            defaults:
              health: {type: redis, auth: pw, check-send-proxy: true, fall: 5}
            services:
              a: {listen: [127.0.0.1:1], backends: [127.0.0.1:2]}
              b: {listen: [127.0.0.1:3], backends: [127.0.0.1:4], health: {send: "PING", expect: "PONG"}}
              c: {listen: [127.0.0.1:5], backends: [127.0.0.1:6], health: {steps: [{expect: close}]}}
            """
        let services = try ConfigFile.parse(text + "\n", file: "d.yaml").services
        #expect(services[0].health?.type?.kind == .redis && services[0].health?.type?.auth == "pw")
        #expect(services[1].health?.type == nil && services[1].health?.send == Array("PING".utf8))
        #expect(services[2].health?.type == nil && services[2].health?.steps == [.expect(HealthExpectation(.close))])
        #expect(services.map { $0.health?.fall } == [5, 5, 5])
        #expect(services.map { $0.health?.checkSendProxy } == [true, true, true])
    }

    @Test(arguments: [
        ("{steps: []}", 6, 15, "steps: health check steps are empty"),
        ("steps:\n  - {send: PING, expect: close}", 7, 11, "a step is a mapping with one key"),
        ("steps:\n  - {recv: x}", 7, 12, "unknown key 'recv' in a health check step"),
        ("steps:\n  - {send: \"\"}", 7, 18, "send: the payload is empty"),
        ("steps:\n  - {send-hex: abc}", 7, 22, "odd number of hex digits"),
        ("steps:\n  - {expect: closed}", 7, 20, "expect: 'closed' must be close or a mapping"),
        ("steps:\n  - {expect: {string: a, regex: b}}", 7, 20, "exactly one of string, regex or hex (found string and regex)"),
        ("steps:\n  - {expect: {regex: \"(open\"}}", 7, 28, "regex: health check regex /(open/ does not compile"),
        ("steps:\n  - {expect: {string: x, match: whole}}", 7, 39, "'whole' is not one of contains, prefix, match"),
        ("{type: redis, path: /}", 6, 27, "'path' is an option of type http, not of redis"),
        ("{path: /}", 6, 14, "'path' is an option of type http: set type too"),
        ("{type: memcached}", 6, 14, "'memcached' is not one of tcp, tls, redis, redis-primary, postgres, mysql, http, smtp"),
        ("{type: http, status: 200-99}", 6, 28, "status: health check status '200-99' must be a code or a range"),
        ("{type: http, path: primary}", 6, 14, "health check path 'primary' must start with /"),
        ("{type: redis, user: u}", 6, 14, "it needs auth"),
        ("{type: redis, send: PING}", 6, 7, "health check send/expect and type cannot be combined"),
        ("{check-send-proxy: yes}", 6, 26, "'yes' must be true or false"),
    ])
    func badHealthKeysAreRefusedAtTheirPosition(_ section: String, _ line: Int, _ column: Int, _ message: String) {
        let text = "services:\n  a:\n    listen: [127.0.0.1:1]\n    backends: [127.0.0.1:2]\n    health:\n"
            + section.split(separator: "\n").map { "      " + $0 }.joined(separator: "\n") + "\n"
        expectConfigFileError(text, line: line, column: column, message: message)
    }
}

/// A reload that changes a backend's `check-send-proxy` says so (the next check uses it).
@Test func aReloadNamesABackendsChangedCheckSendProxy() throws {
    func configuration(_ backend: String) throws -> Configuration {
        try ConfigFile.parse("services:\n  a:\n    listen: [127.0.0.1:1]\n    backends:\n      - \(backend)\n", file: "r.yaml")
    }
    let difference = ConfigDifference(
        from: try configuration("{address: 127.0.0.1:2}"), to: try configuration("{address: 127.0.0.1:2, check-send-proxy: true}"))
    #expect(difference.summary.contains("a: backend 127.0.0.1:2 check-send-proxy the service's -> true"), "\(difference.summary)")
}
