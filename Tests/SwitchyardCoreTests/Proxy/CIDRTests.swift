import Testing
@testable import SwitchyardCore

@Suite struct CIDRTests {
    @Test(arguments: [
        ("10.0.0.0/8", "10.0.0.0/8"), ("192.168.1.0/24", "192.168.1.0/24"), ("0.0.0.0/0", "0.0.0.0/0"),
        ("10.1.2.3", "10.1.2.3/32"), ("10.1.2.3/32", "10.1.2.3/32"), ("::1", "::1/128"), ("::1/128", "::1/128"),
        ("::/0", "::/0"), ("2001:db8::/32", "2001:db8::/32"), ("2001:DB8:0:0::/64", "2001:db8::/64"),
        ("::ffff:10.0.0.0/104", "::ffff:a00:0/104"), ("fe80::/10", "fe80::/10"), ("128.0.0.0/1", "128.0.0.0/1"),
    ])
    func blocksParseAndPrintCanonically(text: String, canonical: String) throws {
        let cidr = try CIDR(parsing: text)
        #expect(cidr.description == canonical)
        #expect(try CIDR(parsing: canonical) == cidr)
    }

    @Test(arguments: [
        ("", "'' is not a CIDR block: the address is missing"),
        ("/8", "'/8' is not a CIDR block: the address is missing"),
        ("10.0.0.0/", "'10.0.0.0/' is not a CIDR block: the prefix length '' must be a number from 0 to 32"),
        ("10.0.0.0/33", "'10.0.0.0/33' is not a CIDR block: the prefix length '33' must be a number from 0 to 32"),
        ("::/129", "'::/129' is not a CIDR block: the prefix length '129' must be a number from 0 to 128"),
        ("10.0.0.0/08", "'10.0.0.0/08' is not a CIDR block: the prefix length '08' must be a number from 0 to 32"),
        ("10.0.0.0/-1", "'10.0.0.0/-1' is not a CIDR block: the prefix length '-1' must be a number from 0 to 32"),
        ("10.0.0.0/+8", "'10.0.0.0/+8' is not a CIDR block: the prefix length '+8' must be a number from 0 to 32"),
        ("10.0.0.0/8/8", "'10.0.0.0/8/8' is not a CIDR block: the prefix length '8/8' must be a number from 0 to 32"),
        ("10.0.0.0/ 8", "'10.0.0.0/ 8' is not a CIDR block: the prefix length ' 8' must be a number from 0 to 32"),
        ("10.0.0.1/8", "'10.0.0.1/8' has bits set after the first 8; did you mean 10.0.0.0/8?"),
        ("192.168.1.1/24", "'192.168.1.1/24' has bits set after the first 24; did you mean 192.168.1.0/24?"),
        ("2001:db8::1/32", "'2001:db8::1/32' has bits set after the first 32; did you mean 2001:db8::/32?"),
        ("example.com/8", "'example.com/8' is not a CIDR block: 'example.com' is not an IPv4 or IPv6 address"),
        ("[::1]/128", "'[::1]/128' is not a CIDR block: '[::1]' is not an IPv4 or IPv6 address"),
        ("fe80::1%eth0/64", "'fe80::1%eth0/64' is not a CIDR block: 'fe80::1%eth0' is not an IPv4 or IPv6 address"),
        ("10.0.0 /8", "'10.0.0 /8' is not a CIDR block: '10.0.0 ' is not an IPv4 or IPv6 address"),
        ("10.0.0/8", "'10.0.0/8' is not a CIDR block: '10.0.0' is not an IPv4 or IPv6 address"),
    ])
    func badBlocksSayWhatIsWrong(text: String, message: String) {
        #expect(throws: ConfigError(message)) { try CIDR(parsing: text) }
    }

    @Test(arguments: [
        ("10.0.0.0/8", "10.0.0.0", true), ("10.0.0.0/8", "10.255.255.255", true), ("10.0.0.0/8", "11.0.0.0", false),
        ("10.0.0.0/8", "9.255.255.255", false), ("192.168.1.0/24", "192.168.1.77", true),
        ("192.168.1.0/24", "192.168.2.1", false), ("10.1.2.3", "10.1.2.3", true), ("10.1.2.3", "10.1.2.4", false),
        ("0.0.0.0/0", "203.0.113.9", true), ("128.0.0.0/1", "127.255.255.255", false), ("128.0.0.0/1", "128.0.0.0", true),
        ("::1", "::1", true), ("::1", "::2", false), ("2001:db8::/32", "2001:db8:ffff::1", true),
        ("2001:db8::/32", "2001:db9::1", false), ("fe80::/10", "febf::1", true), ("fe80::/10", "fec0::1", false),
        ("2001:db8::/64", "2001:db8::ffff:ffff:ffff:ffff", true), ("2001:db8::/64", "2001:db8:0:1::", false),
        ("2001:db8::/65", "2001:db8::7fff:0:0:0", true), ("2001:db8::/65", "2001:db8::8000:0:0:0", false),
        // IPv4 and IPv4-mapped IPv6 are one address (a dual-stack listener reports the mapped form).
        ("10.0.0.0/8", "::ffff:10.1.2.3", true), ("10.0.0.0/8", "::ffff:11.1.2.3", false),
        ("10.1.2.3", "::ffff:10.1.2.3", true), ("::ffff:10.0.0.0/104", "10.200.0.1", true),
        ("::ffff:10.0.0.0/104", "11.0.0.1", false), ("::ffff:0:0/96", "1.2.3.4", true),
        ("::/0", "1.2.3.4", true), ("::/0", "2001:db8::1", true),
        // An IPv4 block holds no other IPv6 address, and the IPv4-compatible form is not mapped.
        ("0.0.0.0/0", "::1", false), ("0.0.0.0/0", "2001:db8::1", false), ("10.0.0.0/8", "::10.1.2.3", false),
        ("::/96", "10.1.2.3", false), ("64:ff9b::/96", "10.1.2.3", false),
    ])
    func containsMatchesByPrefix(block: String, address: String, expected: Bool) throws {
        let cidr = try CIDR(parsing: block)
        #expect(cidr.contains(IPAddress(address)!) == expected, "\(block) contains \(address)")
    }

    @Test func everyPrefixLengthOfAnIPv6BlockSplitsAtItsBit() {
        let base = IPAddress("2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff")!
        let (high, low) = base.mapped128
        for length in 0...128 {
            let block = CIDR(address: base, prefixLength: length)
            #expect(block.contains(base), "/\(length)")
            guard length > 0 else { continue }
            // Flipping the last bit inside the prefix leaves the block; flipping one past it does not.
            let inside = length - 1
            let flippedInside = inside < 64
                ? IPAddress(high: high ^ (1 << UInt64(63 - inside)), low: low)
                : IPAddress(high: high, low: low ^ (1 << UInt64(127 - inside)))
            #expect(!block.contains(flippedInside), "/\(length) flipping bit \(inside)")
            if length < 128 {
                let flippedOutside = length < 64
                    ? IPAddress(high: high ^ (1 << UInt64(63 - length)), low: low)
                    : IPAddress(high: high, low: low ^ (1 << UInt64(127 - length)))
                #expect(block.contains(flippedOutside), "/\(length) flipping bit \(length)")
            }
        }
    }

    @Test func everyPrefixLengthOfAnIPv4BlockSplitsAtItsBit() {
        for length in 0...32 {
            let block = CIDR(address: .v4(172, 16, 255, 255), prefixLength: length)
            #expect(block.prefixLength == length)
            #expect(block.contains(.v4(172, 16, 255, 255)))
            if length < 32 {
                #expect(block.contains(.v4(172, 16, 255, 254)) == (length < 32))
            }
            if length > 0 {
                let value = UInt32(172) << 24 | 16 << 16 | 255 << 8 | 255
                let flipped = value ^ (1 << UInt32(32 - length))
                let other = IPAddress.v4(UInt8(flipped >> 24), UInt8(flipped >> 16 & 0xFF),
                                         UInt8(flipped >> 8 & 0xFF), UInt8(flipped & 0xFF))
                #expect(!block.contains(other), "/\(length)")
            }
        }
        #expect(CIDR(address: .v4(10, 9, 8, 7), prefixLength: 40).description == "10.9.8.7/32")
        #expect(CIDR(address: .v4(10, 9, 8, 7), prefixLength: -3).description == "0.0.0.0/0")
    }

    @Test func aListContainsWhatAnyOfItsBlocksContains() throws {
        let list = try ["10.0.0.0/8", "192.168.0.0/16", "::1"].map { try CIDR(parsing: $0) }
        #expect(list.anyContains(IPAddress("10.2.3.4")!))
        #expect(list.anyContains(IPAddress("::ffff:192.168.7.7")!))
        #expect(list.anyContains(IPAddress("::1")!))
        #expect(!list.anyContains(IPAddress("172.16.0.1")!))
        #expect(![CIDR]().anyContains(IPAddress("10.0.0.1")!))
    }
}

@Suite struct IPAddressBytesTests {
    @Test func bytesMakeAddressesOfTheirFamily() {
        #expect(IPAddress(bytes: [10, 0, 0, 1]) == .v4(10, 0, 0, 1))
        #expect(IPAddress(bytes: [UInt8](repeating: 0, count: 15) + [1]) == IPAddress("::1"))
        #expect(IPAddress(bytes: [1, 2, 3]) == nil)
        #expect(IPAddress(bytes: [UInt8](repeating: 0, count: 17)) == nil)
        #expect(IPAddress(bytes: []) == nil)
    }

    @Test func mappedFormsConvertBothWays() {
        let v4 = IPAddress.v4(192, 0, 2, 33)
        #expect(v4.asIPv6 == IPAddress("::ffff:192.0.2.33"))
        #expect(IPAddress("::ffff:192.0.2.33")!.unmappedIPv4 == v4)
        #expect(IPAddress("::192.0.2.33")!.unmappedIPv4 == nil)
        #expect(IPAddress("2001:db8::1")!.unmappedIPv4 == nil)
        #expect(v4.unmappedIPv4 == nil)
        #expect(IPAddress("::1")!.asIPv6 == IPAddress("::1"))
        let (high, low) = IPAddress("2001:db8::aa:bb")!.mapped128
        #expect(high == 0x2001_0DB8_0000_0000 && low == 0x0000_0000_00AA_00BB)
        #expect(IPAddress(high: high, low: low) == IPAddress("2001:db8::aa:bb"))
    }
}
