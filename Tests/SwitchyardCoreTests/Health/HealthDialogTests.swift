import SwitchyardCore
import Testing

/// Drives a dialog through events and returns the actions it answered with.
private func run(_ dialog: inout some HealthDialog, _ events: [HealthDialogEvent]) -> [HealthDialogAction] {
    events.map { dialog.advance($0) }
}

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

@Suite struct HealthStepScriptTests {
    @Test func sendThenExpectPassesOnTheExpectedReply() {
        var script = HealthStepScript([.send(bytes("PING\r\n")), .expect(HealthExpectation(.bytes(bytes("+PONG")), match: .prefix))])
        #expect(run(&script, [.connected, .sent, .received(bytes("+PO")), .received(bytes("NG\r\n"))])
                == [.send(bytes("PING\r\n")), .receive, .receive, .pass("2 steps passed")])
    }

    @Test func aFailingStepIsNamedWithWhatWasRead() {
        var script = HealthStepScript([.send(bytes("PING\r\n")), .expect(HealthExpectation(.bytes(bytes("+PONG")), match: .prefix))])
        let actions = run(&script, [.connected, .sent, .received(bytes("-NOAUTH Authentication required.\r\n"))])
        #expect(actions.last == .fail("step 2 (expect prefix '+PONG'): got '-NOAUTH Authentication required.\\r\\n'"))
    }

    @Test func bytesAfterAMatchAreKeptForTheNextExpect() {
        var script = HealthStepScript([
            .expect(HealthExpectation(.bytes(bytes("A\n")), match: .prefix)),
            .expect(HealthExpectation(.bytes(bytes("B")), match: .prefix)),
        ])
        #expect(run(&script, [.connected, .received(bytes("A\nB"))]) == [.receive, .pass("2 steps passed")])
    }

    /// `+OK` matched as a prefix leaves `\r\n` unread; the next send drops it, so the PING's
    /// reply is judged on its own (the Redis AUTH → PING pattern).
    @Test func aSendDropsWhatEarlierRepliesLeftUnread() {
        var script = HealthStepScript([
            .send(bytes("AUTH pw\r\n")), .expect(HealthExpectation(.bytes(bytes("+OK")), match: .prefix)),
            .send(bytes("PING\r\n")), .expect(HealthExpectation(.bytes(bytes("+PONG\r\n")), match: .prefix)),
        ])
        #expect(run(&script, [.connected, .sent, .received(bytes("+OK\r\n")), .sent, .received(bytes("+PONG\r\n"))])
                == [.send(bytes("AUTH pw\r\n")), .receive, .send(bytes("PING\r\n")), .receive, .pass("4 steps passed")])
    }

    /// The fuzz entry point runs its seed shapes without trapping (the fuzzer checks the rest).
    @Test func theStepFuzzEntryRunsScriptsToAVerdict() {
        HealthStepScript.fuzz("- send: \"PING\\r\\n\"\n- expect: {string: \"+PONG\", match: prefix}\n===\n+PO|NG\r\n")
        HealthStepScript.fuzz("- expect: close\n- send: x\n- expect: {regex: \"a+\"}\n===\nbye")
        HealthStepScript.fuzz("- expect: {hex: \"zz\"}")
        HealthStepScript.fuzz("[]")
        HealthStepScript.fuzz("- send: \"\"")
    }

    /// After the backend closed, a later expect is judged at once on what is left, never waits.
    @Test func expectsAfterTheCloseNeverWait() {
        var script = HealthStepScript([.expect(HealthExpectation(.close)), .expect(HealthExpectation(.bytes(bytes("bye")), match: .contains))])
        #expect(run(&script, [.connected, .received(bytes("x")), .closed])
                == [.receive, .receive, .fail("step 2 (expect contains 'bye'): got nothing (then closed)")])
    }

    @Test func containsWaitsUntilTheCloseOrTheLimit() {
        var script = HealthStepScript([.expect(HealthExpectation(.bytes(bytes("role:master")), match: .contains))])
        #expect(run(&script, [.connected, .received(bytes("# Replication\r\nrole:slave\r\n")), .closed])
                == [.receive, .receive, .fail("step 1 (expect contains 'role:master'): got '# Replication\\r\\nrole:slave\\r\\n' (then closed)")])
        var long = HealthStepScript([.expect(HealthExpectation(.bytes(bytes("never")), match: .contains))])
        let flood = [UInt8](repeating: 0x61, count: HealthCheckConfig.maximumReply)
        guard case .fail = long.advance(.received(flood)) else { Issue.record("a reply at the limit must fail"); return }
    }

    @Test func regexStepsMatchAnywhereAtTheStartOrTheWholeReply() {
        var anywhere = HealthStepScript([.expect(HealthExpectation(.regex("role:(master|primary)"), match: .contains))])
        #expect(run(&anywhere, [.connected, .received(bytes("x\r\nrole:master\r\n"))]).last == .pass("1 step passed"))
        var prefix = HealthStepScript([.expect(HealthExpectation(.regex("^[0-9]+ OK"), match: .prefix))])
        #expect(run(&prefix, [.connected, .received(bytes("200 OK\n"))]).last == .pass("1 step passed"))
        var whole = HealthStepScript([.expect(HealthExpectation(.regex("ok\\n"), match: .match))])
        #expect(run(&whole, [.connected, .received(bytes("ok\n")), .closed]) == [.receive, .receive, .pass("1 step passed")])
        var notWhole = HealthStepScript([.expect(HealthExpectation(.regex("ok\\n"), match: .match))])
        #expect(run(&notWhole, [.connected, .received(bytes("ok\nmore")), .closed]).last
                == .fail("step 1 (expect match /ok\\n/): got 'ok\\nmore' (then closed)"))
    }

    @Test func aStepMayExpectTheBackendToClose() {
        var script = HealthStepScript([.send(bytes("QUIT\r\n")), .expect(HealthExpectation(.close))])
        #expect(run(&script, [.connected, .sent, .received(bytes("221 bye\r\n")), .closed])
                == [.send(bytes("QUIT\r\n")), .receive, .receive, .pass("2 steps passed")])
    }

    @Test func anUncompilableRegexIsAConfigurationError() {
        #expect(throws: ConfigError.self) { try HealthExpectation(.regex("(unclosed"), match: .contains).validate() }
        #expect(throws: ConfigError.self) { try HealthExpectation(.bytes([]), match: .contains).validate() }
    }
}

@Suite struct ProtocolHealthCheckTests {
    @Test func redisSendsAuthThenPingAndForAPrimaryAsksForItsRole() {
        var script = RedisHealthCheck.script(auth: "s3cret", primary: true)
        let actions = run(&script, [.connected, .sent, .received(bytes("+OK\r\n")), .sent, .received(bytes("+PONG\r\n")), .sent,
                                    .received(bytes("$40\r\n# Replication\r\nrole:master\r\nconnected_slaves:1\r\n"))])
        #expect(actions == [
            .send(bytes("*2\r\n$4\r\nAUTH\r\n$6\r\ns3cret\r\n")), .receive,
            .send(bytes("*1\r\n$4\r\nPING\r\n")), .receive,
            .send(bytes("*2\r\n$4\r\nINFO\r\n$11\r\nreplication\r\n")), .receive,
            .pass("PONG, role:master"),
        ])
    }

    @Test func aRedisReplicaFailsTheRedisPrimaryCheck() {
        var script = RedisHealthCheck.script(auth: nil, primary: true)
        let actions = run(&script, [.connected, .sent, .received(bytes("+PONG\r\n")), .sent,
                                    .received(bytes("$30\r\n# Replication\r\nrole:slave\r\n")), .closed])
        guard case let .fail(reason) = actions.last else { Issue.record("a replica passed: \(actions)"); return }
        #expect(reason.contains("role:slave"))
    }

    @Test func smtpReadsTheBannerAndAMultiLineEhloReply() {
        var script = SMTPHealthCheck.script()
        let actions = run(&script, [.connected, .received(bytes("220 mx.test ESMTP\r\n")), .sent,
                                    .received(bytes("250-mx.test\r\n250-PIPELINING\r\n")), .received(bytes("250 8BITMIME\r\n")), .sent])
        #expect(actions == [.receive, .send(bytes("EHLO switchyard.invalid\r\n")), .receive, .receive,
                            .send(bytes("QUIT\r\n")), .pass("220 banner, EHLO 250")])
        var refused = SMTPHealthCheck.script()
        #expect(refused.advance(.connected) == .receive)
        guard case .fail = refused.advance(.received(bytes("554 no service\r\n"))) else { Issue.record("a 554 banner passed"); return }
    }

    @Test func httpChecksTheStatusRangeAndTheBody() throws {
        var ok = HTTPHealthDialog(path: "/health", host: "api.test")
        #expect(ok.advance(.connected) == .send(bytes("GET /health HTTP/1.1\r\nHost: api.test\r\nUser-Agent: switchyard-health\r\nConnection: close\r\n\r\n")))
        #expect(run(&ok, [.sent, .received(bytes("HTTP/1.1 204 No Content\r\n"))]) == [.receive, .pass("HTTP 204 No Content")])
        var unavailable = HTTPHealthDialog(host: "h")
        #expect(run(&unavailable, [.connected, .sent, .received(bytes("HTTP/1.0 503 Service Unavailable\r\n\r\n"))]).last
                == .fail("HTTP 503 Service Unavailable"))
        var body = HTTPHealthDialog(host: "h", status: 200...200, body: "\"ok\":true")
        #expect(run(&body, [.connected, .sent, .received(bytes("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"ok\":")),
                            .received(bytes("true}"))]).last == .pass("HTTP 200, body has '\"ok\":true'"))
        #expect(try HTTPHealthDialog.parseStatusRange("200-399") == 200...399)
        #expect(try HTTPHealthDialog.parseStatusRange("204") == 204...204)
        for bad in ["", "99", "200-", "400-200", "2xx", "600"] {
            #expect(throws: ConfigError.self) { try HTTPHealthDialog.parseStatusRange(bad) }
        }
    }

    @Test func postgresSendsAStartupMessageAndJudgesTheFirstReply() {
        var dialog = PostgresHealthDialog(user: "app", database: "orders")
        let startup = dialog.startup
        #expect(Array(startup.prefix(8)) == [0, 0, 0, UInt8(startup.count), 0, 3, 0, 0])
        #expect(String(decoding: startup.dropFirst(8), as: UTF8.self).contains("user\0app\0database\0orders\0"))
        #expect(run(&dialog, [.connected, .sent, .received([0x52, 0, 0, 0, 10, 0, 0, 0, 10, 0x53, 0x43])])
                .last == .pass("authentication requested (method 10)"))

        var trusted = PostgresHealthDialog(user: "app", database: nil)
        // Under trust, AuthenticationOk is followed by parameters, the key and ready-for-query, or
        // by the error a wrong database name gets only once authenticated.
        #expect(run(&trusted, [.connected, .sent, .received([0x52, 0, 0, 0, 8, 0, 0, 0, 0])]).last == .receive)
        #expect(trusted.advance(.received([0x53, 0, 0, 0, 6, 0x61, 0, 0x4B, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 2, 0x5A, 0, 0, 0, 5, 0x49]))
                == .pass("ready for query"))

        // FATAL 3D000: database "nope" does not exist
        var fields: [UInt8] = []
        for (code, text) in [("S", "FATAL"), ("V", "FATAL"), ("C", "3D000"), ("M", "database \"nope\" does not exist")] {
            fields += bytes(code) + bytes(text) + [0]
        }
        fields.append(0)
        let error: [UInt8] = [0x45] + PostgresHealthDialogTestSupport.int32(fields.count + 4) + fields
        var wrong = PostgresHealthDialog(user: "app", database: "nope")
        #expect(run(&wrong, [.connected, .sent, .received(Array(error.prefix(7))), .received(Array(error.dropFirst(7)))])
                == [.send(wrong.startup), .receive, .receive, .fail("PostgreSQL error: FATAL 3D000: database \"nope\" does not exist")])

        var garbage = PostgresHealthDialog(user: "app", database: nil)
        guard case .fail = run(&garbage, [.connected, .sent, .received(bytes("HTTP/1.1 400 Bad"))]).last else {
            Issue.record("an HTTP reply passed the postgres check"); return
        }
    }

    @Test func mysqlWantsProtocolTenAndReportsAnErrorPacket() {
        var greeting = MySQLHealthDialog()
        let hello: [UInt8] = [20, 0, 0, 0, 0x0A] + bytes("10.11.6-MariaDB") + [0, 1, 2, 3]
        #expect(run(&greeting, [.connected, .received(hello)]) == [.receive, .pass("protocol 10, 10.11.6-MariaDB")])
        var refused = MySQLHealthDialog()
        let message = bytes("Too many connections")
        let packet: [UInt8] = [UInt8(3 + message.count), 0, 0, 0, 0xFF, 0x10, 0x04] + message
        #expect(run(&refused, [.connected, .received(packet)]).last == .fail("MySQL error 1040: Too many connections"))
        var other = MySQLHealthDialog()
        guard case .fail = run(&other, [.connected, .received(bytes("SSH-2.0-OpenSSH\r\n"))]).last else {
            Issue.record("an SSH banner passed the mysql check"); return
        }
    }
}

enum PostgresHealthDialogTestSupport {
    static func int32(_ value: Int) -> [UInt8] {
        [UInt8(truncatingIfNeeded: value >> 24), UInt8(truncatingIfNeeded: value >> 16),
         UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)]
    }
}

@Suite struct AgentReplyTests {
    @Test func wordsSetHealthAdminStateWeightAndText() throws {
        #expect(try AgentReply.parse(bytes("drain\n")) == AgentReply(adminState: .drain))
        #expect(try AgentReply.parse(bytes("50%\r\n")) == AgentReply(weightPercent: 50))
        #expect(try AgentReply.parse(bytes("up, ready 75% maxconn:30 # deploy done\n"))
                == AgentReply(health: .up, adminState: .ready, weightPercent: 75, maxConnections: 30, text: "deploy done"))
        #expect(try AgentReply.parse(bytes("MAINT")) == AgentReply(adminState: .maint))
        #expect(try AgentReply.parse(bytes("stopped #disk full")) == AgentReply(health: .down, text: "disk full"))
        #expect(try AgentReply.parse(bytes("up future-word")) == AgentReply(health: .up), "unknown words are ignored")
    }

    @Test func badRepliesAreErrorsNotVerdicts() {
        for bad in ["", "\n", "150x%", "-5%", "2000%", "up\u{1}", "up # two\nlines", "drain #\u{1b}[2J"] {
            #expect(throws: ConfigError.self, "\(bad.debugDescription)") { try AgentReply.parse(bytes(bad)) }
        }
        #expect(throws: ConfigError.self) { try AgentReply.parse([UInt8](repeating: 0x61, count: AgentReply.maximumLength + 1)) }
    }

    @Test func anAgentCannotBringUpABackendWhoseCheckFails() {
        #expect(AgentVerdict(health: .up).combined(checkUp: false) == false)
        #expect(AgentVerdict(health: .down).combined(checkUp: true) == false)
        #expect(AgentVerdict(health: .up).combined(checkUp: true))
        #expect(AgentVerdict().combined(checkUp: true))
        #expect(AgentVerdict.weight(configured: 10, percent: 50) == 5)
        #expect(AgentVerdict.weight(configured: 1, percent: 10) == 1, "a live backend keeps a weight of at least 1")
        #expect(AgentVerdict.weight(configured: 10, percent: 0) == 0)
        #expect(AgentVerdict.weight(configured: 200, percent: 1000) == BackendSpec.maximumWeight, "capped as HAProxy caps at 256")
    }
}

@Suite struct PriorityLoadTests {
    typealias Tier = PriorityLoad.Tier

    @Test func withoutAThresholdTheFirstTierWithAnyHealthyWeightTakesEverything() {
        #expect(PriorityLoad.shares([Tier(healthyWeight: 1, totalWeight: 3), Tier(healthyWeight: 2, totalWeight: 2)], thresholdPercent: nil) == [1, 0])
        #expect(PriorityLoad.shares([Tier(healthyWeight: 0, totalWeight: 3), Tier(healthyWeight: 2, totalWeight: 2)], thresholdPercent: nil) == [0, 1])
        #expect(PriorityLoad.shares([Tier(healthyWeight: 0, totalWeight: 3)], thresholdPercent: nil) == [0])
    }

    @Test func belowTheThresholdATierSpillsInProportion() {
        let tiers = [Tier(healthyWeight: 2, totalWeight: 4), Tier(healthyWeight: 4, totalWeight: 4), Tier(healthyWeight: 1, totalWeight: 1)]
        // Tier 0: 50 % healthy against a 80 % threshold is 62.5 % healthy; tier 1 takes the rest.
        #expect(PriorityLoad.shares(tiers, thresholdPercent: 80) == [0.625, 0.375, 0])
        // At or above the threshold a tier takes everything.
        #expect(PriorityLoad.shares(tiers, thresholdPercent: 50) == [1, 0, 0])
    }

    @Test func sharesAreScaledUpWhenEveryTierIsDegraded() {
        let tiers = [Tier(healthyWeight: 1, totalWeight: 4), Tier(healthyWeight: 1, totalWeight: 4)]
        #expect(PriorityLoad.shares(tiers, thresholdPercent: 100) == [0.5, 0.5])
        #expect(PriorityLoad.shares([Tier(healthyWeight: 0, totalWeight: 4)], thresholdPercent: 100) == [0])
    }

    @Test func aPointLandsInTheTierOfItsShare() {
        let shares = [0.625, 0.375, 0]
        #expect(PriorityLoad.tier(for: 0, in: shares) == 0)
        #expect(PriorityLoad.tier(for: 0.624, in: shares) == 0)
        #expect(PriorityLoad.tier(for: 0.625, in: shares) == 1)
        #expect(PriorityLoad.tier(for: 0.9999, in: shares) == 1)
        #expect(PriorityLoad.tier(for: 0.5, in: [0, 0]) == nil)
    }
}
