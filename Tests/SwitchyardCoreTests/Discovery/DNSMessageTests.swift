import Testing
@testable import SwitchyardCore

private let webA = DNSQuery(id: 0x1234, name: dnsName("web.test"), type: .a)

@Suite struct DNSQueryEncodingTests {
    @Test func aQueryIsHeaderWithRecursionDesiredAndOneQuestionOfClassIN() {
        // The bytes the capture client sent for web.test A (dnsmasq answered them).
        #expect(webA.bytes == hexBytes("123401000001000000000000 03776562 0474657374 00 0001 0001"))
    }

    @Test func aaaaAndSRVQueriesCarryTheirType() {
        let aaaa = DNSQuery(id: 0xBEEF, name: dnsName("web.test."), type: .aaaa)
        #expect(aaaa.bytes == hexBytes("beef01000001000000000000 03776562 0474657374 00 001c 0001"))
        let srv = DNSQuery(id: 7, name: dnsName("_web._tcp.test"), type: .srv)
        #expect(srv.bytes == hexBytes("000701000001000000000000 045f776562 045f746370 0474657374 00 0021 0001"))
    }

    @Test func tcpFormIsPrefixedWithTheMessageLength() {
        let bytes = webA.bytes
        #expect(webA.tcpBytes == [0, UInt8(bytes.count)] + bytes)
    }

    @Test func aQueryParsesBackAsAQueryNotAResponse() throws {
        let message = try DNSMessage(parsing: webA.bytes)
        #expect(!message.isResponse && message.recursionDesired && message.id == 0x1234)
        #expect(message.questions == [DNSQuestion(name: dnsName("web.test"), type: .a)])
        #expect(throws: DNSMessageError.notAResponse) { try DNSReply(answering: webA, bytes: webA.bytes) }
    }
}

@Suite struct DNSNameTests {
    @Test(arguments: [
        ("web.example.com", "web.example.com", 17),
        ("web.example.com.", "web.example.com", 17),
        ("_http._tcp.example.com", "_http._tcp.example.com", 24),
        ("localhost", "localhost", 11),
    ])
    func configurationNamesParse(text: String, shown: String, wireLength: Int) throws {
        let name = try DNSName(parsing: text)
        #expect(name.description == shown)
        #expect(name.wireLength == wireLength)
    }

    @Test(arguments: [
        ("", "empty"),
        (".", "empty"),
        ("a..b", "empty label"),
        (".a", "empty label"),
        ("exa mple.com", "only letters"),
        ("web/1.test", "only letters"),
        ("caf\u{e9}.test", "only letters"),
        (String(repeating: "a", count: 64) + ".test", "longer than 63"),
        (Array(repeating: String(repeating: "a", count: 60), count: 5).joined(separator: "."), "longer than 253"),
    ])
    func badNamesAreRefusedNamingTheProblem(text: String, fragment: String) {
        do {
            _ = try DNSName(parsing: text)
            Issue.record("'\(text)' was accepted")
        } catch {
            #expect(error.message.contains(fragment), "\(error.message)")
        }
    }

    @Test func namesCompareWithoutASCIICase() {
        #expect(dnsName("Web.TEST") == dnsName("web.test"))
        #expect(Set([dnsName("Web.TEST"), dnsName("web.test")]).count == 1)
        #expect(dnsName("web.test") != dnsName("web.test.x"))
    }

    @Test func oddBytesFromTheWireAreEscapedWhenShown() {
        let name = DNSName(validLabels: [[0x61, 0x2E, 0x00], Array("b\\".utf8)])
        #expect(name.description == "a\\.\\000.b\\\\")
        #expect(DNSName.root.description == ".")
    }
}

@Suite struct DNSCapturedAnswerTests {
    @Test func twoARecordsFromDnsmasq() throws {
        let reply = try DNSReply(answering: webA, bytes: DNSCaptures.webA)
        #expect(reply.outcome == .answer)
        #expect(reply.addresses == [ipv4("127.0.0.2"), ipv4("127.0.0.3")])
        #expect(reply.minimumTTL == 120)
        #expect(reply.canonicalName == dnsName("web.test"))
    }

    @Test func aaaaRecordFromDnsmasq() throws {
        let query = DNSQuery(id: 0x1234, name: dnsName("web.test"), type: .aaaa)
        let reply = try DNSReply(answering: query, bytes: DNSCaptures.webAAAA)
        #expect(reply.addresses == [IPAddress("::1")!])
        #expect(reply.minimumTTL == 120)
    }

    @Test func srvRecordsWithGlueFromDnsmasq() throws {
        let query = DNSQuery(id: 0x1234, name: dnsName("_web._tcp.test"), type: .srv)
        let reply = try DNSReply(answering: query, bytes: DNSCaptures.webSRV)
        #expect(reply.outcome == .answer)
        #expect(reply.services == [
            DNSServiceRecord(priority: 1, weight: 5, port: 8082, target: dnsName("nohost.test")),
            DNSServiceRecord(priority: 0, weight: 30, port: 8081, target: dnsName("target2.test")),
            DNSServiceRecord(priority: 0, weight: 10, port: 8080, target: dnsName("target1.test")),
        ])
        #expect(reply.minimumTTL == 120)
        #expect(reply.additionalAddresses(of: dnsName("target1.test"))?.addresses == [ipv4("127.0.0.9")])
        #expect(reply.additionalAddresses(of: dnsName("TARGET2.test"))?.addresses == [ipv4("127.0.0.10")])
        #expect(reply.additionalAddresses(of: dnsName("nohost.test")) == nil)
    }

    @Test func nxdomainFromDnsmasq() throws {
        let query = DNSQuery(id: 0x1234, name: dnsName("nope.test"), type: .a)
        let reply = try DNSReply(answering: query, bytes: DNSCaptures.nopeNXDOMAIN)
        #expect(reply.outcome == .nameError)
        #expect(reply.addresses.isEmpty && reply.minimumTTL == nil)
    }

    @Test func cnameIsFollowedWithinTheAnswer() throws {
        let query = DNSQuery(id: 0x1234, name: dnsName("alias.test"), type: .a)
        let reply = try DNSReply(answering: query, bytes: DNSCaptures.aliasCNAME)
        #expect(reply.canonicalName == dnsName("web.test"))
        #expect(Set(reply.addresses) == [ipv4("127.0.0.2"), ipv4("127.0.0.3")])
    }

    @Test func refusedFromDnsmasqIsAServerFailure() throws {
        let query = DNSQuery(id: 0x1234, name: dnsName("other.example"), type: .a)
        let reply = try DNSReply(answering: query, bytes: DNSCaptures.otherREFUSED)
        #expect(reply.outcome == .failure(.refused))
    }

    @Test func nodataFromDnsmasqIsAnEmptyAnswerNotAnError() throws {
        let query = DNSQuery(id: 0x1234, name: dnsName("target1.test"), type: .aaaa)
        let reply = try DNSReply(answering: query, bytes: DNSCaptures.target1NODATA)
        #expect(reply.outcome == .answer)
        #expect(reply.addresses.isEmpty && reply.minimumTTL == nil)
    }

    @Test func truncatedUDPAnswerSaysRetryOverTCPAndKeepsTheWholeRecords() throws {
        let query = DNSQuery(id: 0x1234, name: dnsName("big.test"), type: .a)
        #expect(DNSCaptures.bigTruncated.count == 506)
        let reply = try DNSReply(answering: query, bytes: DNSCaptures.bigTruncated)
        #expect(reply.outcome == .truncated)
        #expect(reply.addresses.isEmpty)
        let message = try DNSMessage(parsing: DNSCaptures.bigTruncated)
        #expect(message.isTruncated && message.answers.count == 30)
    }

    @Test func fullAnswerOverTCPHasAllFortyAddresses() throws {
        let query = DNSQuery(id: 0x1234, name: dnsName("big.test"), type: .a)
        let reply = try DNSReply(answering: query, bytes: DNSCaptures.bigTCP)
        #expect(reply.outcome == .answer)
        #expect(Set(reply.addresses) == Set((1...40).map { IPAddress.v4(10, 1, 0, UInt8($0)) }))
    }
}

@Suite struct DNSHandBuiltAnswerTests {
    @Test func questionIsMatchedWithoutCaseAndAnswersOfOtherNamesAreIgnored() throws {
        var wire = DNSWire.header(answers: 3)
        wire.question("WEB.Test")
        wire.recordA(10, 0, 0, 1, ttl: 300)
        wire.name("other.test")  // Not in the chain: ignored.
        wire.u16(1); wire.u16(1); wire.u32(5); wire.u16(4); wire.bytes += [10, 0, 0, 9]
        wire.recordA(10, 0, 0, 2, ttl: 30)
        let reply = try DNSReply(answering: webA, bytes: wire.bytes)
        #expect(reply.addresses == [ipv4("10.0.0.1"), ipv4("10.0.0.2")])
        #expect(reply.minimumTTL == 30)
    }

    @Test func ttlWithTheTopBitSetCountsAsZero() throws {
        var wire = DNSWire.header(answers: 2)
        wire.question("web.test")
        wire.recordA(10, 0, 0, 1, ttl: 0x8000_0010)
        wire.recordA(10, 0, 0, 2, ttl: 0x7FFF_FFFF)
        let reply = try DNSReply(answering: webA, bytes: wire.bytes)
        #expect(reply.minimumTTL == 0)
        let message = try DNSMessage(parsing: wire.bytes)
        #expect(message.answers.map(\.ttl) == [0, 0x7FFF_FFFF])
    }

    @Test func recordsOfAnotherTypeOrClassAreSkippedNotDecoded() throws {
        var wire = DNSWire.header(answers: 4, additionals: 1)
        wire.question("web.test")
        wire.record(type: 28, data: Array(repeating: 0, count: 16))  // AAAA in an A answer.
        wire.record(type: 1, recordClass: 3, data: [1, 2, 3])  // Class CH: any length.
        wire.record(type: 99, data: [1, 2, 3, 4, 5])  // Unknown type.
        wire.recordA(10, 0, 0, 7)
        // An EDNS OPT record: root name, type 41, class = UDP payload size.
        wire.bytes.append(0); wire.u16(41); wire.u16(1232); wire.u32(0); wire.u16(0)
        let reply = try DNSReply(answering: webA, bytes: wire.bytes)
        #expect(reply.addresses == [ipv4("10.0.0.7")])
        let message = try DNSMessage(parsing: wire.bytes)
        #expect(message.answers[1].data == .other(type: .a, recordClass: 3))
        #expect(message.additionals[0].data == .other(type: .opt, recordClass: 1232))
    }

    @Test func aCNAMEChainIsFollowedToItsEndAndItsTTLsCount() throws {
        var wire = DNSWire.header(answers: 3)
        wire.question("web.test")  // Question name at 12.
        wire.record(type: 5, ttl: 40, data: DNSWire.nameBytes("b.test"))  // web.test CNAME b.test
        let bOffset = 12 + 14 + 12
        wire.pointer(bOffset); wire.u16(5); wire.u16(1); wire.u32(20)
        let cName = DNSWire.nameBytes("c.test")
        wire.u16(UInt16(cName.count)); wire.bytes += cName  // b.test CNAME c.test
        let cOffset = wire.bytes.count - cName.count
        wire.pointer(cOffset); wire.u16(1); wire.u16(1); wire.u32(90); wire.u16(4); wire.bytes += [10, 9, 9, 9]
        let reply = try DNSReply(answering: webA, bytes: wire.bytes)
        #expect(reply.canonicalName == dnsName("c.test"))
        #expect(reply.addresses == [ipv4("10.9.9.9")])
        #expect(reply.minimumTTL == 20)
    }

    @Test func cnameToANameWithoutRecordsInTheAnswerIsEmpty() throws {
        var wire = DNSWire.header(answers: 1)
        wire.question("web.test")
        wire.record(type: 5, data: DNSWire.nameBytes("elsewhere.test"))
        let reply = try DNSReply(answering: webA, bytes: wire.bytes)
        #expect(reply.outcome == .answer && reply.addresses.isEmpty)
        #expect(reply.canonicalName == dnsName("elsewhere.test"))
    }

    @Test(arguments: [
        (UInt16(0x8182), DNSReply.Outcome.failure(.serverFailure)),
        (0x8183, .nameError),
        (0x8185, .failure(.refused)),
        (0x8181, .failure(.formatError)),
        (0x8184, .failure(.notImplemented)),
        (0x8189, .failure(DNSResponseCode(rawValue: 9))),
        (0x8180, .answer),
        (0x8380, .truncated),
        (0x8382, .truncated),
    ])
    func responseCodesGiveTheirOutcome(flags: UInt16, outcome: DNSReply.Outcome) throws {
        var wire = DNSWire.header(flags: flags)
        wire.question("web.test")
        #expect(try DNSReply(answering: webA, bytes: wire.bytes).outcome == outcome)
    }

    @Test func srvTargetMayBeCompressedAndTheRootTargetIsKept() throws {
        let query = DNSQuery(id: 0x1234, name: dnsName("_x._tcp.test"), type: .srv)
        var wire = DNSWire.header(answers: 2)
        wire.question("_x._tcp.test", type: 33)
        // Target "_tcp.test" by a pointer into the question (offset 12 + 3).
        var data = DNSWire()
        data.u16(0); data.u16(7); data.u16(443); data.pointer(15)
        wire.record(type: 33, ttl: 9, data: data.bytes)
        wire.record(type: 33, ttl: 9, data: DNSWire.srvData(priority: 0, weight: 0, port: 0, target: ""))
        let reply = try DNSReply(answering: query, bytes: wire.bytes)
        #expect(reply.services == [
            DNSServiceRecord(priority: 0, weight: 7, port: 443, target: dnsName("_tcp.test")),
            DNSServiceRecord(priority: 0, weight: 0, port: 0, target: .root),
        ])
    }

    @Test func truncatedMessageKeepsWholeRecordsAndDropsAPartialOne() throws {
        var wire = DNSWire.header(flags: 0x8380, answers: 3)
        wire.question("web.test")
        wire.recordA(10, 0, 0, 1)
        wire.recordA(10, 0, 0, 2)
        wire.bytes += [0xC0, 0x0C, 0x00]  // The third record, cut.
        let message = try DNSMessage(parsing: wire.bytes)
        #expect(message.isTruncated && message.answers.count == 2)
    }
}

/// Every malformed form the parser knows, as (description, bytes, expected error), for a query
/// of web.test A with id 0x1234.
private let malformed: [(String, [UInt8], DNSMessageError)] = {
    var cases: [(String, [UInt8], DNSMessageError)] = []
    func add(_ what: String, _ error: DNSMessageError, _ build: (inout DNSWire) -> Void) {
        var wire = DNSWire()
        build(&wire)
        cases.append((what, wire.bytes, error))
    }
    add("empty", .truncated(part: "the header", needed: 2, length: 0)) { _ in }
    add("11-byte header", .truncated(part: "the header", needed: 12, length: 11)) {
        $0 = .header(); $0.bytes.removeLast()
    }
    add("question count without a question", .truncated(part: "a question", needed: 13, length: 12)) {
        $0 = .header()
    }
    add("question label past the end", .truncated(part: "a question", needed: 16, length: 14)) {
        $0 = .header(); $0.bytes += [3, 0x77]
    }
    add("question without type and class", .truncated(part: "a question", needed: 24, length: 22)) {
        $0 = .header(); $0.name("web.test")
    }
    add("question without class", .truncated(part: "a question", needed: 26, length: 25)) {
        $0 = .header(); $0.name("web.test"); $0.u16(1); $0.bytes.append(0)
    }
    add("label type 01", .badLabelType(byte: 0x41, offset: 12)) {
        $0 = .header(); $0.bytes += [0x41, 0x61, 0]; $0.u16(1); $0.u16(1)
    }
    add("label type 10", .badLabelType(byte: 0x80, offset: 16)) {
        $0 = .header(); $0.bytes += [3, 0x77, 0x65, 0x62, 0x80]; $0.u16(1); $0.u16(1)
    }
    add("pointer to itself", .badPointer(offset: 12, target: 12)) {
        $0 = .header(); $0.pointer(12); $0.u16(1); $0.u16(1)
    }
    add("forward pointer", .badPointer(offset: 12, target: 20)) {
        $0 = .header(); $0.pointer(20); $0.u16(1); $0.u16(1); $0.bytes += [1, 0x61, 0, 0]
    }
    add("pointer into the header", .badPointer(offset: 12, target: 4)) {
        $0 = .header(); $0.pointer(4); $0.u16(1); $0.u16(1)
    }
    add("pointer back into its own labels", .badPointer(offset: 16, target: 12)) {
        $0 = .header(); $0.bytes += [3, 0x77, 0x65, 0x62]; $0.pointer(12); $0.u16(1); $0.u16(1)
    }
    add("two names pointing at each other", .badPointer(offset: 40, target: 42)) {
        $0 = .header(answers: 2); $0.question("web.test")
        // Answer 1 (at 26) is of an unknown type; its data (at 38) holds the name "y" + a pointer
        // to 42, the owner of answer 2, which is "x" + a pointer back to 38.
        $0.record(type: 99, data: [1, 0x79, 0xC0, 42])
        $0.bytes += [1, 0x78]; $0.pointer(38); $0.u16(1); $0.u16(1); $0.u32(60); $0.u16(0)
    }
    add("cut pointer", .truncated(part: "a question", needed: 14, length: 13)) {
        $0 = .header(); $0.bytes.append(0xC0)
    }
    add("name of 256 bytes", .nameTooLong(offset: 12)) {
        $0 = .header()
        for _ in 0..<4 { $0.bytes.append(63); $0.bytes += Array(repeating: 0x61, count: 63) }
        $0.bytes += [0]; $0.u16(1); $0.u16(1)
    }
    add("name over 255 bytes through pointers", .nameTooLong(offset: 209)) {
        $0 = .header(answers: 1)
        // Question: three labels of 63 (193 bytes on the wire); the answer's owner adds a fourth.
        for _ in 0..<3 { $0.bytes.append(63); $0.bytes += Array(repeating: 0x61, count: 63) }
        $0.bytes.append(0); $0.u16(1); $0.u16(1)
        $0.bytes.append(63); $0.bytes += Array(repeating: 0x62, count: 63); $0.pointer(12)
    }
    add("record cut in its fixed part", .truncated(part: "an answer record", needed: 36, length: 32)) {
        $0 = .header(answers: 1); $0.question("web.test"); $0.pointer(12); $0.u16(1); $0.u16(1)
    }
    add("record data past the end", .truncated(part: "the data of an answer record", needed: 42, length: 40)) {
        $0 = .header(answers: 1); $0.question("web.test")
        $0.pointer(12); $0.u16(1); $0.u16(1); $0.u32(60); $0.u16(4); $0.bytes += [10, 0]
    }
    add("A record of 3 bytes", .badRecordLength(type: .a, length: 3, offset: 26)) {
        $0 = .header(answers: 1); $0.question("web.test"); $0.record(type: 1, data: [10, 0, 0])
    }
    add("A record of 5 bytes", .badRecordLength(type: .a, length: 5, offset: 26)) {
        $0 = .header(answers: 1); $0.question("web.test"); $0.record(type: 1, data: [10, 0, 0, 1, 2])
    }
    add("AAAA record of 4 bytes", .badRecordLength(type: .aaaa, length: 4, offset: 26)) {
        $0 = .header(answers: 1); $0.question("web.test"); $0.record(type: 28, data: [0, 0, 0, 1])
    }
    add("SRV record of 6 bytes", .badRecordLength(type: .srv, length: 6, offset: 26)) {
        $0 = .header(answers: 1); $0.question("web.test"); $0.record(type: 33, data: [0, 0, 0, 0, 0, 80])
    }
    add("SRV target longer than the data", .nameOverrunsRecordData(type: .srv, offset: 26)) {
        $0 = .header(answers: 1); $0.question("web.test")
        let data = DNSWire.srvData(priority: 0, weight: 0, port: 80, target: "t.test")
        $0.pointer(12); $0.u16(33); $0.u16(1); $0.u32(60); $0.u16(UInt16(data.count - 3)); $0.bytes += data
    }
    add("SRV data longer than its target", .nameOverrunsRecordData(type: .srv, offset: 26)) {
        $0 = .header(answers: 1); $0.question("web.test")
        $0.record(type: 33, data: DNSWire.srvData(priority: 0, weight: 0, port: 80, target: "t.test") + [0])
    }
    add("SRV data cut by the end", .truncated(part: "the data of an answer record", needed: 51, length: 47)) {
        $0 = .header(answers: 1); $0.question("web.test")
        // Announces 13 data bytes, has only 9 of them.
        $0.pointer(12); $0.u16(33); $0.u16(1); $0.u32(60); $0.u16(13); $0.bytes += [0, 0, 0, 0, 0, 80, 5, 0x61, 0x62]
    }
    add("CNAME data longer than its name", .nameOverrunsRecordData(type: .cname, offset: 26)) {
        $0 = .header(answers: 1); $0.question("web.test")
        $0.record(type: 5, data: DNSWire.nameBytes("b.test") + [0, 0])
    }
    add("bytes after the last record", .trailingBytes(count: 2)) {
        $0 = .header(); $0.question("web.test"); $0.bytes += [0, 0]
    }
    add("more answers announced than present", .truncated(part: "an answer record", needed: 43, length: 42)) {
        $0 = .header(answers: 2); $0.question("web.test"); $0.recordA(10, 0, 0, 1)
    }
    add("every count 65535 in a bare header", .truncated(part: "a question", needed: 13, length: 12)) {
        $0 = .header(questions: 0xFFFF, answers: 0xFFFF, authorities: 0xFFFF, additionals: 0xFFFF)
    }
    add("authority record cut", .truncated(part: "an authority record", needed: 30, length: 28)) {
        $0 = .header(answers: 0, authorities: 1); $0.question("web.test"); $0.bytes += [0xC0, 0x0C]
    }
    add("additional record cut", .truncated(part: "an additional record", needed: 27, length: 26)) {
        $0 = .header(additionals: 1); $0.question("web.test")
    }
    add("QR bit clear", .notAResponse) {
        $0 = .header(flags: 0x0100); $0.question("web.test")
    }
    add("another id", .idMismatch(expected: 0x1234, received: 0x4321)) {
        $0 = .header(id: 0x4321); $0.question("web.test")
    }
    add("another question name", .questionMismatch) {
        $0 = .header(); $0.question("web.test.evil")
    }
    add("another question type", .questionMismatch) {
        $0 = .header(); $0.question("web.test", type: 28)
    }
    add("another question class", .questionMismatch) {
        $0 = .header(); $0.question("web.test", recordClass: 3)
    }
    add("no question", .questionMismatch) {
        $0 = .header(questions: 0)
    }
    add("two questions", .questionMismatch) {
        $0 = .header(questions: 2); $0.question("web.test"); $0.question("web.test")
    }
    add("opcode STATUS", .questionMismatch) {
        $0 = .header(flags: 0x9180); $0.question("web.test")
    }
    add("CNAME to itself", .badCanonicalNameChain(name: dnsName("web.test"))) {
        $0 = .header(answers: 1); $0.question("web.test"); $0.record(type: 5, data: [0xC0, 0x0C])
    }
    add("CNAME loop of two", .badCanonicalNameChain(name: dnsName("web.test"))) {
        $0 = .header(answers: 2); $0.question("web.test")
        $0.record(type: 5, data: DNSWire.nameBytes("b.test"))  // b.test's name is at 38.
        $0.pointer(38); $0.u16(5); $0.u16(1); $0.u32(60); $0.u16(2); $0.pointer(12)
    }
    add("CNAME chain of 17", .badCanonicalNameChain(name: dnsName("n17.test"))) {
        $0 = .header(answers: 17); $0.question("web.test")
        var owner = 12
        for index in 1...17 {
            let target = DNSWire.nameBytes("n\(index).test")
            $0.pointer(owner); $0.u16(5); $0.u16(1); $0.u32(60); $0.u16(UInt16(target.count))
            owner = $0.bytes.count
            $0.bytes += target
        }
    }
    return cases
}()

@Suite struct DNSMalformedMessageTests {
    @Test(arguments: malformed.indices)
    func malformedMessageIsRefusedWithItsError(index: Int) {
        let (what, bytes, expected) = malformed[index]
        do {
            let reply = try DNSReply(answering: webA, bytes: bytes)
            Issue.record("\(what): accepted as \(reply)")
        } catch {
            #expect(error == expected, "\(what): \(error)")
            let foreign: Bool
            switch expected {
            case .notAResponse, .idMismatch, .questionMismatch: foreign = true
            default: foreign = false
            }
            #expect(error.isForeign == foreign, "\(what)")
            #expect(!error.description.isEmpty && !error.description.contains("\n"))
        }
    }

    @Test func everyPrefixOfEveryCaptureIsRefusedOrParsedWithoutTrapping() {
        // A prefix of a non-truncated message is an error, except the whole message.
        for capture in DNSCaptures.all {
            for length in 0..<capture.count {
                DNSMessage.fuzz(Array(capture.prefix(length)))
                let message = try? DNSMessage(parsing: Array(capture.prefix(length)))
                if let message { #expect(message.isTruncated, "a cut message of \(length) bytes parsed") }
            }
        }
    }

    @Test func everySingleByteChangeOfEveryCaptureIsHandled() {
        var parsed = 0, refused = 0
        for capture in DNSCaptures.all {
            for position in capture.indices {
                for value: UInt8 in [0x00, 0xFF, 0xC0, 0x3F, capture[position] ^ 0x01] {
                    var mutated = capture
                    mutated[position] = value
                    DNSMessage.fuzz(mutated)
                    if (try? DNSMessage(parsing: mutated)) != nil { parsed += 1 } else { refused += 1 }
                }
            }
        }
        #expect(parsed > 0 && refused > 0, "parsed \(parsed), refused \(refused)")
    }

    @Test func randomInputsNeverTrap() {
        var generator = SplitMix64(seed: 0xD25)
        for round in 0..<20_000 {
            let length = Int.random(in: 0...600, using: &generator)
            var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            // Half of them start like a real response so that parsing gets past the header.
            if round % 2 == 0 && length >= 12 {
                bytes.replaceSubrange(0..<12, with: [0x12, 0x34, 0x81, 0x80, 0, 1, 0, UInt8(round % 8), 0, 0, 0, 0])
            }
            DNSMessage.fuzz(bytes)
        }
    }
}
