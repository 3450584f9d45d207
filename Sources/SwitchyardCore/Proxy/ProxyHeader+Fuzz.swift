extension ProxyHeader {
    /// An entry point for fuzzers (libFuzzer's `LLVMFuzzerTestOneInput` calls it with the input):
    /// parses `bytes` as the start of a connection and returns the answer.
    ///
    /// It also checks the properties a worker relies on, and traps (so that the fuzzer reports
    /// the input) only if one of them fails, which would be a bug in the parser:
    /// - Prefixes agree with the whole: once a prefix is `complete` or `invalid`, the whole input
    ///   is too (with the same header); while the whole is `needMoreData`, so is every prefix.
    ///   Checked for every prefix of inputs up to 256 bytes, for 64 spread-out prefixes beyond.
    /// - `ProxyHeaderReader` fed the input in pieces reaches the same answer as one parse (for
    ///   `invalid`, possibly with another reason: with more bytes at hand a different check may
    ///   fail first).
    /// - A complete header occupies at most the input and re-parses alone to itself; one with
    ///   addresses re-encodes (v1 and v2) to a header carrying the same addresses, and the
    ///   inline encoder `encode(_:source:destination:)` gives the same bytes as the array one.
    public static func fuzz(_ bytes: [UInt8]) -> ProxyHeaderParseResult {
        let whole = parse(bytes)

        for length in fuzzPrefixLengths(bytes.count) {
            let prefix = parse(Array(bytes[..<length]))
            switch (prefix, whole) {
            case (.needMoreData, _):
                break
            case let (.complete(a), .complete(b)):
                precondition(a == b, "ProxyHeader.fuzz: a prefix and the whole input parse to different headers")
            case (.invalid, .invalid):
                break
            default:
                preconditionFailure("ProxyHeader.fuzz: prefix of \(length) bytes gave \(prefix), the whole \(whole)")
            }
        }

        var reader = ProxyHeaderReader()
        var offset = 0
        var piece = 1
        while offset < bytes.count, case .needMoreData = reader.result {
            let end = min(bytes.count, offset + piece)
            reader.feed(bytes[offset..<end])
            offset = end
            piece = piece % 7 + 1
        }
        switch (reader.result, whole) {
        case (.invalid, .invalid): break
        default: precondition(reader.result == whole, "ProxyHeader.fuzz: fed in pieces gave \(reader.result), at once \(whole)")
        }

        if case let .complete(header) = whole {
            precondition(header.byteCount > 0 && header.byteCount <= bytes.count,
                         "ProxyHeader.fuzz: header of \(header.byteCount) bytes in \(bytes.count)")
            precondition(parse(Array(bytes[..<header.byteCount])) == whole,
                         "ProxyHeader.fuzz: the header alone does not re-parse to itself")
            if let source = header.source, let destination = header.destination {
                for encoded in [encodeV1(source: source, destination: destination),
                                encodeV2(source: source, destination: destination)] {
                    guard case let .complete(again) = parse(encoded) else {
                        preconditionFailure("ProxyHeader.fuzz: re-encoded header does not parse")
                    }
                    precondition(again.source == source && again.destination == destination,
                                 "ProxyHeader.fuzz: re-encoded header carries other addresses")
                }
                // The worker's inline encoder writes exactly what the array encoder does.
                let peers = (PeerAddress(source), PeerAddress(destination))
                precondition(encode(.v1, source: peers.0, destination: peers.1).array == encodeV1(source: source, destination: destination)
                             && encode(.v2, source: peers.0, destination: peers.1).array == encodeV2(source: source, destination: destination),
                             "ProxyHeader.fuzz: the inline encoder and the array encoder disagree")
            }
        }
        return whole
    }

    /// Every length below `count` for short inputs; for long ones, the first 256 and 64 more
    /// spread over the rest.
    static func fuzzPrefixLengths(_ count: Int) -> [Int] {
        if count <= 256 { return Array(0..<count) }
        var lengths = Array(0..<256)
        let step = max(1, (count - 256) / 64)
        var length = 256
        while length < count {
            lengths.append(length)
            length += step
        }
        return lengths
    }
}
