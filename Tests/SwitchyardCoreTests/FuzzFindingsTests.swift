import Testing
@testable import SwitchyardCore

/// Inputs that the fuzz targets in Fuzz/ found breaking a parser's promise, each kept as a test
/// after the fix (the input that failed is in the test's arguments, as `Scripts/fuzz` saved it).
@Suite struct FuzzFindingsTests {
    /// FuzzClientControls: a CRLF line end made one Swift `Character`, so the fuzz driver's
    /// line split kept `deny 05.1.0.0/\r\ndenffff:10.1.0.1` as one argument, and the CIDR parser
    /// quoted it in its refusal: an error of two lines. Every `ConfigError` now escapes control
    /// characters, whatever text it quotes.
    @Test func aRefusalQuotingALineBreakIsStillOneLine() throws {
        let input = "a\u{FF}fz0.0.\u{98}:8\ndeny 05\u{F0}1.0.0/8\ndeny 05.1.0.0/\r\ndenffff:10.1.0.1"
        ClientControls.fuzz(input)  // Trapped before.
        #expect(throws: ConfigError.self) { try CIDR(parsing: "05.1.0.0/\r\ndenffff:10.1.0.1") }
        do {
            _ = try CIDR(parsing: "05.1.0.0/\r\ndenffff:10.1.0.1")
        } catch {
            #expect(!error.message.contains("\n") && !error.message.contains("\r") && error.message.contains("\\r\\n"), "\(error.message)")
        }
        #expect(ConfigError("a\tb\u{7}").message == "a\\tb\\x07")
    }

    /// FuzzDuration: `17777000731467.77us` parsed to 17777000731 whole milliseconds, but
    /// `17777000731ms` read back as 17777000730: the value was a `Double` product, a few
    /// nanoseconds short past about 100 days. Whole numbers of a unit are now exact.
    @Test(arguments: [
        ("17777000731ms", Int64(17_777_000_731)),
        ("17777000731467.77us", 17_777_000_731),
        ("31622399999ms", 31_622_399_999),
        ("8784h", 31_622_400_000),
        ("527040m", 31_622_400_000),
        ("0.001s", 1),
        ("0.1s", 100),
        ("00000000000000000000000000002s", 2000),
        (".5s", 500),
        ("1.s", 1000),
    ])
    func wholeUnitsParseExactly(text: String, milliseconds: Int64) throws {
        #expect(try Duration(parsing: text).milliseconds == milliseconds)
    }

    @Test func fractionsRoundToTheNanosecond() throws {
        #expect(try Duration(parsing: "1.0000000004s") == .seconds(1))
        #expect(try Duration(parsing: "1.0000000006s") == .nanoseconds(1_000_000_001))
        #expect(try Duration(parsing: "0.5us") == .nanoseconds(500))
    }

    /// FuzzBackendSpec: `slow-start=0.2560256h` parsed to 921,692.16 ms but was written back as
    /// `921692ms`, a different backend. A slow-start window is now whole milliseconds.
    @Test func aSlowStartWithAFractionOfAMillisecondReadsBackAsParsed() throws {
        let spec = try BackendSpec(parsing: "w.086d:2256,slow-start=0.2560256h")
        #expect(spec.slowStart == .milliseconds(921_692))
        #expect(try BackendSpec(parsing: spec.description) == spec)
    }

    /// FuzzHealthSteps: `expect: {string}` (a key without a value) trapped on a forced unwrap in
    /// the step decoder. A pattern or send key without a value is now an error at that key.
    @Test(arguments: ["{expect: {string}}", "{expect: {hex}}", "{expect: {regex}}", "{send}", "{send-hex}"])
    func aStepKeyWithoutAValueIsRefusedAtTheKey(step: String) {
        let text = "services:\n  a:\n    listen: [127.0.0.1:1]\n    backends: [127.0.0.1:2]\n    health:\n      steps: [\(step)]\n"
        #expect(throws: ConfigFileError.self) { try ConfigFile.parse(text, file: "s.yaml") }
        HealthStepScript.fuzz("- send: \"AUTH s3cret\\r\\n\"\n- expect: {string: match, match: prefix}\n- send: \"PING\"\n- \(step)\n===\n+OK")
    }

    /// FuzzHealthSteps: a regex step whose YAML text holds `\n` (decoded to a newline) put the
    /// newline into the failing step's verdict, and so into `show backends` and a log line split
    /// in two. A step's summary and the servers' texts in verdicts are now escaped to one line.
    @Test func aFailingStepWithANewlineInItsRegexIsOneLine() {
        var script = HealthStepScript([.expect(HealthExpectation(.regex("role:(master|slave)\r.\n"), match: .contains))])
        _ = script.advance(.connected)
        _ = script.advance(.received(Array("$30\0\n# Replic".utf8)))
        guard case let .fail(verdict) = script.advance(.closed) else { Issue.record("no failure"); return }
        #expect(verdict == "step 1 (expect contains /role:(master|slave)\\r.\\n/): got '$30\\x00\\n# Replic' (then closed)")
        HealthStepScript.fuzz("- expect: {regex: \"role:(master|slave)\\\\r.\\n\"}\n===\n$30\0\n# Replic")
        var postgres = PostgresHealthDialog(user: "u", database: nil)
        let fields: [UInt8] = Array("SFATAL\0Mtwo\nlines\0\0".utf8)
        _ = postgres.advance(.connected)
        #expect(postgres.advance(.received([0x45, 0, 0, 0, UInt8(fields.count + 4)] + fields)) == .fail("PostgreSQL error: FATAL: two\\nlines"))
    }

    @Test(arguments: ["8784.0001h", "31622400001ms", "99999999999999999999s", ".s", "1..5s", "1.5.s"])
    func durationsPastTheLimitOrMalformedAreRefused(text: String) {
        #expect(throws: ConfigError.self) { try Duration(parsing: text) }
    }

    /// FuzzAgentReply: the text of `up 5% # \u{06DB}e` kept its leading space, because a space
    /// followed by a combining mark is one Character and trimming went by Characters; written
    /// back, it read as another text. The text is now trimmed as bytes.
    @Test func anAgentsTextStartingWithACombiningMarkIsTrimmedAndReadsBack() throws {
        let reply = try AgentReply.parse(Array("up, 5% maxconn:X5 #\u{06DB}ereadye\n".utf8))
        #expect(reply.text == "\u{06DB}ereadye")
        let spaced = try AgentReply.parse(Array("up # \u{06DB}e \t\n".utf8))
        #expect(spaced.text?.unicodeScalars.first == "\u{06DB}" && spaced.text?.unicodeScalars.last == "e")
        #expect(try AgentReply.parse(Array("up # \(spaced.text!)".utf8)) == spaced)
    }
}
