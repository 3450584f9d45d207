extension ClientControls {
    /// An entry point for fuzzers: `text` is lines of the form `allow BLOCK`, `deny BLOCK`,
    /// `mask V4,V6` and `check ADDRESS`. Blocks and masks go through the parsers the
    /// configuration uses; each checked address is matched by `access(high:low:)` and compared
    /// with a reference that tests the prefix bit by bit. Traps (so that the fuzzer reports the
    /// input) if:
    /// - a refusal is not one line;
    /// - an accepted block does not print and re-parse to itself;
    /// - `access` disagrees with the reference (deny wins; an empty allow allows everyone; IPv4
    ///   and IPv4-mapped IPv6 are one address);
    /// - masking an address is not idempotent or does not keep its family.
    public static func fuzz(_ text: String) {
        var controls = ClientControls()
        var mask = SourceMask.host
        for line in text.split(separator: "\n", omittingEmptySubsequences: true).prefix(64) {
            let words = line.split(separator: " ", maxSplits: 1)
            guard words.count == 2 else { continue }
            let argument = String(words[1])
            do throws(ConfigError) {
                switch words[0] {
                case "allow", "deny":
                    let block = try CIDR(parsing: argument)
                    precondition((try? CIDR(parsing: block.description)) == block, "ClientControls.fuzz: \(block) does not re-parse")
                    if words[0] == "allow" { controls.allow.append(block) } else { controls.deny.append(block) }
                case "mask":
                    mask = try SourceMask(parsing: argument)
                    precondition((try? SourceMask(parsing: mask.description)) == mask, "ClientControls.fuzz: mask \(mask) does not re-parse")
                case "check":
                    guard let address = IPAddress(argument) else { continue }
                    check(address, controls: controls, mask: mask)
                    if let v4 = address.unmappedIPv4 { check(v4, controls: controls, mask: mask) }
                    check(address.asIPv6, controls: controls, mask: mask)
                default:
                    continue
                }
            } catch {
                precondition(!error.message.isEmpty && !error.message.contains("\n"), "ClientControls.fuzz: refusal is not one line")
            }
        }
    }

    private static func check(_ address: IPAddress, controls: ClientControls, mask: SourceMask) {
        let (high, low) = address.mapped128
        func inside(_ block: CIDR) -> Bool {
            let (blockHigh, blockLow) = block.address.mapped128
            let length = block.address.isIPv6 ? block.prefixLength : 96 + block.prefixLength
            for bit in 0..<length {
                let mine = bit < 64 ? (high >> UInt64(63 - bit)) & 1 : (low >> UInt64(127 - bit)) & 1
                let theirs = bit < 64 ? (blockHigh >> UInt64(63 - bit)) & 1 : (blockLow >> UInt64(127 - bit)) & 1
                if mine != theirs { return false }
            }
            return true
        }
        let expected: RejectionReason? = controls.deny.contains(where: inside) ? .deny
            : (controls.allow.isEmpty || controls.allow.contains(where: inside) ? nil : .notAllowed)
        precondition(controls.access(high: high, low: low) == expected, "ClientControls.fuzz: \(address) judged unlike the reference")
        let source = mask.source(high: high, low: low)
        precondition(mask.source(high: source.high, low: source.low) == source, "ClientControls.fuzz: masking \(address) twice differs")
        let mapped = high == 0 && low >> 32 == 0xFFFF
        precondition(mapped == (source.high == 0 && source.low >> 32 == 0xFFFF), "ClientControls.fuzz: masking \(address) changed its family")
    }
}
