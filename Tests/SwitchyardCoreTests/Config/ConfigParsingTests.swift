import Testing
@testable import SwitchyardCore

@Suite struct EndpointParsingTests {
    @Test(arguments: [
        ("127.0.0.1:6379", "127.0.0.1", UInt16(6379)),
        ("0.0.0.0:1", "0.0.0.0", 1),
        ("[::1]:8080", "::1", 8080),
        ("[fe80::1:2]:65535", "fe80::1:2", 65535),
        ("localhost:80", "localhost", 80),
        ("db-1.internal:5432", "db-1.internal", 5432),
    ])
    func validEndpointsParse(text: String, host: String, port: UInt16) throws {
        let endpoint = try Endpoint(parsing: text)
        #expect(endpoint.host == host)
        #expect(endpoint.port == port)
        #expect(endpoint.description == text)
    }

    @Test(arguments: [
        ("127.0.0.1", "missing ':PORT'"),
        ("127.0.0.1:99999", "port '99999'"),
        ("127.0.0.1:0", "port '0'"),
        ("127.0.0.1:", "port ''"),
        ("127.0.0.1:http", "port 'http'"),
        (":80", "empty host"),
        ("::1:80", "brackets"),
        ("[::1:80", "missing ']'"),
        ("[::1]80", "expected ':PORT'"),
        ("[zz::1]:80", "not an IPv6 address"),
        ("exa mple:80", "not a valid host"),
    ])
    func invalidEndpointsNameTheProblem(text: String, fragment: String) {
        #expect(throws: ConfigError.self) { try Endpoint(parsing: text) }
        do {
            _ = try Endpoint(parsing: text)
        } catch {
            #expect(error.message.contains(fragment), "\(error.message)")
            #expect(error.message.contains(text))
        }
    }

    @Test func listenersMayAskForPortZero() throws {
        #expect(try Endpoint(parsing: "127.0.0.1:0", allowPortZero: true).port == 0)
    }

    @Test(arguments: [
        ("1.2.3.4", [1, 2, 3, 4] as [UInt8]),
        ("255.255.255.255", [255, 255, 255, 255]),
        ("::1", [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
        ("::", [UInt8](repeating: 0, count: 16)),
        ("1::", [0, 1] + [UInt8](repeating: 0, count: 14)),
        ("::ffff:10.0.0.1", [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1]),
        ("2001:db8:0:0:1:0:0:1", [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]),
    ])
    func addressesParseToNetworkOrderBytes(text: String, bytes: [UInt8]) throws {
        let address = try #require(IPAddress(text))
        #expect(address.bytes == bytes)
    }

    @Test(arguments: ["1.2.3", "1.2.3.256", "1.2.3.4.5", "01234.1.1.1", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "::g", "", "a.b.c.d"])
    func malformedAddressesAreRejected(text: String) {
        #expect(IPAddress(text) == nil)
    }

    @Test(arguments: [
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("0:0:0:0:0:0:0:1", "::1"),
        ("fe80:0:0:0:0:0:0:0", "fe80::"),
        ("1:0:2:0:3:0:4:0", "1:0:2:0:3:0:4:0"),
    ])
    func ipv6IsPrintedInCanonicalForm(text: String, canonical: String) throws {
        #expect(try #require(IPAddress(text)).description == canonical)
    }
}

@Suite struct BackendSpecParsingTests {
    @Test func weightDefaultsToOne() throws {
        let spec = try BackendSpec(parsing: "10.0.0.1:6379")
        #expect(spec.weight == 1)
        #expect(!spec.weightGiven)
    }

    @Test func weightIsParsed() throws {
        let spec = try BackendSpec(parsing: "10.0.0.2:6379,weight=3")
        #expect(spec.weight == 3)
        #expect(spec.weightGiven)
        #expect(spec.endpoint.description == "10.0.0.2:6379")
        #expect(spec.description == "10.0.0.2:6379,weight=3")
    }

    @Test func ipv6BackendWithWeight() throws {
        let spec = try BackendSpec(parsing: "[::1]:9000,weight=0")
        #expect(spec.endpoint.address == IPAddress("::1"))
        #expect(spec.weight == 0)
    }

    @Test(arguments: [
        ("10.0.0.1:6379,weight=-1", "weight '-1'"),
        ("10.0.0.1:6379,weight=257", "weight '257'"),
        ("10.0.0.1:6379,weight=", "weight ''"),
        ("10.0.0.1:6379,weight=x", "weight 'x'"),
        ("10.0.0.1:6379,backup=yes", "unknown option 'backup=yes'"),
        ("10.0.0.1:6379,max-connections=0", "max-connections '0' must be a whole number from 1 to 1000000"),
        ("10.0.0.1:6379,slow-start=fast", "slow-start 'fast'"),
        ("10.0.0.1,weight=2", "missing ':PORT'"),
    ])
    func badBackendsNameTheValue(text: String, fragment: String) {
        do {
            _ = try BackendSpec(parsing: text)
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.message.contains(fragment), "\(error.message)")
        }
    }
}

@Suite struct DurationParsingTests {
    @Test(arguments: [
        ("500ms", Int64(500)), ("2s", 2000), ("1.5s", 1500), ("1m", 60_000), ("1h", 3_600_000), ("0", 0), ("250us", 0),
    ])
    func durationsParse(text: String, milliseconds: Int64) throws {
        #expect(try Duration(parsing: text).milliseconds == milliseconds)
    }

    @Test(arguments: ["5x", "", "s", "-1s", "1", "1.2.3s", "ms", "1 s", "9999999h"])
    func badDurationsAreRejectedWithTheirText(text: String) {
        do {
            _ = try Duration(parsing: text)
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.message.contains("'\(text)'"))
        }
    }

    @Test func shortDescriptionRoundTrips() throws {
        #expect(Duration.milliseconds(1500).shortDescription == "1500ms")
        #expect(Duration.seconds(30).shortDescription == "30s")
    }
}
