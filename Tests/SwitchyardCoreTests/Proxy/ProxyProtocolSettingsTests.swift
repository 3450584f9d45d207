import Foundation
import Testing
@testable import SwitchyardCore

/// What the worker uses of the PROXY protocol: the allocation-free encoder, the addresses and
/// keys it derives, the failure causes, the worker's length limit, and the configuration keys.
private func peer(_ text: String, _ port: UInt16) -> PeerAddress {
    PeerAddress(ProxyHeader.Address(ip: IPAddress(text)!, port: port))
}

private let encoderPairs: [(String, String)] = [
    ("203.0.113.7", "198.51.100.1"),
    ("0.0.0.0", "255.255.255.255"),
    ("2001:db8::7", "2001:db8::1"),
    ("::", "::1"),
    ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
    ("1:0:0:2:0:0:0:3", "1:0:0:2:0:0:3:4"),
    ("0:1:0:1:0:1:0:1", "fe80::1:0:0:1"),
    ("10.1.2.3", "2001:db8::1"),
    ("::ffff:10.1.2.3", "10.9.8.7"),
]

@Suite struct ProxyHeaderEncodingWithoutAllocationTests {
    @Test(arguments: encoderPairs, [UInt16(0), 1, 80, 65535])
    func theInlineEncoderWritesTheSameBytesAsTheArrayEncoder(pair: (String, String), port: UInt16) {
        let source = ProxyHeader.Address(ip: IPAddress(pair.0)!, port: port)
        let destination = ProxyHeader.Address(ip: IPAddress(pair.1)!, port: 65535 - port)
        let v1 = ProxyHeader.encode(.v1, source: PeerAddress(source), destination: PeerAddress(destination))
        let v2 = ProxyHeader.encode(.v2, source: PeerAddress(source), destination: PeerAddress(destination))
        #expect(v1.array == ProxyHeader.encodeV1(source: source, destination: destination))
        #expect(v2.array == ProxyHeader.encodeV2(source: source, destination: destination))
        // And what was written parses back to the same addresses (IPv4 mapped when families differ).
        for encoded in [v1.array, v2.array] {
            guard case let .complete(header) = ProxyHeader.parse(encoded) else {
                Issue.record("\(encoded) does not parse")
                continue
            }
            #expect(header.byteCount == encoded.count)
            #expect(header.source?.port == port && header.destination?.port == 65535 - port)
        }
    }

    @Test func theLongestV1LineFitsTheInlineStorage() {
        let widest = peer("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535)
        let header = ProxyHeader.encode(.v1, source: widest, destination: widest)
        #expect(header.count == 104)
        #expect(header.count <= EncodedProxyHeader.capacity && EncodedProxyHeader.capacity > ProxyHeader.maximumV1Length)
    }

    @Test func anIPv4ClientOfADualStackListenerIsSentAsTCP6() {
        let header = ProxyHeader.encode(.v1, source: peer("192.0.2.1", 5000), destination: peer("2001:db8::1", 443))
        #expect(header.array == Array("PROXY TCP6 ::ffff:c000:201 2001:db8::1 5000 443\r\n".utf8))
    }
}

@Suite struct PeerAddressForProxyHeadersTests {
    @Test(arguments: ["203.0.113.7", "0.0.0.0", "2001:db8::7", "::ffff:10.0.0.1", "::1"])
    func theIPHashKeyOfAHeaderAddressIsTheKeyOfItsBytes(text: String) {
        let address = IPAddress(text)!
        #expect(peer(text, 1234).stableHashKey == StableHash.hash(address.bytes))
        #expect(peer(text, 1).stableHashKey == peer(text, 2).stableHashKey, "the port is not part of the key")
    }

    @Test func headerAddressesBecomePeersWithTheirPort() {
        #expect(peer("203.0.113.7", 4242).text == "203.0.113.7:4242")
        #expect(peer("2001:db8::7", 443).text == "[2001:db8::7]:443")
        #expect(peer("10.1.2.3", 1).mapped128 == IPAddress("10.1.2.3")!.mapped128)
        #expect(peer("2001:db8::1", 1).mapped128 == IPAddress("2001:db8::1")!.mapped128)
    }

    @Test func acceptProxyFromTrustsOnlyItsBlocksAndEveryoneWhenEmpty() throws {
        let settings = AcceptProxySettings(trusted: [try CIDR(parsing: "10.0.0.0/8"), try CIDR(parsing: "2001:db8::/32")])
        #expect(settings.trusts(peer("10.200.0.1", 1)))
        #expect(settings.trusts(peer("::ffff:10.200.0.1", 1)), "an IPv4 peer of a dual-stack listener")
        #expect(settings.trusts(peer("2001:db8:ffff::1", 1)))
        #expect(!settings.trusts(peer("11.0.0.1", 1)))
        #expect(!settings.trusts(peer("2001:db9::1", 1)))
        #expect(!settings.trusts(.unknown), "a peer that could not be read is not trusted")
        #expect(AcceptProxySettings().trusts(peer("198.51.100.1", 1)))
    }
}

@Suite struct ProxyHeaderFailureTests {
    @Test func everyParserErrorHasACause() {
        #expect(ProxyHeaderFailure(.notProxyProtocol) == .missing)
        #expect(ProxyHeaderFailure(.v1LineTooLong) == .oversized)
        #expect(ProxyHeaderFailure(.tooLong(length: 20000, maximum: 16384)) == .oversized)
        for error: ProxyHeaderError in [.v1BadLineEnding, .v1UnknownProtocol, .v1MalformedFields, .v1BadAddress, .v1BadPort,
                                        .v2UnsupportedVersion(3), .v2UnsupportedCommand(2), .v2UnsupportedFamily(0x40),
                                        .v2AddressesTruncated(family: 0x11, length: 3), .v2MalformedTLV(offset: 28), .v2ChecksumMismatch,
                                        .v2SecondChecksum(offset: 35)] {
            #expect(ProxyHeaderFailure(error) == .malformed, "\(error)")
        }
        #expect(ProxyHeaderFailure.allCases.map(\.label) == ["missing", "malformed", "oversized", "timeout", "untrusted"])
    }

    @Test func figuresCountFailuresByCauseAndMergeThem() {
        var a = ConnectionFigures(), b = ConnectionFigures()
        a.recordProxyHeaderError(.timeout)
        a.recordProxyHeaderError(.timeout)
        b.recordProxyHeaderError(.untrusted)
        #expect(a != b)
        a.merge(b)
        #expect(a.proxyHeaderErrors(.timeout) == 2 && a.proxyHeaderErrors(.untrusted) == 1 && a.proxyHeaderErrors(.missing) == 0)
    }
}

/// The limit a worker parses with (`AcceptProxySettings.maximumHeaderLength`).
@Suite struct ProxyHeaderWorkerLimitTests {
    static let limit = AcceptProxySettings.maximumHeaderLength

    /// A v2 PROXY/TCP4 header whose TLVs (NOOP, of unknown types, ALPN) make it `total` bytes long.
    static func header(total: Int) -> [UInt8] {
        let source = ProxyHeader.Address(ip: .v4(203, 0, 113, 7), port: 4242)
        let destination = ProxyHeader.Address(ip: .v4(198, 51, 100, 1), port: 443)
        let fixed = 16 + 12 + 3 + 2 + 3 + 1
        return ProxyHeader.encodeV2(source: source, destination: destination, tlvs: [
            ProxyHeader.TLV(type: ProxyHeader.TLV.alpn, value: Array("h2".utf8)),
            ProxyHeader.TLV(type: 0xE0, value: [7]),
            ProxyHeader.TLV(type: ProxyHeader.TLV.noop, value: [UInt8](repeating: 0, count: total - fixed - 3)),
        ])
    }

    @Test func aHeaderOfExactlyTheLimitIsReadWithItsTLVsAndOneByteMoreIsOversized() {
        let longest = Self.header(total: Self.limit)
        #expect(longest.count == Self.limit)
        guard case let .complete(header) = ProxyHeader.parse(longest + [0x42], maximumLength: Self.limit) else {
            Issue.record("the longest allowed header was refused")
            return
        }
        #expect(header.byteCount == Self.limit)
        #expect(header.tlvs.map(\.type) == [ProxyHeader.TLV.alpn, 0xE0, ProxyHeader.TLV.noop], "unknown TLV types are kept, never acted on")
        let tooLong = Self.header(total: Self.limit + 1)
        #expect(ProxyHeader.parse(Array(tooLong[..<16]), maximumLength: Self.limit)
            == .invalid(.tooLong(length: Self.limit + 1, maximum: Self.limit)), "refused from its 16 fixed bytes alone")
    }

    @Test func theBiggestLegalV2HeaderIsOversizedForAWorkerButValidForTheParser() {
        let biggest = Self.header(total: ProxyHeader.maximumV2Length)
        #expect(biggest.count == 65551)
        guard case .complete = ProxyHeader.parse(biggest) else {
            Issue.record("the biggest legal header was refused")
            return
        }
        #expect(ProxyHeaderFailure(errorOf: ProxyHeader.parse(biggest, maximumLength: Self.limit)) == .oversized)
    }
}

extension ProxyHeaderFailure {
    init?(errorOf result: ProxyHeaderParseResult) {
        guard case let .invalid(error) = result else { return nil }
        self.init(error)
    }
}

@Suite struct ProxyProtocolConfigurationTests {
    @Test func serviceAndBackendKeysDecodeAndABackendsOwnSendProxyWins() throws {
        let configuration = try ConfigFile.parse("""
            defaults:
              accept-proxy-timeout: 2s
            services:
              edge:
                listen: ["0.0.0.0:443"]
                accept-proxy: true
                accept-proxy-from: ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"]
                send-proxy: v1
                backends:
                  - {address: "10.0.0.1:443", send-proxy: v2}
                  - "10.0.0.2:443"
              plain:
                listen: ["0.0.0.0:80"]
                backends: ["10.0.0.3:80"]
            """, file: "f")
        let edge = try #require(configuration.service(named: "edge"))
        #expect(edge.acceptsProxy && edge.acceptProxyTimeout == .seconds(2) && edge.sendProxy == .v1)
        #expect(edge.acceptProxyFrom.map(\.description) == ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1/32"])
        #expect(edge.backends.map(\.sendProxy) == [.v2, nil])
        #expect(edge.settings.sendProxy == .v1)
        #expect(edge.settings.acceptProxy == AcceptProxySettings(timeout: .seconds(2), trusted: edge.acceptProxyFrom))
        let plain = try #require(configuration.service(named: "plain"))
        #expect(plain.settings.acceptProxy == nil && plain.settings.sendProxy == nil)
        #expect(plain.acceptProxyTimeout == .seconds(2), "defaults apply to every service")
    }

    @Test func acceptProxyTimeoutDefaultsToThreeSeconds() throws {
        let configuration = try ConfigFile.parse("services:\n  a: {listen: [127.0.0.1:1], accept-proxy: true, backends: [127.0.0.1:2]}\n", file: "f")
        #expect(configuration.services[0].settings.acceptProxy?.timeout == .seconds(3))
    }

    @Test(arguments: [
        ("services:\n  a:\n    listen: [127.0.0.1:1]\n    send-proxy: v3\n    backends: [127.0.0.1:2]\n", 4, 17,
         "send-proxy: 'v3' is not one of v1, v2"),
        ("services:\n  a:\n    listen: [127.0.0.1:1]\n    backends:\n      - {address: 127.0.0.1:2, send-proxy: yes}\n", 5, 44,
         "send-proxy: 'yes' is not one of v1, v2"),
        ("services:\n  a:\n    listen: [127.0.0.1:1]\n    accept-proxy: true\n    accept-proxy-from: [10.0.0.1/8]\n    backends: [127.0.0.1:2]\n", 5, 25,
         "has bits set after the first 8; did you mean 10.0.0.0/8?"),
        ("services:\n  a:\n    listen: [127.0.0.1:1]\n    accept-proxy: true\n    accept-proxy-from: [example.com]\n    backends: [127.0.0.1:2]\n", 5, 25,
         "'example.com' is not an IPv4 or IPv6 address"),
        ("services:\n  a:\n    listen: [127.0.0.1:1]\n    accept-proxy-from: [10.0.0.0/8]\n    backends: [127.0.0.1:2]\n", 4, 24,
         "accept-proxy-from needs accept-proxy: true"),
        ("services:\n  a:\n    listen: [127.0.0.1:1]\n    accept-proxy: true\n    accept-proxy-timeout: 0s\n    backends: [127.0.0.1:2]\n", 5, 27,
         "accept-proxy-timeout must be longer than 0"),
        ("services:\n  a:\n    listen: [127.0.0.1:1]\n    accept-proxy: maybe\n    backends: [127.0.0.1:2]\n", 4, 19,
         "accept-proxy"),
        ("services:\n  a:\n    listen: [127.0.0.1:1]\n    send-proxi: v1\n    backends: [127.0.0.1:2]\n", 4, 5,
         "did you mean 'send-proxy'?"),
    ])
    func badProxyProtocolKeysNameTheLineAndColumn(_ text: String, _ line: Int, _ column: Int, _ message: String) {
        expectConfigFileError(text, line: line, column: column, message: message)
    }

    @Test func aReloadReportsChangedProxySettingsAndCarriesThem() throws {
        let old = try ConfigFile.parse("""
            services:
              a:
                listen: [127.0.0.1:1]
                backends: [{address: "127.0.0.1:2", send-proxy: v1}]
            """, file: "f")
        let new = try ConfigFile.parse("""
            services:
              a:
                listen: [127.0.0.1:1]
                accept-proxy: true
                send-proxy: v2
                backends: [{address: "127.0.0.1:2", send-proxy: v2}]
            """, file: "f")
        let difference = ConfigDifference(from: old, to: new)
        #expect(difference.summary == [
            "a: backend 127.0.0.1:2 send-proxy v1 -> v2",
            "a: PROXY protocol settings changed (new connections use them)",
        ])
        #expect(difference.changedServices.first?.settingsChanged == true, "the settings reach the workers' snapshot")
        #expect(ConfigDifference(from: new, to: old).summary.contains("a: backend 127.0.0.1:2 send-proxy v2 -> v1"))
    }
}

/// README's PROXY protocol example must stay a valid file.
@Test func theReadmeProxyProtocolExampleIsValid() throws {
    let configuration = try readmeExample(after: "## PROXY protocol")
    let edge = try #require(configuration.service(named: "edge"))
    #expect(edge.settings.acceptProxy == AcceptProxySettings(timeout: .seconds(3), trusted: [try CIDR(parsing: "10.0.0.0/8")]))
    #expect(edge.settings.sendProxy == .v2)
    #expect(edge.backends.map(\.sendProxy) == [nil, .v1])
}
