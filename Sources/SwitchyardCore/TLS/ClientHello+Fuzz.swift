extension ClientHello {
    /// An entry point for fuzzers (libFuzzer's `LLVMFuzzerTestOneInput` calls it with the input):
    /// reads `bytes` as the first bytes of a connection and returns the answer.
    ///
    /// It also checks the properties a worker relies on, and traps (so that the fuzzer reports
    /// the input) only if one of them fails, which would be a bug in the reader:
    /// - Fed in pieces (sizes cycling 1 to 7 bytes, and one split in the middle), the reader
    ///   reaches the same answer as fed at once.
    /// - Prefixes agree with the whole: once a prefix gets a final answer, the whole input gets
    ///   the same; while the whole is `needMoreData`, so is every prefix. Checked for every prefix
    ///   of inputs up to 256 bytes, for 64 spread-out prefixes beyond.
    /// - `received` holds exactly the bytes fed until the answer.
    public static func fuzz(_ bytes: [UInt8]) -> ClientHelloResult {
        let whole = parse(bytes)

        var pieces = ClientHelloReader()
        var offset = 0
        var size = 1
        while offset < bytes.count, case .needMoreData = pieces.result {
            let end = min(bytes.count, offset + size)
            pieces.feed(bytes[offset..<end])
            offset = end
            size = size % 7 + 1
        }
        precondition(pieces.result == whole, "ClientHello.fuzz: fed in pieces gave \(pieces.result), at once \(whole)")
        precondition(pieces.received == Array(bytes[..<offset]), "ClientHello.fuzz: received is not what was fed")

        var halves = ClientHelloReader()
        halves.feed(bytes[..<(bytes.count / 2)])
        halves.feed(bytes[(bytes.count / 2)...])
        precondition(halves.result == whole, "ClientHello.fuzz: fed in two halves gave \(halves.result), at once \(whole)")

        for length in ProxyHeader.fuzzPrefixLengths(bytes.count) {
            let prefix = parse(Array(bytes[..<length]))
            if case .needMoreData = prefix { continue }
            precondition(prefix == whole, "ClientHello.fuzz: prefix of \(length) bytes gave \(prefix), the whole \(whole)")
        }
        return whole
    }
}
