import Testing
@testable import SwitchyardCore

@Suite struct BusyPollingPolicyTests {
    @Test func startsAsleepAndOpensAWindowAfterAShortWait() {
        var policy = BusyPollingPolicy(maximum: 50_000, start: 10_000)
        #expect(policy.window == 0, "no traffic seen yet: no spin")
        policy.waited(nanoseconds: 30_000)
        #expect(policy.window == 10_000)
    }

    @Test func shortWaitsDoubleTheWindowUpToTheMaximum() {
        var policy = BusyPollingPolicy(maximum: 50_000, start: 10_000)
        var windows: [Int64] = []
        for _ in 0..<5 {
            policy.waited(nanoseconds: 40_000)
            windows.append(policy.window)
        }
        #expect(windows == [10_000, 20_000, 40_000, 50_000, 50_000])
    }

    @Test func longWaitsHalveTheWindowThenCloseIt() {
        var policy = BusyPollingPolicy(maximum: 80_000, start: 10_000)
        for _ in 0..<4 { policy.waited(nanoseconds: 1_000) }
        #expect(policy.window == 80_000)
        var windows: [Int64] = []
        for _ in 0..<5 {
            policy.waited(nanoseconds: 1_000_000_000)  // the idle worker's tick
            windows.append(policy.window)
        }
        #expect(windows == [40_000, 20_000, 10_000, 0, 0])
    }

    @Test func anIdleWorkerNeverSpins() {
        var policy = BusyPollingPolicy()
        for _ in 0..<100 {
            policy.waited(nanoseconds: 1_000_000_000)
            #expect(policy.window == 0)
        }
    }

    @Test func aWaitOfExactlyTheMaximumStillCountsAsTraffic() {
        var policy = BusyPollingPolicy(maximum: 50_000, start: 10_000)
        policy.waited(nanoseconds: 50_000)
        #expect(policy.window == 10_000)
        policy.waited(nanoseconds: 50_001)
        #expect(policy.window == 0)
    }

    @Test func boundsAreSane() {
        #expect(BusyPollingPolicy(maximum: -5, start: 10).maximum == 0)
        var off = BusyPollingPolicy(maximum: 0)
        off.waited(nanoseconds: 0)
        #expect(off.window == 0, "a zero maximum never spins")
        #expect(BusyPollingPolicy(maximum: 5_000, start: 10_000).start == 5_000, "start is within the maximum")
    }
}

@Suite struct BusyPollingSettingTests {
    private let service = """
    services:
      web:
        listen: 127.0.0.1:8080
        backends: [127.0.0.1:9000]
    """

    @Test func offUnlessTheFileSaysTrue() throws {
        #expect(GlobalSettings().busyPolling == false)
        #expect(try ConfigFile.parse(service, file: "t.yaml").global.busyPolling == false)
        #expect(try ConfigFile.parse("busy-polling: true\n" + service, file: "t.yaml").global.busyPolling == true)
        #expect(try ConfigFile.parse("busy-polling: false\n" + service, file: "t.yaml").global.busyPolling == false)
    }

    @Test func anythingButTrueOrFalseIsAnErrorAtTheKey() {
        do {
            _ = try ConfigFile.parse("busy-polling: yes please\n" + service, file: "t.yaml")
            Issue.record("busy-polling: yes please was accepted")
        } catch {
            #expect("\(error)".contains("busy-polling"), "\(error)")
        }
    }

    @Test func itIsARestartOnlySetting() {
        var other = GlobalSettings()
        other.busyPolling = true
        #expect(GlobalSettings().restartOnlyDifferences(to: other) == ["busy-polling false -> true"])
    }
}
