import Testing
@testable import SwitchyardCore

private func bits(_ text: String) -> (high: UInt64, low: UInt64) { IPAddress(text)!.mapped128 }

private func controls(allow: [String] = [], deny: [String] = []) -> ClientControls {
    var controls = ClientControls()
    controls.allow = allow.map { try! CIDR(parsing: $0) }
    controls.deny = deny.map { try! CIDR(parsing: $0) }
    return controls
}

@Suite struct ClientControlsAccessTests {
    @Test func noListsLetEveryoneIn() {
        let open = ClientControls()
        for address in ["10.0.0.1", "::1", "::ffff:192.0.2.1"] {
            let (high, low) = bits(address)
            #expect(open.access(high: high, low: low) == nil)
        }
        #expect(open.isEmpty)
        #expect(!open.tracksSources)
    }

    @Test func denyWinsOverAllow() {
        let rules = controls(allow: ["10.0.0.0/8"], deny: ["10.1.0.0/16"])
        #expect(rules.access(high: bits("10.2.3.4").high, low: bits("10.2.3.4").low) == nil)
        #expect(rules.access(high: bits("10.1.3.4").high, low: bits("10.1.3.4").low) == .deny)
        #expect(rules.access(high: bits("192.0.2.1").high, low: bits("192.0.2.1").low) == .notAllowed)
        #expect(rules.tracksSources)
    }

    @Test func emptyAllowWithDenyAllowsEveryoneElse() {
        let rules = controls(deny: ["127.0.0.3", "2001:db8::/32"])
        #expect(rules.access(high: bits("127.0.0.2").high, low: bits("127.0.0.2").low) == nil)
        #expect(rules.access(high: bits("127.0.0.3").high, low: bits("127.0.0.3").low) == .deny)
        #expect(rules.access(high: bits("2001:db8::5").high, low: bits("2001:db8::5").low) == .deny)
        #expect(rules.access(high: bits("2001:db9::5").high, low: bits("2001:db9::5").low) == nil)
    }

    @Test func anIPv4MappedClientMatchesIPv4Rules() {
        let rules = controls(allow: ["192.0.2.0/24"], deny: ["192.0.2.7"])
        let mapped = bits("::ffff:192.0.2.1")
        #expect(rules.access(high: mapped.high, low: mapped.low) == nil)
        let deniedMapped = bits("::ffff:192.0.2.7")
        #expect(rules.access(high: deniedMapped.high, low: deniedMapped.low) == .deny)
        let v6 = bits("2001:db8::1")
        #expect(rules.access(high: v6.high, low: v6.low) == .notAllowed)
    }

    @Test func ipv6LoopbackIsMatchedByItsOwnBlockOnly() {
        let rules = controls(allow: ["::1"])
        #expect(rules.access(high: bits("::1").high, low: bits("::1").low) == nil)
        #expect(rules.access(high: bits("127.0.0.1").high, low: bits("127.0.0.1").low) == .notAllowed)
    }
}

@Suite struct ClientControlsParsingTests {
    @Test func ratesAreWholeNumbersPerSecond() throws {
        #expect(try ConnectionRate(parsing: "100/s", key: "k").perSecond == 100)
        #expect(try ConnectionRate(parsing: "1/s", key: "k").description == "1/s")
        for bad in ["", "/s", "0/s", "10", "10/m", "-1/s", "1.5/s", " 5/s", "100000001/s", "99999999999999999999/s"] {
            #expect(throws: ConfigError.self) { try ConnectionRate(parsing: bad, key: "k") }
        }
    }

    @Test func countsAreFromOne() throws {
        #expect(try ClientControls.parseCount("3", key: "k") == 3)
        for bad in ["", "0", "-1", "x", "1e3", "100000001"] {
            #expect(throws: ConfigError.self) { try ClientControls.parseCount(bad, key: "k") }
        }
    }

    @Test func sourceMasksNameBothFamilies() throws {
        #expect(try SourceMask(parsing: "24,64") == SourceMask(ipv4: 24, ipv6: 64))
        #expect(try SourceMask(parsing: "0,0") == SourceMask(ipv4: 0, ipv6: 0))
        for bad in ["", "24", "24,", "33,64", "24,129", "24,64,1", "024,64", "a,b"] {
            #expect(throws: ConfigError.self) { try SourceMask(parsing: bad) }
        }
    }

    @Test func blockListsAreCommaSeparated() throws {
        #expect(try ClientControls.parseBlocks("10.0.0.0/8,::1").map(\.description) == ["10.0.0.0/8", "::1/128"])
        #expect(throws: ConfigError.self) { try ClientControls.parseBlocks("10.0.0.0/8,") }
    }

    @Test func aBurstNeedsARate() {
        var rules = ClientControls()
        rules.connectionBurstPerSource = 5
        #expect(throws: ConfigIssue.self) { try rules.validate() }
        rules.connectionRatePerSource = ConnectionRate(perSecond: 2)
        #expect(throws: Never.self) { try rules.validate() }
        #expect(rules.limits == SourceLimits(maxOpen: nil, ratePerSecond: 2, burst: 5))
    }

    @Test func theFileTakesEveryKeyAndDefaultsMerge() throws {
        let configuration = try ConfigFile.parse("""
        source-table-size: 1024
        defaults:
          deny: [192.0.2.0/24]
          reject-with: close
        services:
          web:
            listen: 127.0.0.1:8080
            backends: [127.0.0.1:9000]
            allow: 10.0.0.0/8,::1
            max-connections-per-source: 4
            connection-rate-per-source: 10/s
            connection-burst-per-source: 20
            source-mask: 24,64
            max-connection-rate: 500/s
        """, file: "t.yaml")
        #expect(configuration.global.sourceTableSize == 1024)
        let controls = configuration.service(named: "web")!.clientControls
        #expect(controls.allow.map(\.description) == ["10.0.0.0/8", "::1/128"])
        #expect(controls.deny.map(\.description) == ["192.0.2.0/24"])
        #expect(controls.maxConnectionsPerSource == 4)
        #expect(controls.connectionRatePerSource == ConnectionRate(perSecond: 10))
        #expect(controls.connectionBurstPerSource == 20)
        #expect(controls.sourceMask == SourceMask(ipv4: 24, ipv6: 64))
        #expect(controls.maxConnectionRate == ConnectionRate(perSecond: 500))
        #expect(controls.rejectWith == .close)
        #expect(configuration.service(named: "web")!.settings.clientControls == controls)
    }

    @Test func badValuesAreReportedAtTheirKey() {
        expectConfigFileError("""
        services:
          web:
            listen: 127.0.0.1:8080
            backends: [127.0.0.1:9000]
            deny: [10.0.0.1/8]
        """, line: 5, column: 12, message: "did you mean 10.0.0.0/8?")
        expectConfigFileError("""
        services:
          web:
            listen: 127.0.0.1:8080
            backends: [127.0.0.1:9000]
            connection-rate-per-source: 10
        """, line: 5, column: 33, message: "must be a rate such as 100/s")
        expectConfigFileError("""
        services:
          web:
            listen: 127.0.0.1:8080
            backends: [127.0.0.1:9000]
            reject-with: drop
        """, line: 5, column: 18, message: "'drop' is not one of close, reset")
    }

    @Test func reloadSeesAChangedDenyAsASettingsChange() throws {
        var old = ServiceConfiguration(name: "web", listen: [try Endpoint(parsing: "127.0.0.1:8080")], backends: [])
        var new = old
        new.clientControls.deny = [try CIDR(parsing: "127.0.0.3")]
        old.backends = [try BackendSpec(parsing: "127.0.0.1:9000")]
        new.backends = old.backends
        let change = ConfigDifference.compare(old, new)
        #expect(change.settingsChanged)
        #expect(change.addedListeners.isEmpty && change.removedListeners.isEmpty)
    }

    @Test func theTableSizeIsARestartOnlySetting() {
        var other = GlobalSettings()
        other.sourceTableSize = 128
        #expect(GlobalSettings().restartOnlyDifferences(to: other) == ["source-table-size 65536 -> 128"])
        other.sourceTableSize = 10
        #expect(throws: ConfigIssue.self) { try other.validate() }
    }
}

@Suite struct RejectionCauseTests {
    @Test func everyReasonHasItsAccessLogCause() {
        #expect(RejectionReason.allCases.map(\.cause.label) == ["rejected_deny", "rejected_not_allowed", "rejected_source_limit", "rejected_source_rate"])
        for reason in RejectionReason.allCases {
            #expect(reason.cause.rejectionReason == reason)
            #expect(TerminationCause(label: "rejected_\(reason.label)") == reason.cause)
            #expect(!TerminationCause.servedCases.contains(reason.cause))
        }
    }

    @Test func rejectedConnectionsAreNeitherOpenNorClosed() {
        var figures = ConnectionFigures()
        figures.accepted = 5
        figures.recordClose(.rejectedDeny, sessionNanoseconds: 0)
        figures.recordClose(.rejectedSourceRate, sessionNanoseconds: 0)
        figures.recordClose(.clientClose, sessionNanoseconds: 1000)
        #expect(figures.rejected(.deny) == 1 && figures.rejected(.sourceRate) == 1 && figures.rejectedTotal == 2)
        #expect(figures.closedTotal == 1)
        #expect(figures.open == 2)
        #expect(figures.sessionDuration.count == 1)
    }
}
