import Testing
@testable import SwitchyardCore

// Issue 22: agent checks. The keys of a backend, and how the agent's verdict combines with the
// health check's and the operator's.

@Suite struct AgentCheckSettingsTests {
    @Test func theMappingFormTakesTheAgentKeys() throws {
        let configuration = try ConfigFile.parse("""
            services:
              web:
                listen: ["0.0.0.0:80"]
                backends:
                  - {address: 10.0.0.1:80, agent-port: 9999, agent-interval: 500ms, agent-send: "status web\\n"}
                  - {address: 10.0.0.2:80, agent-port: 9999, agent-address: 10.0.1.2}
                  - 10.0.0.3:80
            """, file: "agents.yaml")
        let backends = try #require(configuration.service(named: "web")).backends
        #expect(backends[0].agent == AgentCheckSettings(port: 9999, interval: .milliseconds(500), send: Array("status web\n".utf8)))
        #expect(backends[0].agent.endpoint(of: backends[0].endpoint)?.description == "10.0.0.1:9999")
        #expect(backends[1].agent.endpoint(of: backends[1].endpoint)?.description == "10.0.1.2:9999")
        #expect(backends[1].agent.effectiveInterval == .seconds(2), "HAProxy's agent-inter default")
        #expect(!backends[2].agent.isEnabled)
        #expect(backends[2].agent.endpoint(of: backends[2].endpoint) == nil)
    }

    @Test func theCommandLineFormTakesTheAgentOptionsAndWritesThemBack() throws {
        let spec = try BackendSpec(parsing: "10.0.0.1:80,weight=4,agent-port=9999,agent-address=[::1],agent-interval=200ms,agent-send=hi\\x2c you\\r\\n")
        #expect(spec.weight == 4)
        #expect(spec.agent.port == 9999)
        #expect(spec.agent.address == IPAddress("::1"))
        #expect(spec.agent.send == Array("hi, you\r\n".utf8))
        #expect(spec.agent.endpoint(of: spec.endpoint)?.description == "[::1]:9999")
        #expect(spec.description == "10.0.0.1:80,weight=4,agent-port=9999,agent-address=[::1],agent-interval=200ms,agent-send=hi\\x2c\\x20you\\r\\n")
        #expect(try BackendSpec(parsing: spec.description) == spec)
    }

    @Test func aCheckLastsItsIntervalBetweenOneAndTenSeconds() {
        #expect(AgentCheckSettings(port: 1, interval: .milliseconds(200)).timeout == .seconds(1))
        #expect(AgentCheckSettings(port: 1, interval: .seconds(3)).timeout == .seconds(3))
        #expect(AgentCheckSettings(port: 1, interval: .seconds(60)).timeout == .seconds(10))
    }

    @Test(arguments: [
        ("10.0.0.1:80,agent-port=0", "agent-port '0' must be a number from 1 to 65535"),
        ("10.0.0.1:80,agent-port=x", "agent-port 'x' must be a number"),
        ("10.0.0.1:80,agent-port=1,agent-address=agent.local", "agent-address 'agent.local' is not an IP address"),
        ("10.0.0.1:80,agent-port=1,agent-interval=1ms", "agent-interval '1ms' must be from 10ms to 1h"),
        ("10.0.0.1:80,agent-port=1,agent-send=\\q", "unknown escape"),
        ("10.0.0.1:80,agent-send=hello", "agent-address, agent-interval and agent-send need agent-port"),
        ("10.0.0.1:80,agent-inter=2s", "unknown option 'agent-inter=2s'"),
    ])
    func badAgentOptionsAreRefusedByName(_ text: String, _ message: String) {
        do {
            let spec = try BackendSpec(parsing: text)
            Issue.record("accepted: \(spec)")
        } catch {
            #expect(error.message.contains(message), "\(error.message)")
        }
    }

    @Test func theReadmeAgentExampleIsValid() throws {
        let configuration = try readmeExample(after: "### Agent checks (agent-port)")
        let backends = try #require(configuration.service(named: "web")).backends
        #expect(backends.map(\.agent) == [
            AgentCheckSettings(port: 9777, interval: .seconds(1), send: Array("web\n".utf8)),
            AgentCheckSettings(port: 9777, send: Array("web\n".utf8)),
        ])
    }

    @Test func theFileRefusesAgentOptionsWithoutAPort() {
        expectConfigFileError("""
            services:
              web:
                listen: ["0.0.0.0:80"]
                backends:
                  - {address: 10.0.0.1:80, agent-interval: 1s}
            """, line: 5, column: 9, message: "need agent-port")
    }
}

@Suite struct AgentVerdictTests {
    private func backend(weight: Int = 4, checkUp: Bool = true, operator admin: AdminState = .ready,
                         agent: AgentVerdict? = nil) -> BackendState {
        var state = BackendState(id: 0, spec: BackendSpec(endpoint: Endpoint(host: "10.0.0.1", port: 80), weight: weight),
                                 health: HealthVerdict(isUp: checkUp, lastCheck: ""), admin: admin)
        state.agent = agent
        return state
    }

    private func verdict(after replies: String...) throws -> AgentVerdict {
        var verdict = AgentVerdict()
        for reply in replies { verdict.apply(try AgentReply.parse(Array(reply.utf8))) }
        return verdict
    }

    @Test func eachWordStaysInForceUntilTheAgentSaysAnotherOfItsKind() throws {
        #expect(try verdict(after: "drain", "50%") == AgentVerdict(adminState: .drain, weightPercent: 50))
        #expect(try verdict(after: "drain 50%", "ready") == AgentVerdict(adminState: .ready, weightPercent: 50))
        #expect(try verdict(after: "down", "maint", "up") == AgentVerdict(health: .up, adminState: .maint))
        #expect(try verdict(after: "up # a", "75%") == AgentVerdict(health: .up, weightPercent: 75), "the text is the latest reply's")
        var failed = try verdict(after: "drain")
        failed.error = "connect: connection refused"
        #expect(failed.adminState == .drain, "a failed check changes nothing but the error")
        failed.apply(try AgentReply.parse(Array("ready".utf8)))
        #expect(failed == AgentVerdict(adminState: .ready))
    }

    @Test func anAgentCanDrainAndMaintainABackendAndBringItBackWithReady() throws {
        #expect(backend(agent: try verdict(after: "drain")).selectable == false)
        #expect(backend(agent: try verdict(after: "drain")).effectiveAdmin == .drain)
        #expect(backend(agent: try verdict(after: "maint")).effectiveAdmin == .maint)
        #expect(backend(agent: try verdict(after: "maint", "ready")).selectable)
        #expect(backend(agent: nil).selectable, "no agent, or no answer yet: the other sources decide")
        #expect(backend(agent: AgentVerdict(error: "timeout")).selectable, "an agent that never answered changes nothing")
    }

    @Test func theMostRestrictiveOfTheOperatorAndTheAgentIsInForce() throws {
        #expect(backend(operator: .maint, agent: try verdict(after: "ready")).effectiveAdmin == .maint,
                "the agent's ready never ends the operator's maint")
        #expect(backend(operator: .ready, agent: try verdict(after: "drain")).effectiveAdmin == .drain,
                "the operator's ready never ends the agent's drain")
        #expect(backend(operator: .drain, agent: try verdict(after: "maint")).effectiveAdmin == .maint)
        #expect(backend(operator: .maint, agent: try verdict(after: "drain")).effectiveAdmin == .maint)
        var removing = backend(agent: try verdict(after: "ready"))
        removing.removing = true
        #expect(removing.effectiveAdmin == .drain && !removing.selectable, "a backend a reload removed drains whatever its agent says")
        for admin in AdminState.allCases {
            for agent in AdminState.allCases {
                let state = backend(operator: admin, agent: AgentVerdict(adminState: agent))
                #expect(state.selectable == (admin == .ready && agent == .ready), "\(admin) and agent \(agent)")
            }
        }
    }

    @Test func anAgentsUpNeverBringsUpABackendWhoseCheckFails() throws {
        #expect(backend(checkUp: false, agent: try verdict(after: "up")).selectable == false)
        #expect(backend(checkUp: false, agent: try verdict(after: "up")).isUp == false)
        #expect(backend(checkUp: true, agent: try verdict(after: "down")).selectable == false)
        #expect(backend(checkUp: true, agent: try verdict(after: "down", "up")).selectable, "up clears the agent's own down")
        #expect(backend(checkUp: true, agent: try verdict(after: "down", "ready 100%")).selectable == false,
                "only up clears down: a down agent stays down until it says up")
    }

    @Test func anAgentSetsTheWeightAsAPercentageOfTheConfiguredOne() throws {
        #expect(backend(weight: 4, agent: try verdict(after: "50%")).effectiveWeight == 2)
        #expect(backend(weight: 4, agent: try verdict(after: "150%")).effectiveWeight == 6)
        #expect(backend(weight: 200, agent: try verdict(after: "1000%")).effectiveWeight == BackendSpec.maximumWeight)
        #expect(backend(weight: 1, agent: try verdict(after: "10%")).effectiveWeight == 1, "a live backend keeps a weight of at least 1")
        let zero = backend(weight: 4, agent: try verdict(after: "0%"))
        #expect(zero.effectiveWeight == 0 && !zero.selectable, "0% takes no new clients, like a drain")
        #expect(backend(weight: 4, agent: try verdict(after: "drain 50%", "ready")).effectiveWeight == 2, "the weight outlives the drain")
    }

    @Test func theSnapshotBalancesOnTheAgentsWeight() throws {
        let specs = ["10.0.0.1:80,weight=4", "10.0.0.2:80,weight=4,agent-port=9999"].map { try! BackendSpec(parsing: $0) }
        let registry = BackendRegistry(backends: specs, algorithm: .weighted)
        try registry.apply(.agentVerdict(backendID: 1, AgentVerdict(weightPercent: 50)))
        var balancer = registry.snapshot().balancer
        let picked = (0..<12).map { _ in balancer.pick(clientKey: 0, excluding: TriedBackends()) }
        #expect(picked.filter { $0 == 0 }.count == 8 && picked.filter { $0 == 1 }.count == 4, "\(picked)")

        try registry.apply(.agentVerdict(backendID: 1, AgentVerdict(adminState: .drain, weightPercent: 50)))
        var drained = registry.snapshot().balancer
        #expect((0..<8).map { _ in drained.pick(clientKey: 0, excluding: TriedBackends()) } == Array(repeating: 0, count: 8))
    }

    @Test func aChangedVerdictPublishesAndTheSameOneDoesNot() throws {
        let registry = BackendRegistry(backends: [try BackendSpec(parsing: "10.0.0.1:80,agent-port=9999")], algorithm: .weighted)
        let start = registry.snapshot().version
        try registry.apply(.agentVerdict(backendID: 0, AgentVerdict(adminState: .drain)))
        #expect(registry.snapshot().version == start + 1)
        try registry.apply(.agentVerdict(backendID: 0, AgentVerdict(adminState: .drain)))
        #expect(registry.snapshot().version == start + 1)
    }

    @Test func theSummarySaysWhatIsInForce() {
        #expect(AgentVerdict().summary == "ready")
        #expect(AgentVerdict(health: .down, adminState: .drain, weightPercent: 50, text: "deploy").summary == "drain 50% down # deploy")
        #expect(AgentVerdict(adminState: .maint, error: "timeout").summary == "error: timeout (in force: maint)")
    }
}

@Suite struct AgentAdminOutputTests {
    private func controller() throws -> (AdminController, BackendRegistry) {
        let specs = try ["10.0.0.1:80", "10.0.0.2:80,weight=4,agent-port=9999"].map { try BackendSpec(parsing: $0) }
        let registry = BackendRegistry(backends: specs, algorithm: .weighted)
        let stats = ProcessStats(uptime: .seconds(1), workers: 1, relayMode: "copy", balance: "weighted",
                                 openConnections: 0, totalConnections: 0, bytesFromClients: 0, bytesToClients: 0)
        return (AdminController(registry: registry, processStats: { stats }), registry)
    }

    private func reply(_ controller: AdminController, _ line: String) -> AdminReply {
        guard case let .reply(reply) = controller.handle(line: line, now: .now) else { return .failure("wait") }
        return reply
    }

    @Test func showBackendsHasTheAgentFieldsOnlyWhereThereIsAnAgent() throws {
        let (controller, registry) = try controller()
        let before = reply(controller, "show backends json").body.joined()
        #expect(before.contains("\"agent\":\"10.0.0.2:9999\",\"agent_state\":null,\"agent_health\":null,\"agent_weight\":null,"
                                + "\"agent_text\":null,\"agent_error\":null,\"effective_weight\":4}"), "\(before)")
        #expect(before.components(separatedBy: "\"agent\"").count == 2, "only the backend with an agent has the fields")

        try registry.apply(.agentVerdict(backendID: 1, AgentVerdict(health: .up, adminState: .drain, weightPercent: 50, text: "deploy")))
        let json = reply(controller, "show backends json").body.joined()
        #expect(json.contains("\"state\":\"drain\""), "\(json)")
        #expect(json.contains("\"agent_state\":\"drain\",\"agent_health\":\"up\",\"agent_weight\":50,\"agent_text\":\"deploy\",\"agent_error\":null,\"effective_weight\":2"), "\(json)")
        let text = reply(controller, "show backends").body
        #expect(text[0].contains("CONNECT_P99_MS  AGENT"), "\(text[0])")
        #expect(text[1].contains("  -  ") && text[2].contains("drain 50% up # deploy"), "\(text)")
    }

    @Test func theOperatorsReadySaysWhenTheAgentStillHoldsTheBackend() throws {
        let (controller, registry) = try controller()
        try registry.apply(.agentVerdict(backendID: 1, AgentVerdict(adminState: .maint)))
        let ready = reply(controller, "ready 10.0.0.2:80")
        #expect(ready.ok && ready.body.joined().contains("(but its agent says maint)"), "\(ready)")
        #expect(registry.snapshot().backends[1].admin == .ready && !registry.snapshot().backends[1].selectable)
    }
}
