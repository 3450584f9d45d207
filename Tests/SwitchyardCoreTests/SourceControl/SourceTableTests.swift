import Testing
@testable import SwitchyardCore

private func key(_ address: String, service: UInt32 = 1, mask: SourceMask = .host) -> SourceKey {
    let (high, low) = IPAddress(address)!.mapped128
    let source = mask.source(high: high, low: low)
    return SourceKey(high: source.high, low: source.low, service: service)
}

/// What `count` takes from `bucket` at `now` returned, in order.
private func takes(_ bucket: inout TokenBucket, now: Int64, rate: Int, burst: Int, count: Int = 1) -> [Bool] {
    (0..<count).map { _ in bucket.take(now: now, rate: rate, burst: burst) }
}

@Suite struct TokenBucketTests {
    @Test func aFullBucketGivesItsBurstThenRefillsAtTheRate() {
        var bucket = TokenBucket.full(burst: 3, now: 1000)
        #expect(takes(&bucket, now: 1000, rate: 2, burst: 3, count: 4) == [true, true, true, false])
        // 2 a second: one token every 500 ms, never more than the burst.
        #expect(takes(&bucket, now: 1499, rate: 2, burst: 3) == [false])
        #expect(takes(&bucket, now: 1500, rate: 2, burst: 3, count: 2) == [true, false])
        #expect(takes(&bucket, now: 100_000, rate: 2, burst: 3, count: 4) == [true, true, true, false])
    }

    @Test func aClockGoingBackwardsRefillsNothing() {
        var bucket = TokenBucket.full(burst: 1, now: 5000)
        #expect(takes(&bucket, now: 5000, rate: 1, burst: 1) == [true])
        #expect(takes(&bucket, now: 1000, rate: 1, burst: 1) == [false])
        #expect(takes(&bucket, now: 5999, rate: 1, burst: 1) == [false])
        #expect(takes(&bucket, now: 6000, rate: 1, burst: 1) == [true])
    }

    @Test func aLowerBurstAfterAReloadCapsTheTokens() {
        var bucket = TokenBucket.full(burst: 10, now: 0)
        #expect(takes(&bucket, now: 0, rate: 1, burst: 2, count: 3) == [true, true, false])
    }

    @Test func hugeRatesAndGapsDoNotOverflow() {
        var bucket = TokenBucket.full(burst: ClientControls.maximumLimit, now: 0)
        #expect(takes(&bucket, now: .max, rate: ClientControls.maximumLimit, burst: ClientControls.maximumLimit) == [true])
    }
}

@Suite struct AcceptPacingTests {
    @Test func aBurstOfOneSecondThenOneIntervalPerConnection() {
        let rate = ConnectionRate(perSecond: 10)  // 100 ms apart
        var due: Int64 = 0
        var pauses: [Int64] = []
        for _ in 0..<12 {
            let (next, pause) = AcceptPacing.accepted(due: due, now: 1_000_000, rate: rate)
            due = next
            pauses.append(pause)
        }
        // The tenth fills the second's burst: the eleventh must wait one interval, and so on.
        #expect(pauses == [0, 0, 0, 0, 0, 0, 0, 0, 0, 100_000, 200_000, 300_000])
        // After waiting out the pause, one connection per interval.
        #expect(AcceptPacing.accepted(due: due, now: 1_000_000 + 300_000, rate: rate).pause == 100_000)
        #expect(AcceptPacing.accepted(due: due, now: due + 1_000_000, rate: rate).pause == 0)
    }

    @Test func anIdleListenerStartsAfresh() {
        #expect(AcceptPacing.accepted(due: 5, now: 10_000_000_000, rate: ConnectionRate(perSecond: 10)) == (10_000_100_000, 0))
        // At 1/s the burst is one: the next must wait a second.
        #expect(AcceptPacing.accepted(due: 5, now: 10_000_000_000, rate: ConnectionRate(perSecond: 1)) == (10_001_000_000, 1_000_000))
    }
}

@Suite struct SourceMaskTests {
    @Test func masksKeepTheFamilyAndClearTheHostBits() {
        let mask = SourceMask(ipv4: 24, ipv6: 64)
        #expect(key("192.0.2.77", mask: mask) == key("192.0.2.0"))
        #expect(key("::ffff:192.0.2.77", mask: mask) == key("192.0.2.0"))
        #expect(key("2001:db8:1:2:3:4:5:6", mask: mask) == key("2001:db8:1:2::"))
        #expect(key("192.0.2.77", mask: SourceMask(ipv4: 0, ipv6: 0)) == key("0.0.0.0"))
        #expect(key("2001:db8::1", mask: SourceMask(ipv4: 0, ipv6: 0)) == key("::"))
        #expect(key("2001:db8::1", mask: SourceMask(ipv4: 32, ipv6: 127)) == key("2001:db8::"))
    }

    @Test func sourcesAreNamedAsAddressesOrNetworks() {
        let k = key("192.0.2.77", mask: SourceMask(ipv4: 24, ipv6: 64))
        #expect(SourceMask(ipv4: 24, ipv6: 64).describe(high: k.high, low: k.low) == "192.0.2.0/24")
        let host = key("192.0.2.77")
        #expect(SourceMask.host.describe(high: host.high, low: host.low) == "192.0.2.77")
        let v6 = key("2001:db8::1")
        #expect(SourceMask.host.describe(high: v6.high, low: v6.low) == "2001:db8::1")
    }
}

@Suite struct SourceSetTests {
    @Test func theEmptySetIsAllZeroBytes() {
        let set = SourceSet()
        withUnsafeBytes(of: set) { bytes in
            #expect(bytes.count == SourceSet.ways * 64)
            #expect(bytes.allSatisfy { $0 == 0 })
        }
        #expect(MemoryLayout<SourceEntry>.stride == 64)
    }

    @Test func concurrentConnectionsOfOneSourceAreCappedExactly() {
        var set = SourceSet()
        let limits = SourceLimits(maxOpen: 2)
        let a = key("127.0.0.2")
        let first = set.admit(a, now: 1, limits: limits)
        let second = set.admit(a, now: 2, limits: limits)
        #expect(first == .admitted(way: 0) && second == .admitted(way: 0))
        #expect(set.admit(a, now: 3, limits: limits) == .refused(.sourceLimit))
        // Another source, or the same address for another service, has its own count.
        #expect(set.admit(key("127.0.0.3"), now: 4, limits: limits) == .admitted(way: 1))
        #expect(set.admit(key("127.0.0.2", service: 2), now: 4, limits: limits) == .admitted(way: 2))
        set.release(way: 0, key: a, now: 5)
        #expect(set.admit(a, now: 6, limits: limits) == .admitted(way: 0))
        #expect(set.entries[0].open == 2 && set.entries[0].refusals == 1)
    }

    @Test func theRateLimitTakesNoTokenForRefusedAttempts() {
        var set = SourceSet()
        let limits = SourceLimits(maxOpen: 1, ratePerSecond: 1, burst: 2)
        let a = key("127.0.0.2")
        #expect(set.admit(a, now: 0, limits: limits) == .admitted(way: 0))
        #expect(set.admit(a, now: 0, limits: limits) == .refused(.sourceLimit))
        set.release(way: 0, key: a, now: 0)
        #expect(set.admit(a, now: 0, limits: limits) == .admitted(way: 0))
        set.release(way: 0, key: a, now: 0)
        #expect(set.admit(a, now: 0, limits: limits) == .refused(.sourceRate))
        #expect(set.admit(a, now: 1000, limits: limits) == .admitted(way: 0))
        #expect(set.entries[0].refusals == 2)
    }

    @Test func theLeastRecentlySeenIdleSourceIsForgottenFirst() {
        var set = SourceSet()
        let limits = SourceLimits(maxOpen: 10)
        for index in 0..<SourceSet.ways {
            let admission = set.admit(key("10.0.0.\(index)"), now: Int64(100 + index), limits: limits)
            #expect(admission == .admitted(way: index))
            set.release(way: index, key: key("10.0.0.\(index)"), now: Int64(100 + index))
        }
        // 10.0.0.0 is seen again: 10.0.0.1 is now the least recently seen.
        #expect(set.admit(key("10.0.0.0"), now: 200, limits: limits) == .admitted(way: 0))
        #expect(set.admit(key("10.0.0.99"), now: 201, limits: limits) == .admitted(way: 1))
        #expect(set.entries[1].key == key("10.0.0.99") && set.entries[1].open == 1)
    }

    @Test func sourcesWithOpenConnectionsAreNeverForgotten() {
        var set = SourceSet()
        let limits = SourceLimits(maxOpen: 1)
        for index in 0..<SourceSet.ways {
            #expect(set.admit(key("10.0.0.\(index)"), now: Int64(index), limits: limits) == .admitted(way: index))
        }
        // Every way is busy: a newcomer is admitted untracked, nobody is forgotten or refused.
        #expect(set.admit(key("10.0.0.200"), now: 100, limits: limits) == .untracked)
        for index in 0..<SourceSet.ways {
            #expect(set.admit(key("10.0.0.\(index)"), now: 101, limits: limits) == .refused(.sourceLimit))
        }
        set.release(way: 3, key: key("10.0.0.3"), now: 102)
        #expect(set.admit(key("10.0.0.200"), now: 103, limits: limits) == .admitted(way: 3))
    }

    @Test func aReleaseForAnotherSourceChangesNothing() {
        var set = SourceSet()
        let a = key("10.0.0.1")
        _ = set.admit(a, now: 0, limits: SourceLimits())
        set.release(way: 0, key: key("10.0.0.2"), now: 1)
        set.release(way: 9, key: a, now: 1)
        #expect(set.entries[0].open == 1)
        set.release(way: 0, key: a, now: 1)
        set.release(way: 0, key: a, now: 1)
        #expect(set.entries[0].open == 0)
    }

    @Test func refusalsByTheAccessListAreCountedForShowSources() {
        var set = SourceSet()
        let a = key("192.0.2.1")
        set.refused(a, now: 10_500)
        set.refused(a, now: 10_600)
        #expect(set.entries[0].refusals == 2 && set.entries[0].open == 0)
        #expect(set.entries[0].attemptsPerSecond(now: 10_700) == 2)
        // Half of the previous second still counts half, then nothing.
        #expect(set.entries[0].attemptsPerSecond(now: 11_500) == 1)
        #expect(set.entries[0].attemptsPerSecond(now: 12_000) == 0)
    }

    @Test func keysSpreadOverSetsAndTheSeedMovesThem() {
        let setCount = 1024
        var used = Set<Int>()
        for index in 0..<256 {
            used.insert(key("10.0.\(index / 256).\(index % 256)").setIndex(seed: 1, setCount: setCount))
        }
        #expect(used.count > 200)
        let a = key("10.0.0.1")
        #expect((0..<8).map { a.setIndex(seed: UInt64($0), setCount: setCount) }.count { $0 != a.setIndex(seed: 0, setCount: setCount) } >= 6)
        #expect(a.setIndex(seed: 42, setCount: 1) == 0)
    }
}
