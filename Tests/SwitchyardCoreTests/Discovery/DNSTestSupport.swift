@testable import SwitchyardCore

/// Hand-built DNS messages for the codec tests: a byte writer with the pieces of RFC 1035 §4.1.
struct DNSWire {
    var bytes: [UInt8] = []

    /// A response header: QR set, RD and RA set, NOERROR unless `flags` says otherwise.
    static func header(id: UInt16 = 0x1234, flags: UInt16 = 0x8180, questions: UInt16 = 1,
                       answers: UInt16 = 0, authorities: UInt16 = 0, additionals: UInt16 = 0) -> DNSWire {
        var wire = DNSWire()
        for value in [id, flags, questions, answers, authorities, additionals] { wire.u16(value) }
        return wire
    }

    mutating func u16(_ value: UInt16) {
        bytes += [UInt8(value >> 8), UInt8(value & 0xFF)]
    }

    mutating func u32(_ value: UInt32) {
        bytes += [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }

    /// An uncompressed name from dotted text ("" is the root).
    mutating func name(_ text: String) {
        for label in text.split(separator: ".") {
            bytes.append(UInt8(label.utf8.count))
            bytes += Array(label.utf8)
        }
        bytes.append(0)
    }

    /// A compression pointer to `offset`.
    mutating func pointer(_ offset: Int) {
        bytes += [0xC0 | UInt8(offset >> 8), UInt8(offset & 0xFF)]
    }

    mutating func question(_ name: String, type: UInt16 = 1, recordClass: UInt16 = 1) {
        self.name(name)
        u16(type)
        u16(recordClass)
    }

    /// A record whose owner is the name at offset 12 (the question's), with `data` as given.
    mutating func record(type: UInt16, ttl: UInt32 = 60, recordClass: UInt16 = 1, data: [UInt8]) {
        pointer(12)
        u16(type)
        u16(recordClass)
        u32(ttl)
        u16(UInt16(data.count))
        bytes += data
    }

    mutating func recordA(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8, ttl: UInt32 = 60) {
        record(type: 1, ttl: ttl, data: [a, b, c, d])
    }

    /// The wire form of a name, for record data.
    static func nameBytes(_ text: String) -> [UInt8] {
        var wire = DNSWire()
        wire.name(text)
        return wire.bytes
    }

    /// SRV data: priority, weight, port, uncompressed target.
    static func srvData(priority: UInt16, weight: UInt16, port: UInt16, target: String) -> [UInt8] {
        var wire = DNSWire()
        wire.u16(priority)
        wire.u16(weight)
        wire.u16(port)
        wire.name(target)
        return wire.bytes
    }
}

/// Bytes from hex text (whitespace ignored); traps on bad text, which only tests write.
func hexBytes(_ text: String) -> [UInt8] {
    let digits = Array(text.filter { !$0.isWhitespace })
    precondition(digits.count % 2 == 0, "odd hex length")
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
}

func dnsName(_ text: String) -> DNSName { try! DNSName(parsing: text) }

func ipv4(_ text: String) -> IPAddress { IPAddress(text)! }

/// SplitMix64: a fixed-seed generator, so generated inputs are the same on every run.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Answers captured from dnsmasq 2.90 (Debian 2.90-4~deb12u2) with a 20-line Python UDP/TCP
/// client, queries with id 0x1234, RD set. Server started as
/// `dnsmasq --no-resolv --no-hosts --local=/test/ --local-ttl=120 --addn-hosts=FILE
/// --srv-host=_web._tcp.test,target1.test,8080,0,10 --srv-host=_web._tcp.test,target2.test,8081,0,30
/// --srv-host=_web._tcp.test,nohost.test,8082,1,5 --cname=alias.test,web.test`, FILE holding
/// web.test = 127.0.0.2, 127.0.0.3, ::1; target1.test = 127.0.0.9; target2.test = 127.0.0.10;
/// big.test = 10.1.0.1 ... 10.1.0.40.
enum DNSCaptures {
    /// web.test A: two addresses.
    static let webA = hexBytes("""
        1234858000010002000000000377656204746573740000010001c00c000100010000007800047f000002c00c0001\
        00010000007800047f000003
        """)
    /// web.test AAAA: ::1.
    static let webAAAA = hexBytes("""
        12348580000100010000000003776562047465737400001c0001c00c001c000100000078001000000000000000000000\
        000000000001
        """)
    /// _web._tcp.test SRV: three records (priorities 1, 0, 0), A glue for the two known targets.
    static let webSRV = hexBytes("""
        123485800001000300000002045f776562045f74637004746573740000210001c00c00210001000000780013000100051f\
        92066e6f686f7374047465737400c00c002100010000007800140000001e1f910774617267657432047465737400c00c00\
        2100010000007800140000000a1f900774617267657431047465737400c051000100010000007800047f00000ac0710001\
        00010000007800047f000009
        """)
    /// nope.test A: NXDOMAIN.
    static let nopeNXDOMAIN = hexBytes("123481830001000000000000046e6f706504746573740000010001")
    /// alias.test A: a CNAME to web.test, then web.test's two addresses.
    static let aliasCNAME = hexBytes("""
        12348580000100030000000005616c69617304746573740000010001c00c0005000100000078000a03776562047465737400\
        c028000100010000007800047f000003c028000100010000007800047f000002
        """)
    /// other.example A: REFUSED (outside the served domain, no upstream).
    static let otherREFUSED = hexBytes("123481850001000000000000056f74686572076578616d706c650000010001")
    /// target1.test AAAA: NOERROR without records (NODATA).
    static let target1NODATA = hexBytes("1234818000010000000000000774617267657431047465737400001c0001")
    /// big.test A over UDP: TC set, the 30 records that fit in 512 bytes.
    static let bigTruncated: [UInt8] = {
        let last = ["03", "15", "0b", "16", "06", "17", "0c", "18", "02", "19", "0d", "1a", "07", "1b", "0e",
                    "1c", "04", "1d", "0f", "1e", "08", "1f", "10", "20", "01", "21", "11", "22", "09", "23"]
        return hexBytes("123487800001001e000000000362696704746573740000010001"
            + last.map { "c00c000100010000007800040a0100" + $0 }.joined())
    }()
    /// big.test A over TCP (length prefix removed): all 40 records.
    static let bigTCP: [UInt8] = {
        let last = ["15", "0b", "16", "06", "17", "0c", "18", "02", "19", "0d", "1a", "07", "1b", "0e", "1c",
                    "04", "1d", "0f", "1e", "08", "1f", "10", "20", "01", "21", "11", "22", "09", "23", "12",
                    "24", "05", "25", "13", "26", "0a", "27", "14", "28", "03"]
        return hexBytes("1234858000010028000000000362696704746573740000010001"
            + last.map { "c00c000100010000007800040a0100" + $0 }.joined())
    }()

    static let all: [[UInt8]] = [webA, webAAAA, webSRV, nopeNXDOMAIN, aliasCNAME, otherREFUSED, target1NODATA, bigTruncated, bigTCP]
}
