import Testing
@testable import SwitchyardCore

@Suite struct StatusActionTests {
    static let csrf = "0123456789abcdef0123456789abcdef"

    static func request(peer: String = "127.0.0.1", headers: [String: String] = [:], body: String = "backend=db/10.0.0.1:5432&action=drain") -> StatusAction.Request {
        var all = ["authorization": "Bearer s3cret", "x-csrf-token": csrf, "host": "127.0.0.1:8404"]
        for (name, value) in headers { all[name] = value }
        return StatusAction.Request(peer: IPAddress(peer), headers: all.filter { !$0.value.isEmpty }, body: Array(body.utf8))
    }

    static func check(_ request: StatusAction.Request, enabled: Bool = true, from: [CIDR] = [],
                      token: Result<String, ConfigError> = .success("s3cret")) -> Result<String, StatusAction.Refusal> {
        StatusAction.command(for: request, enabled: enabled, from: from, csrfToken: csrf, adminToken: token)
    }

    @Test func aGoodRequestBecomesTheAdminSocketsCommandLine() {
        #expect(Self.check(Self.request()) == .success("drain db/10.0.0.1:5432"))
        #expect(Self.check(Self.request(body: "backend=db%2F10.0.0.1%3A5432&action=weight&weight=17")) == .success("weight db/10.0.0.1:5432 17"))
        #expect(Self.check(Self.request(headers: ["authorization": "", "x-switchyard-token": "s3cret"])) == .success("drain db/10.0.0.1:5432"))
        #expect(Self.check(Self.request(headers: ["origin": "http://127.0.0.1:8404", "sec-fetch-site": "same-origin"])) == .success("drain db/10.0.0.1:5432"))
    }

    @Test(arguments: [
        // (headers, peer, status)
        (["authorization": ""], "127.0.0.1", 401),
        (["authorization": "Bearer s3cre"], "127.0.0.1", 401),
        (["authorization": "Basic s3cret"], "127.0.0.1", 401),
        (["x-csrf-token": ""], "127.0.0.1", 403),
        (["x-csrf-token": "00000000000000000000000000000000"], "127.0.0.1", 403),
        (["origin": "http://evil.example"], "127.0.0.1", 403),
        (["sec-fetch-site": "cross-site"], "127.0.0.1", 403),
        ([:], "10.1.2.3", 403),
        ([:], "::1", 0),
    ] as [([String: String], String, Int)])
    func eachCheckRefusesOnItsOwn(headers: [String: String], peer: String, status: Int) {
        switch Self.check(Self.request(peer: peer, headers: headers)) {
        case .success: #expect(status == 0)
        case let .failure(refusal): #expect(refusal.status == status, "\(refusal.message)")
        }
    }

    @Test func readOnlyUnlessEnabledAndNothingWithoutAUsableTokenFile() {
        #expect(Self.check(Self.request(), enabled: false).failureStatus == 403)
        #expect(Self.check(Self.request(), token: .failure(ConfigError("no such file"))).failureStatus == 503)
        #expect(Self.check(Self.request(headers: ["authorization": "Bearer "]), token: .success("")).failureStatus == 503)
    }

    @Test func statusAdminFromReplacesLoopback() throws {
        let from = [try CIDR(parsing: "10.0.0.0/8")]
        #expect(Self.check(Self.request(peer: "10.1.2.3"), from: from) == .success("drain db/10.0.0.1:5432"))
        #expect(Self.check(Self.request(peer: "127.0.0.1"), from: from).failureStatus == 403)
    }

    @Test(arguments: [
        "backend=db/10.0.0.1:5432&action=remove",
        "backend=db/10.0.0.1:5432&action=shutdown",
        "backend=db/10.0.0.1:5432%0Areload&action=drain",
        "backend=db/10.0.0.1:5432+reload&action=drain",
        "backend=&action=drain",
        "action=drain",
        "backend=db/10.0.0.1:5432&action=weight",
        "backend=db/10.0.0.1:5432&action=weight&weight=-1",
        "backend=db/10.0.0.1:5432&action=weight&weight=1000",
        "backend=db/10.0.0.1:5432&action=drain%",
        "backend=%ZZ&action=drain",
        "backend=%FF&action=drain",
    ])
    func aBadFormIsRefusedAndNeverBecomesAnotherCommand(body: String) {
        #expect(Self.check(Self.request(body: body)).failureStatus == 400)
    }

    @Test func aLongBodyIsRefused() {
        let body = "backend=db/10.0.0.1:5432&action=drain&pad=" + String(repeating: "x", count: StatusAction.maximumBodyBytes)
        #expect(Self.check(Self.request(body: body)).failureStatus == 413)
    }

    @Test func theTokenFileGivesItsFirstLineTrimmed() {
        #expect(StatusAction.token(fromFile: "  s3cret \r\nsecond line\n") == "s3cret")
        #expect(StatusAction.token(fromFile: "") == "")
        #expect(StatusAction.constantTimeEqual("abc", "abc"))
        #expect(!StatusAction.constantTimeEqual("abc", "abd"))
        #expect(!StatusAction.constantTimeEqual("abc", "abcd"))
        #expect(!StatusAction.constantTimeEqual("", "a"))
    }

    @Test func formDecodingFollowsTheWHATWGRules() throws {
        #expect(try FormEncoding.decode(Array("a=1+2&b=%41%c3%a9&a=3&c".utf8)).get() == ["a": "1 2", "b": "Aé", "c": ""])
    }
}

extension Result where Failure == StatusAction.Refusal {
    var failureStatus: Int? {
        if case let .failure(refusal) = self { return refusal.status }
        return nil
    }
}
