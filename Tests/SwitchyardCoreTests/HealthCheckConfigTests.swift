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

@Test func replyMatchingByContainsAndPrefix() {
    var config = HealthCheckConfig(expect: Array("PONG".utf8))
    #expect(config.replyMatches(Array("+PONG\r\n".utf8)))
    #expect(!config.replyMatches(Array("+PON".utf8)))
    #expect(config.replyCouldStillMatch(Array("+PON".utf8)))
    config.expectMatch = .prefix
    #expect(!config.replyMatches(Array("+PONG".utf8)))
    #expect(!config.replyCouldStillMatch(Array("+P".utf8)), "a prefix that already differs can never match")
    #expect(config.replyCouldStillMatch(Array("PO".utf8)))
    #expect(config.replyMatches(Array("PONG and more".utf8)))
    #expect(HealthCheckConfig().replyMatches([]), "no expect: anything matches")
}
