import Testing
@testable import SwitchyardCore

private func u16(_ value: Int) -> [UInt8] { [UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)] }
private func u24(_ value: Int) -> [UInt8] { [UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)] }

/// One extension: type, length, data.
private func ext(_ type: Int, _ data: [UInt8]) -> [UInt8] { u16(type) + u16(data.count) + data }

/// A server_name extension with `entries` of (name type, name).
private func serverName(_ entries: [(UInt8, [UInt8])]) -> [UInt8] {
    let list = entries.flatMap { [$0.0] + u16($0.1.count) + $0.1 }
    return ext(0, u16(list.count) + list)
}

private func serverName(_ name: String) -> [UInt8] { serverName([(0, ascii(name))]) }

private func alpn(_ protocols: [String]) -> [UInt8] {
    let list = protocols.flatMap { [UInt8($0.utf8.count)] + ascii($0) }
    return ext(16, u16(list.count) + list)
}

/// The body of a ClientHello up to and including compression_methods.
private let bodyPrefix: [UInt8] = [3, 3] + [UInt8](repeating: 0xAA, count: 32) + [32] + [UInt8](repeating: 0x11, count: 32)
    + u16(4) + [0x13, 0x01, 0x13, 0x02] + [1, 0]

/// A ClientHello body with `extensions` (nil: none at all, as TLS 1.0 clients may send).
private func body(_ extensions: [[UInt8]]?) -> [UInt8] {
    guard let extensions else { return bodyPrefix }
    let joined = extensions.flatMap { $0 }
    return bodyPrefix + u16(joined.count) + joined
}

/// The handshake message holding `body`.
private func message(_ body: [UInt8], type: UInt8 = 1) -> [UInt8] { [type] + u24(body.count) + body }

/// `message` in records whose fragments are cut at `cuts` (offsets into the message).
private func records(_ message: [UInt8], cuts: [Int] = [], version: [UInt8] = [3, 1]) -> [UInt8] {
    var result: [UInt8] = []
    var start = 0
    for end in cuts + [message.count] where end > start {
        result += [22] + version + u16(end - start) + message[start..<end]
        start = end
    }
    return result
}

private func hello(_ extensions: [[UInt8]]?) -> [UInt8] { records(message(body(extensions))) }

/// The handshake message carried by the records of a captured first flight.
private func handshakeMessage(of capture: [UInt8]) -> [UInt8] {
    var message: [UInt8] = []
    var offset = 0
    while offset + 5 <= capture.count {
        let length = Int(capture[offset + 3]) << 8 | Int(capture[offset + 4])
        message += capture[(offset + 5)..<(offset + 5 + length)]
        offset += 5 + length
    }
    return message
}

@Suite struct CapturedClientHelloTests {
    @Test(arguments: CapturedClientHellos.all)
    func realClientsHellosGiveTheirServerNameAndALPN(_ capture: CapturedClientHello) {
        #expect(ClientHello.parse(capture.bytes) == .hello(sni: capture.serverName, alpn: capture.alpn))
    }

    @Test(arguments: CapturedClientHellos.all)
    func splitInTwoAtEveryByteBoundaryGivesTheSameHello(_ capture: CapturedClientHello) {
        let bytes = capture.bytes
        let expected = ClientHelloResult.hello(sni: capture.serverName, alpn: capture.alpn)
        for point in 0...bytes.count {
            var reader = ClientHelloReader()
            let first = reader.feed(bytes[..<point])
            #expect(first == (point == bytes.count ? expected : .needMoreData), "first \(point) bytes")
            #expect(reader.feed(bytes[point...]) == expected, "split at \(point)")
            #expect(reader.received == bytes)
        }
    }

    @Test(arguments: CapturedClientHellos.all)
    func fedOneByteAtATimeItCompletesOnTheLastByte(_ capture: CapturedClientHello) {
        let bytes = capture.bytes
        var reader = ClientHelloReader()
        for (index, byte) in bytes.enumerated() {
            let result = reader.feed([byte])
            if index < bytes.count - 1 {
                #expect(result == .needMoreData, "after \(index + 1) bytes")
            } else {
                #expect(result == .hello(sni: capture.serverName, alpn: capture.alpn))
            }
        }
    }

    /// Re-framed: the same handshake message cut into two records at many points, into records
    /// of one byte each, and into records of 100 bytes, also with a TLS 1.2 record version.
    @Test(arguments: CapturedClientHellos.all)
    func spreadOverSeveralRecordsGivesTheSameHello(_ capture: CapturedClientHello) {
        let message = handshakeMessage(of: capture.bytes)
        let expected = ClientHelloResult.hello(sni: capture.serverName, alpn: capture.alpn)
        #expect(records(message) == capture.bytes, "the capture is one record")
        for cut in [1, 2, 3, 4, 5, 38, 39, 40, message.count / 2, message.count - 1] {
            let bytes = records(message, cuts: [cut])
            #expect(ClientHello.parse(bytes) == expected, "two records cut at \(cut)")
            var reader = ClientHelloReader()
            for offset in stride(from: 0, to: bytes.count, by: 7) {
                reader.feed(bytes[offset..<min(offset + 7, bytes.count)])
            }
            #expect(reader.result == expected, "two records cut at \(cut), fed 7 bytes at a time")
        }
        #expect(ClientHello.parse(records(message, cuts: Array(1..<message.count))) == expected, "one-byte records")
        #expect(ClientHello.parse(records(message, cuts: Array(stride(from: 100, to: message.count, by: 100)),
                                          version: [3, 3])) == expected, "100-byte records")
    }

    @Test(arguments: CapturedClientHellos.all)
    func bytesAfterTheHelloAreKeptButNotRead(_ capture: CapturedClientHello) {
        // A change_cipher_spec record and garbage, as a TLS 1.3 client with early data might send.
        let after: [UInt8] = [20, 3, 3, 0, 1, 1] + [0xFF, 0x00, 0x13]
        var reader = ClientHelloReader()
        #expect(reader.feed(capture.bytes + after) == .hello(sni: capture.serverName, alpn: capture.alpn))
        #expect(reader.received == capture.bytes + after)
        #expect(reader.feed(after) == .hello(sni: capture.serverName, alpn: capture.alpn))
        #expect(reader.received == capture.bytes + after, "nothing is kept after the answer")
    }

    @Test func aLimitBelowTheHellosSizeRefusesIt() {
        let capture = CapturedClientHellos.opensslWithSNI.bytes
        #expect(ClientHello.parse(capture, limit: capture.count) == .hello(sni: "api.example.com", alpn: []))
        #expect(ClientHello.parse(capture, limit: capture.count - 1) == .malformed(.tooLarge(limit: capture.count - 1)))
        // Known from the record and handshake headers alone, before the rest arrives.
        #expect(ClientHello.parse(Array(capture[..<9]), limit: 300) == .malformed(.tooLarge(limit: 300)))
    }
}

@Suite struct ClientHelloSyntheticTests {
    @Test func aHelloWithoutExtensionsHasNoServerNameAndNoALPN() {
        #expect(ClientHello.parse(hello(nil)) == .hello(sni: nil, alpn: []))
        #expect(ClientHello.parse(hello([])) == .hello(sni: nil, alpn: []))
    }

    @Test(arguments: [
        ("api.example.com", "api.example.com"), ("API.Example.COM", "api.example.com"), ("localhost", "localhost"),
        ("my_service.internal", "my_service.internal"), ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("a-b.c-d.e", "a-b.c-d.e"), ("1.2.3.4", "1.2.3.4"), ("_acme.example.com", "_acme.example.com"),
        (String(repeating: "a", count: 63) + ".com", String(repeating: "a", count: 63) + ".com"),
        ([String](repeating: String(repeating: "b", count: 49), count: 5).joined(separator: ".") + ".abc",
         [String](repeating: String(repeating: "b", count: 49), count: 5).joined(separator: ".") + ".abc"),
    ])
    func validServerNamesAreLowercased(name: String, expected: String) {
        #expect(ClientHello.parse(hello([serverName(name)])) == .hello(sni: expected, alpn: []))
    }

    @Test(arguments: [
        "", ".", "a..b", ".example.com", "example.com.", "-a.example.com", "a-.example.com", "exa mple.com",
        "example.com/x", "*.example.com", "exämple.com", "a\u{0}b.com", String(repeating: "a", count: 64) + ".com",
        [String](repeating: String(repeating: "c", count: 49), count: 5).joined(separator: ".") + ".abcd",
    ])
    func invalidServerNamesAreMalformed(name: String) {
        #expect(ClientHello.parse(hello([serverName(name)])) == .malformed(.invalidServerName), "'\(name)'")
    }

    @Test func otherNameTypesAreSkipped() {
        let bytes = hello([serverName([(7, [1, 2, 3]), (0, ascii("db.example.com")), (9, [])])])
        #expect(ClientHello.parse(bytes) == .hello(sni: "db.example.com", alpn: []))
        #expect(ClientHello.parse(hello([serverName([(7, [1, 2, 3])])])) == .hello(sni: nil, alpn: []))
    }

    @Test func alpnNamesKeepTheClientsOrderAndOtherExtensionsAreSkipped() {
        let bytes = hello([ext(0x0A0A, []), alpn(["h2", "http/1.1", "postgresql"]), ext(43, [2, 3, 4]),
                           serverName("pg.example.com"), ext(21, [UInt8](repeating: 0, count: 300))])
        #expect(ClientHello.parse(bytes) == .hello(sni: "pg.example.com", alpn: ["h2", "http/1.1", "postgresql"]))
    }

    @Test func aHelloOfExactlyTheLimitIsReadAndOneByteMoreIsNot() {
        // One record: 5 + 4 + body bytes in all; the padding extension (21) sets the size.
        func hello(total: Int, records count: Int) -> [UInt8] {
            let overhead = 5 * count + 4 + bodyPrefix.count + 2 + 4 + 4 + ascii("big.example.com").count + 5
            let padded = body([serverName("big.example.com"), ext(21, [UInt8](repeating: 0, count: total - overhead))])
            let message = message(padded)
            return records(message, cuts: count == 2 ? [message.count / 2] : [])
        }
        for count in [1, 2] {
            let fits = hello(total: ClientHelloReader.defaultLimit, records: count)
            #expect(fits.count == 16_384)
            #expect(ClientHello.parse(fits) == .hello(sni: "big.example.com", alpn: []), "\(count) records")
            let over = hello(total: ClientHelloReader.defaultLimit + 1, records: count)
            #expect(over.count == 16_385)
            #expect(ClientHello.parse(over) == .malformed(.tooLarge(limit: 16_384)), "\(count) records")
            // Refused from its headers alone: the first record's header and the handshake header.
            #expect(ClientHello.parse(Array(over[..<9])) == .malformed(.tooLarge(limit: 16_384)), "\(count) records")
        }
    }

    /// In one-byte records a hello costs six bytes per byte: one of 2,000 bytes fits, one of
    /// 3,000 does not, and is refused once the bytes read so far show it cannot fit, by the
    /// limit at the latest.
    @Test func oneByteRecordsCountTheirHeadersAgainstTheLimit() {
        func oneByteRecords(padding: Int) -> [UInt8] {
            let message = message(body([serverName("slow.example.com"), ext(21, [UInt8](repeating: 0, count: padding))]))
            return records(message, cuts: Array(1..<message.count))
        }
        let fits = oneByteRecords(padding: 2_000)
        #expect(fits.count < 16_384)
        #expect(ClientHello.parse(fits) == .hello(sni: "slow.example.com", alpn: []))

        let over = oneByteRecords(padding: 3_000)
        #expect(over.count > 16_384)
        var refusedAt = 0
        for length in stride(from: 0, through: 16_384, by: 6) {
            if ClientHello.parse(Array(over[..<length])) != .needMoreData {
                refusedAt = length
                break
            }
        }
        #expect(refusedAt > 0 && refusedAt <= 16_384)
        #expect(ClientHello.parse(Array(over[..<refusedAt])) == .malformed(.tooLarge(limit: 16_384)))
        // Refused only once read bytes, plus what the handshake header says is missing, plus one
        // more record header, pass the limit: each byte still missing needs a record of its own.
        let messageLength = (over.count / 6) - 4
        let read = (refusedAt / 6) - 4
        #expect(refusedAt + (messageLength - read) + 5 > 16_384)
        #expect((refusedAt - 6) + (messageLength - read + 1) + 5 <= 16_384)
    }

    @Test(arguments: [
        ("plain HTTP", ascii("GET / HTTP/1.1\r\n")), ("SSH", ascii("SSH-2.0-OpenSSH_9.2\r\n")),
        ("a NUL", [0]), ("a TLS alert record", [21, 3, 3, 0, 2, 2, 40]),
        ("application data", [23, 3, 3, 0, 1, 0]), ("PROXY v1", ascii("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n")),
        ("PROXY v2", ProxyHeader.encodeV2Local()), ("high bit, not SSLv2 hello", [0x80, 0x10, 0x02, 0x03, 0x00]),
        ("SSLv2 record of another message", [0x81, 0x00, 0x04]),
    ])
    func whatIsNotATLSHandshakeIsNotTLS(name: String, bytes: [UInt8]) {
        #expect(ClientHello.parse(bytes) == .notTLS, "\(name)")
        #expect(ClientHello.parse(Array(bytes[..<1])) == (bytes[0] & 0x80 == 0 ? .notTLS : .needMoreData), "\(name), first byte")
    }

    /// An SSLv2-compatible ClientHello, as very old clients send it (RFC 6101 appendix E.1).
    @Test func anSSLv2CompatibleHelloIsMalformed() {
        let hello: [UInt8] = [0x80, 0x2E, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10]
            + [UInt8](repeating: 0x05, count: 21) + [UInt8](repeating: 0x77, count: 16)
        #expect(ClientHello.parse(hello) == .malformed(.sslv2Hello))
        #expect(ClientHello.parse(Array(hello[..<2])) == .needMoreData)
        #expect(ClientHello.parse(Array(hello[..<3])) == .malformed(.sslv2Hello))
    }

    @Test func nothingYetNeedsMore() {
        #expect(ClientHello.parse([]) == .needMoreData)
        #expect(ClientHello.parse([22]) == .needMoreData)
        #expect(ClientHello.parse([22, 3, 1, 0]) == .needMoreData)
        #expect(ClientHello.parse([22, 3, 1, 1, 0, 1, 0, 1]) == .needMoreData)
    }
}

/// Every malformed form and the error it must give.
private let malformedHellos: [(String, [UInt8], ClientHelloError)] = {
    let good = message(body([serverName("a.example.com")]))
    let withSNI = { (data: [UInt8]) in records(message(body([ext(0, data)]))) }
    let withALPN = { (data: [UInt8]) in records(message(body([ext(16, data)]))) }
    let afterPrefix = { (tail: [UInt8]) in records(message(bodyPrefix + tail)) }
    let random = [UInt8](repeating: 0xAA, count: 32)
    let sessionID = [32] + [UInt8](repeating: 0x11, count: 32)
    return [
        // Records.
        ("record version 2.0", [22, 2, 0] + u16(good.count) + good, .unsupportedRecordVersion(major: 2, minor: 0)),
        ("record version 3.5", [22, 3, 5] + u16(good.count) + good, .unsupportedRecordVersion(major: 3, minor: 5)),
        ("record version 4.1", [22, 4, 1] + u16(good.count) + good, .unsupportedRecordVersion(major: 4, minor: 1)),
        ("empty first record", [22, 3, 1, 0, 0] + records(good), .emptyRecord),
        ("empty second record", records(Array(good[..<10])) + [22, 3, 1, 0, 0], .emptyRecord),
        ("record of 16385 bytes", [22, 3, 1, 0x40, 0x01] + good, .recordTooLong(length: 16_385)),
        ("record of 65535 bytes", [22, 3, 1, 0xFF, 0xFF] + good, .recordTooLong(length: 65_535)),
        ("alert before the hello is complete", records(Array(good[..<10])) + [21, 3, 3, 0, 2, 2, 40], .unexpectedRecordType(21)),
        ("data before the hello is complete", records(Array(good[..<3])) + [23, 3, 3, 0, 1, 0], .unexpectedRecordType(23)),
        ("second record with a bad version", records(Array(good[..<10])) + [22, 0, 2, 0, 1, 0], .unsupportedRecordVersion(major: 0, minor: 2)),
        // Handshake.
        ("ServerHello", records(message(body(nil), type: 2)), .notClientHello(handshakeType: 2)),
        ("HelloRequest", [22, 3, 1, 0, 4, 0, 0, 0, 0], .notClientHello(handshakeType: 0)),
        ("handshake of 16 MiB", [22, 3, 1, 0, 4, 1, 0xFF, 0xFF, 0xFF], .tooLarge(limit: 16_384)),
        ("handshake longer than the limit", [22, 3, 1, 0x40, 0x00, 1, 0x00, 0x3F, 0xFD], .tooLarge(limit: 16_384)),
        // Body.
        ("body of one byte", records(message([3])), .truncated(.clientHello)),
        ("hello version 2.0", records(message([2, 0] + random + [0] + u16(2) + [0, 1] + [1, 0])),
         .unsupportedHelloVersion(major: 2, minor: 0)),
        ("random cut short", records(message([3, 3] + [UInt8](repeating: 1, count: 10))), .truncated(.random)),
        ("no session_id length", records(message([3, 3] + random)), .truncated(.sessionID)),
        ("session_id of 33", records(message([3, 3] + random + [33] + [UInt8](repeating: 0, count: 33))), .invalidLength(.sessionID)),
        ("session_id past the end", records(message([3, 3] + random + [5, 1, 2])), .truncated(.sessionID)),
        ("no cipher_suites length", records(message([3, 3] + random + sessionID + [0])), .truncated(.cipherSuites)),
        ("no cipher suites", records(message([3, 3] + random + sessionID + u16(0) + [1, 0])), .invalidLength(.cipherSuites)),
        ("odd cipher_suites", records(message([3, 3] + random + sessionID + u16(3) + [0, 1, 2] + [1, 0])), .invalidLength(.cipherSuites)),
        ("cipher_suites past the end", records(message([3, 3] + random + sessionID + u16(4) + [0, 1])), .truncated(.cipherSuites)),
        ("no compression_methods", records(message([3, 3] + random + sessionID + u16(2) + [0, 1])), .truncated(.compressionMethods)),
        ("zero compression_methods", records(message([3, 3] + random + sessionID + u16(2) + [0, 1] + [0])), .invalidLength(.compressionMethods)),
        ("compression_methods past the end", records(message([3, 3] + random + sessionID + u16(2) + [0, 1] + [2, 0])), .truncated(.compressionMethods)),
        // Extensions.
        ("one byte of extensions length", afterPrefix([0]), .truncated(.extensions)),
        ("extensions past the end", afterPrefix(u16(5) + [0, 0, 0]), .truncated(.extensions)),
        ("bytes after the extensions", afterPrefix(u16(4) + ext(23, []) + [0, 0]), .trailingBytes(.clientHello)),
        ("extension header cut short", afterPrefix(u16(3) + [0, 0, 0]), .truncated(.extension)),
        ("extension data past the end", afterPrefix(u16(5) + [0, 23, 0, 5, 1]), .truncated(.extension)),
        ("second extension cut short", afterPrefix(u16(6) + ext(23, []) + [0, 1]), .truncated(.extension)),
        ("extension twice", hello([ext(23, []), ext(10, [0, 2, 0, 29]), ext(23, [])]), .duplicateExtension(type: 23)),
        ("server_name twice", hello([serverName("a.example.com"), serverName("b.example.com")]), .duplicateExtension(type: 0)),
        ("ALPN twice", hello([alpn(["h2"]), alpn(["h2"])]), .duplicateExtension(type: 16)),
        // server_name.
        ("empty server_name data", withSNI([]), .truncated(.serverNameList)),
        ("one byte of server_name data", withSNI([0]), .truncated(.serverNameList)),
        ("empty server_name list", withSNI(u16(0)), .invalidLength(.serverNameList)),
        ("server_name list past its extension", withSNI(u16(5) + [0, 0, 1, 0x61]), .truncated(.serverNameList)),
        ("server_name list shorter than its extension", withSNI(u16(3) + [0, 0, 1, 0x61]), .trailingBytes(.serverNameList)),
        ("server_name entry header cut short", withSNI(u16(2) + [0, 0]), .truncated(.serverNameList)),
        ("host_name past the list", withSNI(u16(4) + [0, 0, 5, 0x61]), .truncated(.hostName)),
        ("two host names", hello([serverName([(0, ascii("a.example.com")), (0, ascii("b.example.com"))])]), .duplicateServerName),
        ("empty host name", hello([serverName([(0, [])])]), .invalidServerName),
        // ALPN.
        ("empty ALPN data", withALPN([]), .truncated(.alpnList)),
        ("empty ALPN list", withALPN(u16(0)), .invalidLength(.alpnList)),
        ("ALPN list of one byte", withALPN(u16(1) + [0]), .invalidLength(.alpnList)),
        ("ALPN list past its extension", withALPN(u16(5) + [2, 0x68, 0x32]), .truncated(.alpnList)),
        ("ALPN list shorter than its extension", withALPN(u16(2) + [2, 0x68, 0x32]), .trailingBytes(.alpnList)),
        ("empty ALPN protocol", withALPN(u16(3) + [0, 0x68, 0x32]), .invalidLength(.alpnProtocol)),
        ("ALPN protocol past the list", withALPN(u16(3) + [5, 0x68, 0x32]), .truncated(.alpnProtocol)),
        ("ALPN protocol after an empty one", withALPN(u16(4) + [2, 0x68, 0x32, 0]), .invalidLength(.alpnProtocol)),
    ]
}()

@Suite struct ClientHelloMalformedTests {
    @Test(arguments: malformedHellos)
    func malformedHellosAreRefusedWithTheirReason(name: String, bytes: [UInt8], error: ClientHelloError) {
        #expect(ClientHello.parse(bytes) == .malformed(error), "\(name)")
        // No prefix gives another answer, and fed a byte at a time the reader agrees.
        for length in 0..<bytes.count {
            let prefix = ClientHello.parse(Array(bytes[..<length]))
            #expect(prefix == .needMoreData || prefix == .malformed(error), "\(name): prefix of \(length) gave \(prefix)")
        }
        var reader = ClientHelloReader()
        for byte in bytes where reader.result == .needMoreData { reader.feed([byte]) }
        #expect(reader.result == .malformed(error), "\(name), a byte at a time")
    }

    /// Shortening a real hello's handshake message (and its record) at every point, with both
    /// headers kept consistent, cuts some inner length short: every cut is malformed but the one
    /// right after compression_methods, which leaves a valid hello without extensions.
    @Test func everyConsistentTruncationOfARealHelloIsMalformed() {
        let message = handshakeMessage(of: CapturedClientHellos.curlWithSNI.bytes)
        var hellos: [Int] = []
        for length in 4..<message.count {
            var shortened = Array(message[..<length])
            shortened.replaceSubrange(1..<4, with: u24(length - 4))
            switch ClientHello.parse(records(shortened)) {
            case .malformed: break
            case .hello: hellos.append(length)
            case let other: Issue.record("cut at \(length): \(other)")
            }
        }
        // 4 (header) + 2 + 32 + 1 + 32 (session id) + 2 + cipher suites + 1 + compression methods.
        let cipherSuitesLength = Int(message[4 + 2 + 32 + 1 + 32]) << 8 | Int(message[4 + 2 + 32 + 1 + 32 + 1])
        let compressionAt = 4 + 2 + 32 + 1 + 32 + 2 + cipherSuitesLength
        #expect(hellos == [compressionAt + 1 + Int(message[compressionAt])])
    }

    @Test func errorsAreOneLine() {
        for (_, _, error) in malformedHellos {
            #expect(!error.description.isEmpty && !error.description.contains("\n"))
        }
        #expect(ClientHelloError.truncated(.hostName).description == "ClientHello host_name runs past the end of its enclosing length")
        #expect(ClientHelloError.sslv2Hello.description == "SSLv2-compatible ClientHello, which cannot carry a server name")
    }
}

@Suite struct ClientHelloFuzzEntryTests {
    /// The fuzz entry point over the captured hellos, the malformed table, random bytes and
    /// random mutations of all of them: it must return for every input (its internal checks trap
    /// on any inconsistency).
    @Test func fuzzEntryReturnsForEveryInput() {
        let seeds = CapturedClientHellos.all.map(\.bytes) + malformedHellos.map(\.1)
        var random = TestRandom(seed: 0x544C_5348_454C_4C4F)
        var hellos = 0
        for seed in seeds {
            if case .hello = ClientHello.fuzz(seed) { hellos += 1 }
        }
        #expect(hellos == CapturedClientHellos.all.count)
        for round in 0..<2_000 {
            var bytes: [UInt8]
            if round % 4 == 0 {
                bytes = (0..<Int.random(in: 0...64, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
                if !bytes.isEmpty && round % 8 == 0 { bytes[0] = 22 }
            } else {
                bytes = seeds[Int.random(in: 0..<seeds.count, using: &random)]
                for _ in 0..<Int.random(in: 1...3, using: &random) where !bytes.isEmpty {
                    let index = Int.random(in: 0..<bytes.count, using: &random)
                    switch Int.random(in: 0..<4, using: &random) {
                    case 0: bytes[index] = UInt8.random(in: 0...255, using: &random)
                    case 1: bytes[index] &+= 1
                    case 2: bytes.remove(at: index)
                    default: bytes.insert(UInt8.random(in: 0...255, using: &random), at: index)
                    }
                }
            }
            _ = ClientHello.fuzz(bytes)
        }
    }
}
