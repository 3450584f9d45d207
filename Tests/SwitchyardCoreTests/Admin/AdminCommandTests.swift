import Testing
@testable import SwitchyardCore

private func endpoint(_ text: String) -> Endpoint { try! Endpoint(parsing: text) }
private func name(_ text: String) -> BackendName { try! BackendName(parsing: text) }

@Test(arguments: [
    ("help", AdminCommand.help),
    ("HELP", .help),
    ("show backends", .showBackends(service: nil, json: false)),
    ("show backends pg-primary json", .showBackends(service: "pg-primary", json: true)),
    ("show services", .showServices(json: false)),
    ("show services json", .showServices(json: true)),
    ("show certificates", .showCertificates(json: false)),
    ("show certificates json", .showCertificates(json: true)),
    ("reload", .reload),
    ("drain pg/10.0.0.1:80", .drain(BackendName(service: "pg", endpoint: endpoint("10.0.0.1:80")))),
    ("add redis/10.0.0.9:80,weight=5", .add(service: "redis", BackendSpec(endpoint: endpoint("10.0.0.9:80"), weight: 5, weightGiven: true))),
    ("show backends json", .showBackends(service: nil, json: true)),
    ("  show\tstats   JSON ", .showStats(json: true)),
    ("show stats\r", .showStats(json: false)),
    ("drain 10.0.0.1:80", .drain(name("10.0.0.1:80"))),
    ("ready [::1]:8080", .ready(name("[::1]:8080"))),
    ("maint web-1.internal:80", .maint(name("web-1.internal:80"))),
    ("weight 10.0.0.1:80 0", .weight(name("10.0.0.1:80"), 0)),
    ("weight 10.0.0.1:80 256", .weight(name("10.0.0.1:80"), 256)),
    ("add 10.0.0.9:80", .add(service: nil, BackendSpec(endpoint: endpoint("10.0.0.9:80")))),
    ("add 10.0.0.9:80,weight=5", .add(service: nil, BackendSpec(endpoint: endpoint("10.0.0.9:80"), weight: 5, weightGiven: true))),
    ("remove 10.0.0.1:80", .remove(name("10.0.0.1:80"))),
    ("wait 10.0.0.1:80 30s", .wait(name("10.0.0.1:80"), .seconds(30))),
    ("wait 10.0.0.1:80 250ms", .wait(name("10.0.0.1:80"), .milliseconds(250))),
    ("shutdown 10.0.0.1:80", .shutdown(name("10.0.0.1:80"))),
])
func adminCommandsParse(_ line: String, _ command: AdminCommand) throws {
    #expect(try AdminCommand(parsing: line) == command)
}

@Test(arguments: [
    ("", "empty command; send 'help' for the list"),
    ("   \t ", "empty command; send 'help' for the list"),
    ("frobnicate", "unknown command 'frobnicate'; send 'help' for the list"),
    ("help me", "too many arguments; usage: help"),
    ("show", "missing arguments; usage: show backends [SERVICE] [json], show services [json], show stats [json], show sources [SERVICE] [json] or show certificates [json]"),
    ("show clients", "cannot show 'clients'; usage: show backends [SERVICE] [json], show services [json], show stats [json], show sources [SERVICE] [json] or show certificates [json]"),
    ("show backends a b", "too many arguments; usage: show backends [SERVICE] [json]"),
    ("show backends bad/name", "'bad/name' is not a service name; usage: show backends [SERVICE] [json]"),
    ("show stats xml", "unknown format 'xml'; usage: show stats [json]"),
    ("reload now", "too many arguments; usage: reload"),
    ("drain b@d/10.0.0.1:80", "bad BACKEND: 'b@d' in 'b@d/10.0.0.1:80' is not a service name (letters, digits, '_', '.' and '-')"),
    ("show stats json now", "too many arguments; usage: show stats [json]"),
    ("drain", "missing arguments; usage: drain BACKEND"),
    ("drain a:1 b:2", "too many arguments; usage: drain BACKEND"),
    ("ready", "missing arguments; usage: ready BACKEND"),
    ("maint", "missing arguments; usage: maint BACKEND"),
    ("drain 10.0.0.1", "bad BACKEND: '10.0.0.1' is not HOST:PORT: missing ':PORT'"),
    ("drain 10.0.0.1:0", "bad BACKEND: '10.0.0.1:0': port '0' must be a number from 1 to 65535"),
    ("drain ::1:80", "bad BACKEND: '::1:80': write IPv6 addresses in brackets, as [ADDR]:PORT"),
    ("weight 10.0.0.1:80", "missing arguments; usage: weight BACKEND N"),
    ("weight 10.0.0.1:80 heavy", "weight: weight 'heavy' must be a whole number from 0 to 256"),
    ("weight 10.0.0.1:80 257", "weight: weight '257' must be a whole number from 0 to 256"),
    ("add", "missing arguments; usage: add BACKEND[,weight=N]"),
    ("add 10.0.0.9:80,weight=x", "bad BACKEND: backend '10.0.0.9:80,weight=x': weight 'x' must be a whole number from 0 to 256"),
    ("add 10.0.0.9:80,colour=red", "bad BACKEND: backend '10.0.0.9:80,colour=red': unknown option 'colour=red' (expected weight=N, priority=N, backup, max-connections=N, slow-start=D, check-port=N, check-address=HOST, agent-port=N, agent-address=IP, agent-interval=D or agent-send=TEXT)"),
    ("remove", "missing arguments; usage: remove BACKEND"),
    ("wait 10.0.0.1:80", "missing arguments; usage: wait BACKEND TIMEOUT"),
    ("wait 10.0.0.1:80 soon", "bad TIMEOUT: 'soon' is not a duration: use a number with ms, s, m or h, such as 500ms or 2s"),
    ("wait 10.0.0.1:80 2h", "bad TIMEOUT: 2h is longer than the limit of 3600s"),
    ("shutdown", "missing arguments; usage: shutdown BACKEND"),
    ("show\u{1}backends", "the line holds bytes that are not printable ASCII; commands are plain text, one per line"),
    ("drain caf\u{E9}:80", "the line holds bytes that are not printable ASCII; commands are plain text, one per line"),
    ("\u{FFFD}\u{FFFD}", "the line holds bytes that are not printable ASCII; commands are plain text, one per line"),
])
func badAdminCommandsSayWhatIsWrong(_ line: String, _ message: String) {
    #expect(throws: AdminCommandError(message)) { try AdminCommand(parsing: line) }
}

@Test func repliesAreFramedByAnEmptyLine() {
    #expect(AdminReply.success().wireText == "OK\n\n")
    #expect(AdminReply.success(["a", "", "b\nc"]).wireText == "OK\na\n \nb\nc\n\n")
    #expect(AdminReply.failure("no\nway").wireText == "ERROR: no way\n\n")
}

@Test func jsonStringsAreEscaped() {
    #expect(JSONText.string("plain") == "\"plain\"")
    #expect(JSONText.string("a\"b\\c") == "\"a\\\"b\\\\c\"")
    #expect(JSONText.string("line\nbreak\ttab\r") == "\"line\\nbreak\\ttab\\r\"")
    #expect(JSONText.string("\u{1}\u{7F}") == "\"\\u0001\\u007f\"")
    #expect(JSONText.string("café") == "\"café\"")
    #expect(JSONText.object([("a", "1"), ("b", JSONText.array(["true", "\"x\""]))]) == "{\"a\":1,\"b\":[true,\"x\"]}")
}
