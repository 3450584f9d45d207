import Glibc
import Testing
@testable import SwitchyardCore
@testable import SwitchyardIO

// Timing: interval 100 ms, so "down after fall = 3" must happen within
// interval * fall + timeout + slack. Slack is generous (the machine is shared) but far below
// what a broken schedule would take.
private let interval = Duration.milliseconds(100)
private let slack = Duration.milliseconds(700)

private func registry(_ endpoints: [String]) -> BackendRegistry {
    BackendRegistry(backends: endpoints.map { try! BackendSpec(parsing: $0) }, algorithm: .roundRobin)
}

private func health(_ registry: BackendRegistry, _ id: Int) -> HealthVerdict? {
    registry.snapshot().backends.first { $0.id == id }?.health
}

@Suite(.serialized) struct HealthCheckerTests {
    @Test func backendThatFailsItsFirstCheckIsDownAtOnce() throws {
        let port = try refusedPort()
        let registry = registry(["127.0.0.1:\(port)"])
        let config = HealthCheckConfig(interval: interval, timeout: .milliseconds(300))
        let checker = try HealthChecker(registry: registry, config: config)
        try checker.start()
        defer { checker.stop() }
        // Its first check starts at once: down well before one interval has passed, not after fall of them.
        let took = timeUntil(interval + slack) { health(registry, 0)?.isUp == false }
        #expect(took != nil)
        #expect(health(registry, 0)?.lastCheck == "connection refused")
    }

    @Test func confirmedBackendGoesDownAfterFallRefusalsAndUpAfterRiseSuccesses() throws {
        let backend = try TestBackend(.answering(nil))
        let port = backend.port
        let registry = registry([backend.endpointText])
        let config = HealthCheckConfig(interval: interval, timeout: .milliseconds(300), rise: 2, fall: 3)
        let checker = try HealthChecker(registry: registry, config: config)
        try checker.start()
        defer { checker.stop() }

        let confirmed = timeUntil(.seconds(2)) { checker.lastCheckText(backendID: 0)?.hasPrefix("connected in") == true }
        #expect(confirmed != nil, "first check: \(checker.lastCheckText(backendID: 0) ?? "none")")
        #expect(health(registry, 0)?.isUp == true)

        backend.close()
        let down = timeUntil(interval * 3 + .milliseconds(300) + slack) { health(registry, 0)?.isUp == false }
        #expect(down != nil)
        // Not before the third refusal: two intervals at least.
        if let down { #expect(down >= interval * 2 - .milliseconds(20), "went down after \(down)") }
        #expect(health(registry, 0)?.lastCheck == "connection refused")
        print("measured: refused backend down after \(down.map(\.shortDescription) ?? "never") (fall 3, interval 100ms)")

        let revived = try TestBackend(.answering(nil), port: port)
        defer { revived.close() }
        let up = timeUntil(interval * 2 + slack) { health(registry, 0)?.isUp == true }
        #expect(up != nil)
        print("measured: revived backend up after \(up.map(\.shortDescription) ?? "never") (rise 2, interval 100ms)")
        if let up { #expect(up >= interval - .milliseconds(20), "came up after \(up): rise 2 needs two checks") }
    }

    @Test func hangingBackendDoesNotDelayAnother() throws {
        let silent = try TestBackend(.silent)
        let wrong = try TestBackend(.answering(Array("-ERR unknown command\r\n".utf8)))
        let right = try TestBackend(.answering(Array("+PONG\r\n".utf8)))
        defer { silent.close(); wrong.close(); right.close() }
        let registry = registry([silent.endpointText, wrong.endpointText, right.endpointText])
        let config = try HealthCheckConfig(
            interval: "100ms", timeout: "2s", rise: 2, fall: 3, send: "PING\\r\\n", expect: "+PONG")
        let checker = try HealthChecker(registry: registry, config: config)
        try checker.start()

        // The wrong answer is seen long before the silent backend's 2 s timeout.
        let wrongDown = timeUntil(.milliseconds(800)) { health(registry, 1)?.isUp == false }
        #expect(wrongDown != nil)
        print("measured: wrong-reply backend down after \(wrongDown.map(\.shortDescription) ?? "never") beside a silent one")
        #expect(health(registry, 1)?.lastCheck.hasPrefix("step 2 (expect contains '+PONG'): got '-ERR unknown command\\r\\n'") == true,
                "\(health(registry, 1)?.lastCheck ?? "")")
        #expect(health(registry, 0)?.isUp == true, "the silent backend has not timed out yet")
        let rightChecked = timeUntil(.milliseconds(800)) { checker.lastCheckText(backendID: 2)?.hasPrefix("expected reply in") == true }
        #expect(rightChecked != nil)

        let silentDown = timeUntil(.seconds(2) + slack) { health(registry, 0)?.isUp == false }
        #expect(silentDown != nil)
        #expect(health(registry, 0)?.lastCheck == "timeout after 2s: step 2 (expect contains '+PONG'); nothing read")
        #expect(health(registry, 2)?.isUp == true)

        let clock = ContinuousClock()
        let start = clock.now
        checker.stop()
        print("measured: stop() took \((clock.now - start).shortDescription)")
        #expect(clock.now - start < .milliseconds(300), "stop ends the thread promptly even with probes in flight")
    }

    /// Reads are bounded per step and per probe: a backend that floods is failed when the step's
    /// limit is reached, long before the timeout, and its bytes are not kept.
    @Test func floodingBackendFailsItsCheckAtTheReadLimitNotTheTimeout() throws {
        let flood = try TestBackend(.flooding)
        defer { flood.close() }
        let registry = registry([flood.endpointText])
        let config = try HealthCheckConfig(interval: "100ms", timeout: "5s", rise: 1, fall: 1, send: nil, expect: "+PONG")
        let checker = try HealthChecker(registry: registry, config: config)
        try checker.start()
        defer { checker.stop() }
        #expect(timeUntil(.seconds(3)) { health(registry, 0)?.isUp == false } != nil, "\(checker.lastCheckText(backendID: 0) ?? "no check")")
        let text = health(registry, 0)?.lastCheck ?? ""
        #expect(text.hasPrefix("step 1 (expect contains '+PONG'): no match in "), "\(text)")
    }

    @Test func failedClientConnectsMarkDownAfterFallAndSuccessesResetTheRun() throws {
        let backend = try TestBackend(.answering(nil))
        defer { backend.close() }
        let registry = registry([backend.endpointText])
        let config = HealthCheckConfig(interval: .seconds(10), timeout: .milliseconds(300), rise: 2, fall: 3)
        let checker = try HealthChecker(registry: registry, config: config)
        try checker.start()
        defer { checker.stop() }
        #expect(timeUntil(.seconds(2)) { checker.lastCheckText(backendID: 0) != nil } != nil, "first check confirms it")

        checker.recordConnectResult(backendID: 0, success: false, reason: "connection refused")
        checker.recordConnectResult(backendID: 0, success: false, reason: "connection refused")
        checker.recordConnectResult(backendID: 0, success: true, reason: "")
        checker.recordConnectResult(backendID: 0, success: false, reason: "connection refused")
        checker.recordConnectResult(backendID: 0, success: false, reason: "connection refused")
        #expect(health(registry, 0)?.isUp == true, "the success ended the first run")
        checker.recordConnectResult(backendID: 0, success: false, reason: "connection refused")
        #expect(health(registry, 0) == HealthVerdict(isUp: false, lastCheck: "client connect failed: connection refused"))
        checker.recordConnectResult(backendID: 99, success: false, reason: "unknown backends are ignored")
    }

    @Test func backendsAddedAtRuntimeAreCheckedAndMaintenanceIsSkipped() throws {
        let registry = registry([])
        let config = HealthCheckConfig(interval: interval, timeout: .milliseconds(300))
        let checker = try HealthChecker(registry: registry, config: config)
        try checker.start()
        defer { checker.stop() }
        let port = try refusedPort()
        let controller = AdminController(registry: registry, processStats: { fatalError("unused") })
        _ = controller.handle(line: "add 127.0.0.1:\(port)", now: .now)
        #expect(timeUntil(interval * 2 + slack) { health(registry, 0)?.isUp == false } != nil)

        let other = try refusedPort()
        // Added already in maintenance, in one publish, so no check can slip in between.
        let spec = try BackendSpec(parsing: "127.0.0.1:\(other)")
        try registry.apply([.add(spec), .setAdminState(spec.endpoint, .maint)])
        usleep(400_000)
        #expect(health(registry, 1)?.isUp == true, "a backend in maintenance is not checked")
        #expect(checker.lastCheckText(backendID: 1) == nil)
    }

    @Test func backendLeavingMaintenanceIsCheckedAtOnceAndDownOnItsFirstFailure() throws {
        let backend = try TestBackend(.answering(nil))
        let registry = registry([backend.endpointText])
        let checker = try HealthChecker(registry: registry, config: HealthCheckConfig(interval: .seconds(5), timeout: .milliseconds(300)))
        try checker.start()
        defer { checker.stop() }
        #expect(timeUntil(.seconds(2)) { checker.lastCheckText(backendID: 0)?.hasPrefix("connected in") == true } != nil)
        let controller = AdminController(registry: registry, processStats: { fatalError("unused") })
        _ = controller.handle(line: "maint \(backend.endpointText)", now: .now)
        backend.close()  // the redeploy fails
        usleep(50_000)
        _ = controller.handle(line: "ready \(backend.endpointText)", now: .now)
        // Without the reset it would take fall = 3 checks 5 s apart.
        #expect(timeUntil(.seconds(1)) { health(registry, 0)?.isUp == false } != nil)
        #expect(health(registry, 0)?.lastCheck == "connection refused")
    }

    @Test func ipv6LiteralBackendsAreChecked() throws {
        let backend: TestBackend
        do {
            backend = try TestBackend(.answering(nil), host: "::1")
        } catch {
            return  // No IPv6 loopback in this sandbox; nothing to check.
        }
        defer { backend.close() }
        let registry = registry([backend.endpointText])
        let checker = try HealthChecker(registry: registry, config: HealthCheckConfig(interval: interval))
        try checker.start()
        defer { checker.stop() }
        #expect(timeUntil(.seconds(2)) { checker.lastCheckText(backendID: 0)?.hasPrefix("connected in") == true } != nil,
                "\(checker.lastCheckText(backendID: 0) ?? "no check")")
    }

    @Test func hostnameBackendsAreResolvedOffTheLoopAndChecked() throws {
        // localhost may resolve to 127.0.0.1 or ::1 first: listen on both when IPv6 is there.
        let v4 = try TestBackend(.answering(nil))
        let v6 = try? TestBackend(.answering(nil), host: "::1", port: v4.port)
        defer { v4.close(); v6?.close() }
        let registry = registry(["localhost:\(v4.port)", "no-such-host.invalid:80"])
        let checker = try HealthChecker(registry: registry, config: HealthCheckConfig(interval: interval))
        try checker.start()
        defer { checker.stop() }
        #expect(timeUntil(.seconds(3)) { checker.lastCheckText(backendID: 0)?.hasPrefix("connected in") == true } != nil,
                "\(checker.lastCheckText(backendID: 0) ?? "no check")")
        #expect(timeUntil(.seconds(5)) { health(registry, 1)?.isUp == false } != nil)
        #expect(health(registry, 1)?.lastCheck.hasPrefix("cannot resolve no-such-host.invalid: ") == true)
    }

    @Test func hostnamesResolveOnceAndBadOnesSayWhy() throws {
        let address = try SocketAddress.resolve(Endpoint(parsing: "localhost:80"))
        #expect(address.family == AF_INET || address.family == AF_INET6)
        #expect(throws: (any Error).self) { try SocketAddress.resolve(Endpoint(parsing: "no-such-host.invalid:80")) }
        do {
            _ = try SocketAddress.resolve(Endpoint(parsing: "no-such-host.invalid:80"))
        } catch let error as ResolveError {
            #expect(error.message.hasPrefix("cannot resolve no-such-host.invalid: "))
        }
    }
}
