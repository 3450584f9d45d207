import Foundation
import Glibc
import Testing
@testable import SwitchyardCore
@testable import SwitchyardIO

private func name(_ text: String) -> DNSName { try! DNSName(parsing: text) }

/// A discovery asking `servers`, one attempt of `timeout` per server unless told otherwise.
private func discovery(_ servers: [Endpoint], timeout: Duration = .milliseconds(300), attempts: Int = 1) throws -> DNSDiscovery {
    let policy = DNSQueryPolicy(servers: servers, timeout: timeout, attempts: attempts)
    try policy.validate()
    return try DNSDiscovery(queryPolicy: policy)
}

/// TTL bounds that let dnsmasq's TTL through as it is (the tests set it with --local-ttl).
private let honourTTL = DNSRefreshPolicy(minimumTTL: .milliseconds(100), maximumTTL: .seconds(30),
                                         initialBackoff: .milliseconds(200), maximumBackoff: .milliseconds(800))

/// Against a real dnsmasq on loopback (see shared/TEST-PEERS.md), and scripted UDP servers for
/// what dnsmasq cannot be made to do (forged datagrams, SERVFAIL, silence, SRV without glue).
@Suite(.serialized, .timeLimit(.minutes(1))) struct DNSDiscoveryTests {
    @Test func followsAddressRecordsBeingAddedRemovedAndChangedAndIsQuietWhileTheyStay() throws {
        let server = try Dnsmasq(hosts: ["127.0.0.2 web.test", "127.0.0.3 web.test", "::1 web.test"], ttl: 1)
        let dns = try discovery([server.endpoint])
        let log = ChangeLog()
        let id = dns.watch(.addresses(name: name("web.test"), port: 8080), policy: honourTTL, onChange: log.handler)
        try dns.start()
        defer { dns.stop() }

        let first = log.wait(for: ["127.0.0.2:8080", "127.0.0.3:8080", "[::1]:8080"], within: .seconds(3))
        #expect(first?.difference.added.count == 3, "first set: \(log.lastSet)")

        // Unchanged answers: the names are asked again every second, but nobody is called.
        let queriesBefore = dns.status(of: id)?.queries ?? 0
        usleep(2_500_000)
        #expect(log.count == 1, "calls while nothing changed: \(log.all.map(\.backends))")
        #expect((dns.status(of: id)?.queries ?? 0) >= queriesBefore + 4, "an A and an AAAA query per second")

        try server.setHosts(["127.0.0.2 web.test", "127.0.0.3 web.test", "127.0.0.4 web.test", "::1 web.test"])
        let added = log.wait(for: ["127.0.0.2:8080", "127.0.0.3:8080", "127.0.0.4:8080", "[::1]:8080"], within: .seconds(3))
        #expect(added?.difference.added.map(\.description) == ["127.0.0.4:8080"], "after adding: \(log.lastSet)")
        #expect(added?.difference.unchanged.count == 3)

        try server.setHosts(["127.0.0.3 web.test", "127.0.0.4 web.test", "::1 web.test"])
        let removed = log.wait(for: ["127.0.0.3:8080", "127.0.0.4:8080", "[::1]:8080"], within: .seconds(3))
        #expect(removed?.difference.removed.map(\.description) == ["127.0.0.2:8080"], "after removing: \(log.lastSet)")

        try server.setHosts(["127.0.0.5 web.test", "127.0.0.4 web.test", "::1 web.test"])
        let changed = log.wait(for: ["127.0.0.4:8080", "127.0.0.5:8080", "[::1]:8080"], within: .seconds(3))
        #expect(changed?.difference.added.map(\.description) == ["127.0.0.5:8080"], "after changing: \(log.lastSet)")
        #expect(changed?.difference.removed.map(\.description) == ["127.0.0.3:8080"])
        #expect(log.count == 4, "one call per change: \(log.all.map(\.difference.summary))")

        let status = try #require(dns.status(of: id))
        #expect(status.failures == 0 && status.lastSuccess != nil)
        #expect(status.lastSuccessUnixTime.map { abs($0 - Date().timeIntervalSince1970) < 5 } == true)
    }

    @Test func ttlIsHonouredWithinTheMinimumAndMaximumBounds() throws {
        // Every answer says TTL 2 s. Three watches of the same name: one lets it through, one
        // raises it to 3 s (dns-min-ttl), one cuts it to 500 ms (dns-max-ttl).
        let server = try Dnsmasq(hosts: ["127.0.0.2 ttl.test"], ttl: 2)
        let dns = try discovery([server.endpoint])
        let target = DNSDiscoveryTarget.addresses(name: name("ttl.test"), port: 80)
        let asIs = dns.watch(target, policy: honourTTL, onChange: { _ in })
        let raised = dns.watch(target, policy: DNSRefreshPolicy(minimumTTL: .seconds(3), maximumTTL: .seconds(30)), onChange: { _ in })
        let cut = dns.watch(target, policy: DNSRefreshPolicy(minimumTTL: .milliseconds(100), maximumTTL: .milliseconds(500)), onChange: { _ in })
        try dns.start()
        defer { dns.stop() }

        // Note every new success time of each watch for 6.6 s.
        var successes: [DNSDiscovery.WatchID: [ContinuousClock.Instant]] = [:]
        let clock = ContinuousClock()
        let end = clock.now + .milliseconds(6_600)
        while clock.now < end {
            for id in [asIs, raised, cut] {
                if let last = dns.status(of: id)?.lastSuccess, successes[id]?.last != last { successes[id, default: []].append(last) }
            }
            usleep(10_000)
        }
        func gaps(_ id: DNSDiscovery.WatchID) -> [Duration] {
            let times = successes[id] ?? []
            return zip(times.dropFirst(), times).map { $0 - $1 }
        }
        // What a slow run (a sanitizer, a loaded machine) cannot break: no watch re-queries before
        // its delay (each gap is the delay plus a query's round trip, so never shorter), every
        // watch re-queries at least once in 6.6 s, and the shorter the delay the more often
        // (cut 500 ms > as is 2 s > raised 3 s). The longest gap is bounded loosely, by the
        // next-longer delay's, which a run slowed by a factor of several still meets.
        let counts = [asIs, raised, cut].map { successes[$0]?.count ?? 0 }
        let summary = "resolutions as is/raised/cut: \(counts); gaps \(gaps(asIs)) / \(gaps(raised)) / \(gaps(cut))"
        for (id, expected, ceiling) in [(asIs, Duration.seconds(2), Duration.seconds(6)), (raised, .seconds(3), .seconds(6)),
                                        (cut, .milliseconds(500), .seconds(2))] {
            #expect(!gaps(id).isEmpty, "\(id) never re-queried; \(summary)")
            for gap in gaps(id) {
                #expect(gap >= expected && gap < ceiling, "\(id): gap \(gap), expected at least \(expected); \(summary)")
            }
        }
        #expect(counts[2] > counts[0] && counts[0] >= counts[1], "\(summary)")
    }

    @Test func aDeadServerKeepsTheLastSetCountsFailuresAndBacksOffThenRecovers() throws {
        let server = try Dnsmasq(hosts: ["127.0.0.2 web.test", "127.0.0.3 web.test"], ttl: 1)
        let dns = try discovery([server.endpoint])
        let log = ChangeLog()
        let id = dns.watch(.addresses(name: name("web.test"), port: 80), policy: honourTTL, onChange: log.handler)
        try dns.start()
        defer { dns.stop() }
        try #require(log.wait(for: ["127.0.0.2:80", "127.0.0.3:80"], within: .seconds(3)) != nil)

        server.stop()
        // Note when each failure is counted: back-off 200 ms doubling to at most 800 ms.
        var failureTimes: [ContinuousClock.Instant] = []
        let clock = ContinuousClock()
        let end = clock.now + .seconds(5)
        var lastCount = 0
        while clock.now < end {
            let count = dns.status(of: id)?.failures ?? 0
            if count != lastCount {
                failureTimes.append(clock.now)
                lastCount = count
            }
            usleep(5_000)
        }
        let status = try #require(dns.status(of: id))
        #expect(status.backends?.map(\.description) == ["127.0.0.2:80", "127.0.0.3:80"], "the last set is kept")
        #expect(log.count == 1, "no call while the server is dead")
        #expect(status.failures >= 5 && status.failures == status.consecutiveFailures, "\(status.failures) failures")
        if case let .system(text) = status.lastFailure {
            #expect(text.contains("connection refused"), "\(text)")
        } else {
            Issue.record("last failure: \(String(describing: status.lastFailure))")
        }
        let gaps = zip(failureTimes.dropFirst(), failureTimes).map { $0 - $1 }
        // 200, 400, 800, 800 ...: never sooner than the back-off, never far beyond its limit.
        let expected: [Duration] = [.milliseconds(200), .milliseconds(400)] + Array(repeating: .milliseconds(800), count: 10)
        #expect(gaps.count >= 4, "gaps \(gaps)")
        for (gap, delay) in zip(gaps, expected) {
            #expect(gap >= delay - .milliseconds(20) && gap < delay + .milliseconds(300), "gaps \(gaps)")
        }
        #expect(status.failures <= 9, "a dead server was asked \(status.failures) times in 5 s: no back-off")

        try server.setHosts(["127.0.0.4 web.test"])
        try server.restart()
        let recovered = log.wait(for: ["127.0.0.4:80"], within: .seconds(3))
        #expect(recovered != nil, "after the server came back: \(log.lastSet)")
        #expect(dns.status(of: id)?.consecutiveFailures == 0)
    }

    @Test func srvRecordsGiveTargetsPortsAndWeightsOfTheLowestPriority() throws {
        let server = try Dnsmasq(
            hosts: ["127.0.0.2 a.test", "127.0.0.3 b.test", "::1 b.test", "127.0.0.9 backup.test"],
            services: ["_web._tcp.test,a.test,8080,0,10", "_web._tcp.test,b.test,8081,0,30",
                       "_web._tcp.test,backup.test,8082,1,5", "_web._tcp.test,gone.test,8083,0,50"],
            ttl: 1)
        let dns = try discovery([server.endpoint])
        let log = ChangeLog()
        dns.watch(.service(name: name("_web._tcp.test")), policy: honourTTL, onChange: log.handler)
        try dns.start()
        defer { dns.stop() }

        // gone.test has no address (NXDOMAIN), backup.test is of a lower priority.
        let first = log.wait(for: ["127.0.0.2:8080,weight=10", "127.0.0.3:8081,weight=30", "[::1]:8081,weight=30"], within: .seconds(3))
        #expect(first != nil, "first set: \(log.lastSet)")

        try server.restart(services: ["_web._tcp.test,a.test,8080,0,1000", "_web._tcp.test,b.test,8081,0,3000"])
        let reweighted = log.wait(for: ["127.0.0.2:8080,weight=85", "127.0.0.3:8081,weight=256", "[::1]:8081,weight=256"], within: .seconds(4))
        #expect(reweighted?.difference.reweighted.count == 3, "after the weights changed: \(log.lastSet)")

        try server.restart(services: ["_web._tcp.test,backup.test,8082,1,5"])
        let backup = log.wait(for: ["127.0.0.9:8082,weight=5"], within: .seconds(4))
        #expect(backup?.difference.removed.count == 3, "once only the backup is left: \(log.lastSet)")
    }

    @Test func aTruncatedAnswerIsAskedAgainOverTCP() throws {
        let server = try Dnsmasq(hosts: (1...40).map { "10.1.0.\($0) big.test" }, ttl: 60)
        let dns = try discovery([server.endpoint])
        let log = ChangeLog()
        let id = dns.watch(.addresses(name: name("big.test"), port: 80), policy: honourTTL, onChange: log.handler)
        try dns.start()
        defer { dns.stop() }
        #expect(timeUntil(.seconds(3)) { log.count == 1 } != nil)
        #expect(Set(log.lastSet) == Set((1...40).map { "10.1.0.\($0):80" }))
        // A over UDP (truncated), A over TCP, AAAA over UDP.
        #expect(dns.status(of: id)?.queries == 3)
    }

    @Test func aForgedOrLateDatagramIsIgnoredAndTheRealAnswerTaken() throws {
        let fake = try FakeDNSServer { query, _ in
            // First a datagram with another id, then one with another question, then the answer.
            var other = query
            other.questions[0].name = name("evil.test")
            let address: [UInt8] = query.questions[0].type == .a ? [127, 0, 0, 7] : []
            return [
                FakeAnswer.response(to: query, id: query.id &+ 1, answers: [(nil, .a, 60, [6, 6, 6, 6])]),
                FakeAnswer.response(to: other, id: query.id, answers: [(name("evil.test"), .a, 60, [6, 6, 6, 6])]),
                FakeAnswer.response(to: query, answers: address.isEmpty ? [] : [(nil, .a, 60, address)]),
            ]
        }
        let dns = try discovery([fake.endpoint])
        let log = ChangeLog()
        dns.watch(.addresses(name: name("web.test"), port: 80), policy: honourTTL, onChange: log.handler)
        try dns.start()
        defer { dns.stop() }
        #expect(log.wait(for: ["127.0.0.7:80"], within: .seconds(3)) != nil, "\(log.lastSet)")
    }

    @Test func servfailFromTheFirstServerMovesToTheSecondAndSilenceTimesOut() throws {
        let failing = try FakeDNSServer { query, _ in [FakeAnswer.response(to: query, rcode: 2)] }
        let answering = try FakeDNSServer { query, _ in
            query.questions[0].type == .a ? [FakeAnswer.response(to: query, answers: [(nil, .a, 60, [127, 0, 0, 8])])]
                : [FakeAnswer.response(to: query)]
        }
        let dns = try discovery([failing.endpoint, answering.endpoint])
        let log = ChangeLog()
        dns.watch(.addresses(name: name("web.test"), port: 80), policy: honourTTL, onChange: log.handler)
        try dns.start()
        defer { dns.stop() }
        #expect(log.wait(for: ["127.0.0.8:80"], within: .seconds(3)) != nil, "\(log.lastSet)")
        #expect(failing.queries("web.test", .a) == 1 && answering.queries("web.test", .a) == 1)

        // A server that never answers: each resolution is a timeout after one 300 ms attempt.
        let silent = try FakeDNSServer { _, _ in [] }
        let quiet = try discovery([silent.endpoint])
        let id = quiet.watch(.addresses(name: name("web.test"), port: 80), policy: honourTTL, onChange: { _ in })
        try quiet.start()
        defer { quiet.stop() }
        let failed = timeUntil(.seconds(2)) { (quiet.status(of: id)?.failures ?? 0) >= 1 }
        #expect(failed.map { $0 >= .milliseconds(290) } == true, "first failure after \(String(describing: failed))")
        #expect(quiet.status(of: id)?.lastFailure == .timeout)
        #expect(quiet.status(of: id)?.backends == nil)
    }

    @Test func aRefusedAAAAQueryKeepsTheARecordsTheSameServerGaveAndTheReverse() throws {
        // One server answers A and REFUSES AAAA; another answers AAAA and REFUSES A.
        let refusesAAAA = try FakeDNSServer { query, _ in
            query.questions[0].type == .a ? [FakeAnswer.response(to: query, answers: [(nil, .a, 60, [127, 0, 0, 9])])]
                : [FakeAnswer.response(to: query, rcode: 5)]
        }
        let refusesA = try FakeDNSServer { query, _ in
            query.questions[0].type == .aaaa
                ? [FakeAnswer.response(to: query, answers: [(nil, .aaaa, 60, [UInt8](repeating: 0, count: 15) + [1])])]
                : [FakeAnswer.response(to: query, rcode: 5)]
        }
        for (server, expected) in [(refusesAAAA, ["127.0.0.9:80"]), (refusesA, ["[::1]:80"])] {
            let dns = try discovery([server.endpoint])
            let log = ChangeLog()
            let id = dns.watch(.addresses(name: name("web.test"), port: 80), policy: honourTTL, onChange: log.handler)
            try dns.start()
            defer { dns.stop() }
            #expect(log.wait(for: expected, within: .seconds(3)) != nil, "set \(log.lastSet), status \(String(describing: dns.status(of: id)))")
            #expect(dns.status(of: id)?.backends?.map(\.description) == expected)
            #expect(dns.status(of: id)?.failures == 0)
        }
    }

    @Test func srvTargetsWithoutGlueAreAskedForTheirAddresses() throws {
        let fake = try FakeDNSServer { query, _ in
            let question = query.questions[0]
            switch (question.name.description, question.type) {
            case ("_db._tcp.test", .srv):
                return [FakeAnswer.response(to: query, answers: [
                    (nil, .srv, 30, FakeAnswer.srvData(priority: 0, weight: 2, port: 5432, target: "db1.test")),
                    (nil, .srv, 30, FakeAnswer.srvData(priority: 0, weight: 1, port: 5433, target: "db2.test")),
                ])]
            case ("db1.test", .a): return [FakeAnswer.response(to: query, answers: [(nil, .a, 30, [127, 0, 1, 1])])]
            case ("db2.test", .a): return [FakeAnswer.response(to: query, rcode: 3)]
            case ("db2.test", .aaaa):
                return [FakeAnswer.response(to: query, answers: [(nil, .aaaa, 30, Array(repeating: 0, count: 15) + [1])])]
            default: return [FakeAnswer.response(to: query)]
            }
        }
        let dns = try discovery([fake.endpoint])
        let log = ChangeLog()
        dns.watch(.service(name: name("_db._tcp.test")), policy: honourTTL, onChange: log.handler)
        try dns.start()
        defer { dns.stop() }
        #expect(log.wait(for: ["127.0.1.1:5432,weight=2", "[::1]:5433,weight=1"], within: .seconds(3)) != nil, "\(log.lastSet)")
        #expect(fake.queries("db1.test", .a) >= 1 && fake.queries("db2.test", .aaaa) >= 1)
    }

    @Test func aMalformedAnswerIsAFailureThatKeepsTheSet() throws {
        let bad = try FakeDNSServer { query, _ in
            // The answer's A record has 3 bytes of data.
            [FakeAnswer.response(to: query, answers: [(nil, .a, 60, [1, 2, 3])])]
        }
        let dns = try discovery([bad.endpoint])
        let id = dns.watch(.addresses(name: name("web.test"), port: 80), policy: honourTTL, onChange: { _ in })
        try dns.start()
        defer { dns.stop() }
        #expect(timeUntil(.seconds(2)) { (dns.status(of: id)?.failures ?? 0) >= 1 } != nil)
        guard case let .malformed(text) = dns.status(of: id)?.lastFailure else {
            Issue.record("\(String(describing: dns.status(of: id)?.lastFailure))")
            return
        }
        #expect(text.contains("A record at offset 26 has 3 bytes of data"), "\(text)")
    }

    @Test func unwatchStopsTheCallsAndStopEndsTheThread() throws {
        let server = try Dnsmasq(hosts: ["127.0.0.2 web.test"], ttl: 1)
        let dns = try discovery([server.endpoint])
        let log = ChangeLog()
        let id = dns.watch(.addresses(name: name("web.test"), port: 80), policy: honourTTL, onChange: log.handler)
        try dns.start()
        #expect(log.wait(for: ["127.0.0.2:80"], within: .seconds(3)) != nil)
        dns.unwatch(id)
        #expect(dns.status(of: id) == nil && dns.statuses().isEmpty)
        try server.setHosts(["127.0.0.3 web.test"])
        usleep(1_500_000)
        #expect(log.count == 1)
        dns.stop()
        dns.stop()
    }
}

@Suite struct SystemResolversTests {
    @Test func resolvConfIsReadFromItsFileAndAMissingFileMeansTheLocalMachine() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("swy-resolv-\(getpid()).conf").path
        defer { unlink(path) }
        try "# test\nnameserver 127.0.0.53\noptions timeout:3\n".write(toFile: path, atomically: true, encoding: .utf8)
        let conf = try ResolvConf.load(path: path)
        #expect(conf.resolvers.map(\.description) == ["127.0.0.53:53"] && conf.timeout == .seconds(3))
        unlink(path)
        #expect(try ResolvConf.load(path: path).resolvers.map(\.description) == ["127.0.0.1:53"])
        // A directory opens but cannot be read.
        #expect(throws: ConfigError("cannot read /: is a directory")) { try ResolvConf.load(path: "/") }
    }

    @Test func aDiscoveryWithoutServersFailsEachResolutionWithoutTrapping() throws {
        let dns = try DNSDiscovery(queryPolicy: DNSQueryPolicy(servers: []))
        let id = dns.watch(.addresses(name: try DNSName(parsing: "web.test"), port: 80), policy: DNSRefreshPolicy(), onChange: { _ in })
        try dns.start()
        defer { dns.stop() }
        #expect(timeUntil(.seconds(2)) { dns.status(of: id)?.failures == 1 } != nil)
        #expect(dns.status(of: id)?.lastFailure == .system("web.test A: no DNS server to ask"))
        #expect(throws: ConfigError.self) { try DNSQueryPolicy(servers: []).validate() }
    }
}
