extension SourceSet {
    /// An entry point for fuzzers: runs `bytes` as a sequence of operations on one set against a
    /// plain model of who holds how many connections, and traps (so that the fuzzer reports the
    /// input) if the set ever disagrees with the model or breaks a promise:
    /// - a source's open count is exact: what was admitted and not yet released;
    /// - a source with open connections is never forgotten, and appears in one way only;
    /// - a refusal for `sourceLimit` happens only at the limit, `untracked` only when every way
    ///   holds open connections, and the limit is never exceeded.
    ///
    /// Input: byte 0 is the limit (1 to 4 open per source), byte 1 the rate (0: none, else 1 to
    /// 8 a second, burst 2); then three bytes an operation: kind (admit, refuse, release,
    /// advance the clock), a source (16 addresses of two services), and an argument.
    public static func fuzz(_ bytes: [UInt8]) {
        guard bytes.count >= 2 else { return }
        let maxOpen = Int(bytes[0] % 4) + 1
        let rate = Int(bytes[1] % 9)
        let limits = SourceLimits(maxOpen: maxOpen, ratePerSecond: rate == 0 ? nil : rate, burst: rate == 0 ? nil : 2)
        var set = SourceSet()
        var now: Int64 = 1_000
        var open: [SourceKey: Int] = [:]
        var tickets: [(way: Int, key: SourceKey)] = []
        var index = 2
        while index + 3 <= bytes.count {
            let (kind, which, argument) = (bytes[index] % 4, bytes[index + 1], bytes[index + 2])
            index += 3
            let key = SourceKey(high: 0, low: 0xFFFF_0A00_0000 | UInt64(which % 16), service: UInt32(which / 16 % 2) + 1)
            switch kind {
            case 0:
                switch set.admit(key, now: now, limits: limits) {
                case let .admitted(way):
                    open[key, default: 0] += 1
                    tickets.append((way, key))
                    precondition(set.entries[way].key == key, "SourceSet.fuzz: admitted into a way of another source")
                    precondition(open[key]! <= maxOpen, "SourceSet.fuzz: more than max-connections-per-source open")
                case .untracked:
                    precondition((0..<ways).allSatisfy { set.entries[$0].open > 0 }, "SourceSet.fuzz: untracked with an idle way")
                    precondition(open[key, default: 0] == 0, "SourceSet.fuzz: a source with open connections went untracked")
                case .refused(.sourceLimit):
                    precondition(open[key, default: 0] >= maxOpen, "SourceSet.fuzz: refused below the limit")
                case .refused(.sourceRate):
                    precondition(rate > 0, "SourceSet.fuzz: refused for a rate that is not set")
                case let .refused(reason):
                    preconditionFailure("SourceSet.fuzz: admit refused for \(reason)")
                }
            case 1:
                set.refused(key, now: now)
            case 2:
                guard !tickets.isEmpty else { break }
                let ticket = tickets.remove(at: Int(argument) % tickets.count)
                set.release(way: ticket.way, key: ticket.key, now: now)
                open[ticket.key]! -= 1
            default:
                now += Int64(argument) * 16
            }
            for (key, count) in open where count > 0 {
                let holding = (0..<ways).filter { set.entries[$0].key == key && !set.entries[$0].isFree }
                precondition(holding.count == 1, "SourceSet.fuzz: a source with open connections is in \(holding.count) ways")
                precondition(Int(set.entries[holding[0]].open) == count, "SourceSet.fuzz: open count \(set.entries[holding[0]].open), expected \(count)")
            }
            let total = (0..<ways).reduce(0) { $0 + Int(set.entries[$1].open) }
            precondition(total == open.values.reduce(0, +), "SourceSet.fuzz: the set counts \(total) open connections")
        }
    }
}
