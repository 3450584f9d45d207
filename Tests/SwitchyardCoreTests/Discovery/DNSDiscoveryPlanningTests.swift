import Testing
@testable import SwitchyardCore

private func backend(_ address: String, _ port: UInt16, weight: Int? = nil) -> DNSBackend {
    DNSBackend(address: IPAddress(address)!, port: port, weight: weight)
}

private func srv(_ priority: UInt16, _ weight: UInt16, _ port: UInt16, _ target: String) -> DNSServiceRecord {
    DNSServiceRecord(priority: priority, weight: weight, port: port, target: target.isEmpty ? .root : dnsName(target))
}

@Suite struct DNSBackendSetTests {
    @Test func addressesBecomeBackendsSortedIPv4FirstWithDuplicatesCollapsed() {
        let set = DNSBackendSet.addresses(
            [ipv4("10.0.0.10"), IPAddress("::1")!, ipv4("10.0.0.9"), ipv4("10.0.0.10"), ipv4("9.255.0.1")], port: 80)
        #expect(set == [backend("9.255.0.1", 80), backend("10.0.0.9", 80), backend("10.0.0.10", 80), backend("::1", 80)])
        #expect(set.map(\.description) == ["9.255.0.1:80", "10.0.0.9:80", "10.0.0.10:80", "[::1]:80"])
    }

    @Test func theSetDoesNotDependOnAnswerOrder() {
        let addresses = (1...20).map { IPAddress.v4(10, 0, UInt8($0 % 3), UInt8($0)) }
        var generator = SplitMix64(seed: 3)
        let expected = DNSBackendSet.addresses(addresses, port: 443)
        for _ in 0..<20 {
            #expect(DNSBackendSet.addresses(addresses.shuffled(using: &generator), port: 443) == expected)
        }
    }

    @Test func srvUsesOnlyTheLowestPriorityAndKeepsWeightsUpTo256() {
        let set = DNSBackendSet.services([
            (srv(10, 5, 8082, "backup.test"), [ipv4("10.0.0.9")]),
            (srv(0, 30, 8081, "b.test"), [ipv4("10.0.0.2")]),
            (srv(0, 10, 8080, "a.test"), [ipv4("10.0.0.1"), IPAddress("2001:db8::1")!]),
        ])
        #expect(set == [
            backend("10.0.0.1", 8080, weight: 10), backend("10.0.0.2", 8081, weight: 30),
            backend("2001:db8::1", 8080, weight: 10),
        ])
    }

    @Test(arguments: [
        // SRV weights, then backend weights.
        ([0, 0, 0], [1, 1, 1]),
        ([0, 3], [1, 3]),
        ([1, 256], [1, 256]),
        ([1000, 3000], [85, 256]),
        ([1, 65535], [1, 256]),
        ([65535, 65535], [256, 256]),
    ] as [([UInt16], [Int])])
    func srvWeightsAreScaledIntoBackendWeights(weights: [UInt16], expected: [Int]) {
        let records = weights.enumerated().map { index, weight in
            (srv(0, weight, 80, "t\(index).test"), [IPAddress.v4(10, 0, 0, UInt8(index + 1))])
        }
        #expect(DNSBackendSet.services(records).map(\.weight) == expected.map { Optional($0) })
    }

    @Test func oneAddressFromTwoRecordsSumsTheirWeights() {
        let set = DNSBackendSet.services([
            (srv(0, 10, 80, "a.test"), [ipv4("10.0.0.1")]),
            (srv(0, 20, 80, "b.test"), [ipv4("10.0.0.1"), ipv4("10.0.0.1")]),
            (srv(0, 20, 81, "b.test"), [ipv4("10.0.0.1")]),
        ])
        #expect(set == [backend("10.0.0.1", 80, weight: 30), backend("10.0.0.1", 81, weight: 20)])
    }

    @Test func rootTargetAndUnresolvedTargetsGiveNoBackends() {
        #expect(DNSBackendSet.services([(srv(0, 0, 0, ""), [])]).isEmpty)
        #expect(DNSBackendSet.services([(srv(0, 5, 80, "gone.test"), [])]).isEmpty)
        // A "." at a lower priority number does not hide the real targets.
        #expect(DNSBackendSet.services([(srv(0, 0, 0, ""), []), (srv(1, 1, 80, "a.test"), [ipv4("10.0.0.1")])])
            == [backend("10.0.0.1", 80, weight: 1)])
    }

    @Test func srvBackendSpecCarriesTheSRVWeightAndAddressBackendsTheServiceWeight() {
        #expect(backend("10.0.0.1", 80, weight: 7).spec(defaultWeight: 3) == BackendSpec(
            endpoint: Endpoint(address: ipv4("10.0.0.1"), port: 80), weight: 7, weightGiven: true))
        #expect(backend("::1", 80).spec(defaultWeight: 3).weight == 3)
        #expect(backend("::1", 80).spec(defaultWeight: 3).endpoint.description == "[::1]:80")
    }
}

@Suite struct DNSBackendDifferenceTests {
    @Test func addedRemovedReweightedAndUnchangedAreSeparated() {
        let old = [backend("10.0.0.1", 80, weight: 1), backend("10.0.0.2", 80, weight: 1), backend("10.0.0.3", 80, weight: 2)]
        let new = [backend("10.0.0.4", 80, weight: 1), backend("10.0.0.3", 80, weight: 5), backend("10.0.0.1", 80, weight: 1)]
        let difference = DNSBackendDifference(from: old, to: new)
        #expect(difference.added == [backend("10.0.0.4", 80, weight: 1)])
        #expect(difference.removed == [backend("10.0.0.2", 80, weight: 1)])
        #expect(difference.reweighted == [backend("10.0.0.3", 80, weight: 5)])
        #expect(difference.unchanged == [backend("10.0.0.1", 80, weight: 1)])
        #expect(!difference.isEmpty && difference.summary == "+1 -1 ~1")
    }

    @Test func samePortOnAnotherAddressAndAnotherPortOnTheSameAddressAreDifferentBackends() {
        let difference = DNSBackendDifference(from: [backend("10.0.0.1", 80)], to: [backend("10.0.0.1", 81)])
        #expect(difference.added == [backend("10.0.0.1", 81)] && difference.removed == [backend("10.0.0.1", 80)])
    }

    @Test func theDifferenceDoesNotDependOnOrder() {
        var generator = SplitMix64(seed: 11)
        let old = (1...30).map { backend("10.0.\($0 % 4).\($0)", 80, weight: $0 % 3) }
        let new = (10...40).map { backend("10.0.\($0 % 4).\($0)", 80, weight: $0 % 5 == 0 ? 9 : $0 % 3) }
        let expected = DNSBackendDifference(from: old, to: new)
        #expect(expected.added.count == 10 && expected.removed.count == 9)
        for _ in 0..<10 {
            #expect(DNSBackendDifference(from: old.shuffled(using: &generator), to: new.shuffled(using: &generator)) == expected)
        }
    }

    @Test func equalSetsDifferInNothing() {
        let set = [backend("10.0.0.1", 80), backend("::1", 80)]
        let difference = DNSBackendDifference(from: set, to: set.reversed())
        #expect(difference.isEmpty && difference.unchanged == set)
        #expect(DNSBackendDifference(from: [], to: []).isEmpty)
    }
}

@Suite struct DNSRefreshScheduleTests {
    private let policy = DNSRefreshPolicy(
        minimumTTL: .seconds(5), maximumTTL: .seconds(60), initialBackoff: .seconds(1), maximumBackoff: .seconds(16))
    private let start = ContinuousClock.now

    @Test(arguments: [(0, 5), (1, 5), (5, 5), (30, 30), (60, 60), (61, 60), (86_400, 60), (UInt32.max, 60)] as [(UInt32, Int64)])
    func ttlIsClampedToTheBounds(ttl: UInt32, seconds: Int64) {
        #expect(policy.refreshDelay(ttl: ttl) == .seconds(seconds))
    }

    @Test func failuresBackOffExponentiallyUpToTheLimit() {
        #expect((1...8).map { policy.retryDelay(consecutiveFailures: $0) } ==
            [1, 2, 4, 8, 16, 16, 16, 16].map { Duration.seconds($0) })
        #expect(policy.retryDelay(consecutiveFailures: Int.max) == .seconds(16))
        #expect(policy.retryDelay(consecutiveFailures: 0) == .seconds(1))
    }

    @Test func anAnswerSchedulesTheNextQueryAtItsClampedTTL() {
        var state = DNSWatchState(policy: policy, now: start)
        #expect(state.nextQuery == start)
        let event = state.record(.resolved([backend("10.0.0.2", 80), backend("10.0.0.1", 80)], minimumTTL: 30), at: start)
        #expect(event == .changed(
            backends: [backend("10.0.0.1", 80), backend("10.0.0.2", 80)],
            difference: DNSBackendDifference(from: [], to: [backend("10.0.0.1", 80), backend("10.0.0.2", 80)])))
        #expect(state.nextQuery == start + .seconds(30))
        #expect(state.lastSuccess == start && state.resolutions == 1 && state.failures == 0)
    }

    @Test func theSameSetAgainIsUnchangedWhateverItsOrder() {
        var state = DNSWatchState(policy: policy, now: start)
        _ = state.record(.resolved([backend("10.0.0.1", 80), backend("10.0.0.2", 80)], minimumTTL: 0), at: start)
        let again = state.record(.resolved([backend("10.0.0.2", 80), backend("10.0.0.1", 80)], minimumTTL: 0), at: start + .seconds(5))
        #expect(again == .unchanged)
        #expect(state.nextQuery == start + .seconds(10))
    }

    @Test(arguments: [
        DNSResolution.failed(.timeout),
        .failed(.serverFailure(.serverFailure)),
        .failed(.malformed("bad pointer")),
        .failed(.empty("NXDOMAIN")),
        .resolved([], minimumTTL: 30),
    ])
    func aFailureKeepsTheLastSetAndBacksOffUntilAnAnswerResetsIt(failure: DNSResolution) {
        var state = DNSWatchState(policy: policy, now: start)
        let set = [backend("10.0.0.1", 80)]
        _ = state.record(.resolved(set, minimumTTL: 30), at: start)
        var now = start + .seconds(30)
        var delays: [Duration] = []
        for _ in 0..<6 {
            guard case let .failed(_, keeping, retryIn) = state.record(failure, at: now) else {
                Issue.record("not a failure")
                return
            }
            #expect(keeping == 1)
            #expect(state.nextQuery == now + retryIn)
            delays.append(retryIn)
            now = state.nextQuery
        }
        #expect(delays == [1, 2, 4, 8, 16, 16].map { Duration.seconds($0) })
        #expect(state.backends == set && state.failures == 6 && state.consecutiveFailures == 6)
        #expect(state.lastSuccess == start)

        #expect(state.record(.resolved(set, minimumTTL: 1), at: now) == .unchanged)
        #expect(state.consecutiveFailures == 0 && state.nextQuery == now + .seconds(5))
        guard case let .failed(_, _, retryIn) = state.record(failure, at: now) else { return }
        #expect(retryIn == .seconds(1), "back-off starts again after a success")
    }

    @Test func aFailureBeforeAnyAnswerKeepsNothingAndStillBacksOff() {
        var state = DNSWatchState(policy: policy, now: start)
        #expect(state.record(.failed(.timeout), at: start) == .failed(.timeout, keeping: 0, retryIn: .seconds(1)))
        #expect(state.backends == nil && state.lastFailure == .timeout)
    }

    @Test(arguments: [
        (DNSRefreshPolicy(minimumTTL: .milliseconds(50)), "dns-min-ttl 50ms must be at least 100ms"),
        (DNSRefreshPolicy(minimumTTL: .seconds(10), maximumTTL: .seconds(5)), "dns-max-ttl 5s must be at least dns-min-ttl 10s"),
        (DNSRefreshPolicy(initialBackoff: .zero), "back-off 0s must be at least 100ms"),
        (DNSRefreshPolicy(initialBackoff: .seconds(2), maximumBackoff: .seconds(1)), "limit 1s must be at least 2s"),
    ])
    func outOfBoundsPoliciesAreRefused(policy: DNSRefreshPolicy, fragment: String) {
        #expect(throws: ConfigError.self) { try policy.validate() }
        do { try policy.validate() } catch { #expect(error.message.contains(fragment), "\(error.message)") }
        #expect(throws: Never.self) { try DNSRefreshPolicy().validate() }
    }
}

@Suite struct ResolvConfTests {
    @Test func nameserversOptionsAndCommentsAreReadAsGlibcReadsThem() {
        let conf = ResolvConf(parsing: """
            # generated by systemd-resolved
            ; another comment
            search example.com svc.cluster.local
            nameserver 10.255.255.53
              nameserver\t2001:db8::53   # trailing words are ignored
            options ndots:5 timeout:2 attempts:3 rotate
            nameserver 127.0.0.53\r
            domain example.com
            """)
        #expect(conf.nameservers.map(\.description) == ["10.255.255.53:53", "[2001:db8::53]:53", "127.0.0.53:53"])
        #expect(conf.timeout == .seconds(2) && conf.attempts == 3)
        #expect(conf.ignored.isEmpty)
        #expect(conf.resolvers == conf.nameservers)
    }

    @Test func onlyTheFirstThreeServersAreUsedAndBadOnesAreListed() {
        let conf = ResolvConf(parsing: """
            nameserver 10.0.0.1
            nameserver fe80::1%eth0
            nameserver dns.example.com
            nameserver
            nameserver 10.0.0.2
            nameserver 10.0.0.3
            nameserver 10.0.0.4
            """)
        #expect(conf.nameservers.map(\.description) == ["10.0.0.1:53", "10.0.0.2:53", "10.0.0.3:53"])
        #expect(conf.ignored == [
            "nameserver fe80::1%eth0: scoped IPv6 addresses are not supported",
            "nameserver dns.example.com: not an IPv4 or IPv6 address",
            "nameserver line without an address",
            "nameserver 10.0.0.4: only the first 3 are used",
        ])
    }

    @Test func noServerMeansTheLocalMachine() {
        let conf = ResolvConf(parsing: "search example.com\n#nameserver 10.0.0.1\nnameservers 10.0.0.2\n")
        #expect(conf.nameservers.isEmpty)
        #expect(conf.resolvers.map(\.description) == ["127.0.0.1:53"])
        #expect(ResolvConf(parsing: "").resolvers.map(\.description) == ["127.0.0.1:53"])
    }

    @Test func optionValuesAreCappedAsGlibcCapsThem() {
        let conf = ResolvConf(parsing: "options timeout:99 attempts:9\noptions timeout:x attempts:\n")
        #expect(conf.timeout == .seconds(30) && conf.attempts == 5)
        #expect(ResolvConf(parsing: "options attempts:0").attempts == 1)
        #expect(ResolvConf(parsing: "options timeout:99999999999999999999").timeout == nil)
    }
}
