import SwitchyardCore
import Testing

@Suite struct TopViewTests {
    static func backend(_ address: String, total: Int, to: Int, from: Int, active: Int = 0, health: String = "up",
                        service: String? = nil, p99: Double? = nil) -> TopBackend {
        TopBackend(service: service, address: address, state: "ready", health: health, active: active, total: total,
                   bytesToBackend: to, bytesFromBackend: from, connectP99Milliseconds: p99)
    }

    @Test func ratesComeFromTheDifferenceBetweenTwoPolls() {
        var view = TopView()
        view.update([Self.backend("10.0.0.1:80", total: 100, to: 1000, from: 5000)], at: .seconds(10))
        #expect(view.rows[0].connectionsPerSecond == nil)
        view.update([
            Self.backend("10.0.0.1:80", total: 130, to: 3000, from: 5000),
            Self.backend("10.0.0.2:80", total: 7, to: 0, from: 0),
        ], at: .seconds(12))
        #expect(view.rows[0].connectionsPerSecond == 15)
        #expect(view.rows[0].bytesToBackendPerSecond == 1000)
        #expect(view.rows[0].bytesFromBackendPerSecond == 0)
        // New since the last poll: no rate yet.
        #expect(view.rows[1].connectionsPerSecond == nil)
    }

    @Test func aCounterGoingBackwardsShowsNoRate() {
        var view = TopView()
        view.update([Self.backend("a:1", total: 50, to: 10, from: 10)], at: .seconds(1))
        view.update([Self.backend("a:1", total: 3, to: 10, from: 10)], at: .seconds(2))
        #expect(view.rows[0].connectionsPerSecond == nil)
        #expect(view.rows[0].bytesToBackendPerSecond == 0)
    }

    @Test func backendsAreKeyedByServiceAndAddress() {
        var view = TopView()
        view.update([Self.backend("a:1", total: 10, to: 0, from: 0, service: "x"),
                     Self.backend("a:1", total: 100, to: 0, from: 0, service: "y")], at: .seconds(1))
        view.update([Self.backend("a:1", total: 11, to: 0, from: 0, service: "x"),
                     Self.backend("a:1", total: 110, to: 0, from: 0, service: "y")], at: .seconds(2))
        #expect(view.rows.map(\.connectionsPerSecond) == [1, 10])
    }

    @Test func screenIsATableWithASummary() {
        var view = TopView()
        view.update([Self.backend("10.0.0.1:80", total: 0, to: 0, from: 0),
                     Self.backend("[::1]:8080", total: 0, to: 0, from: 0, health: "down")], at: .seconds(1))
        view.update([Self.backend("10.0.0.1:80", total: 25, to: 3 * 1024 * 1024, from: 1536, active: 4, p99: 0.84),
                     Self.backend("[::1]:8080", total: 0, to: 0, from: 0, health: "down", p99: 1234)], at: .seconds(2))
        #expect(view.screen(title: "switchyard admin top", status: nil, height: 40, columns: 200) == [
            "switchyard admin top",
            "2 backends, 1 up, 4 active, 25.0 conn/s",
            "",
            "BACKEND      STATE  HEALTH  ACTIVE  CONN/S  TO_BACKEND/S  FROM_BACKEND/S  CONNECT_P99",
            "10.0.0.1:80  ready  up           4    25.0          3.0M            1.5K       0.84ms",
            "[::1]:8080   ready  down         0       0            0B              0B        1.23s",
        ])
    }

    @Test func screenFitsTheWindowAndShowsTheStatus() {
        var view = TopView()
        view.update((1...10).map { Self.backend("10.0.0.\($0):80", total: 0, to: 0, from: 0, service: "web") }, at: .seconds(1))
        let lines = view.screen(title: "title that is long", status: "cannot reach switchyard", height: 8, columns: 12)
        #expect(lines.count == 8)
        #expect(lines.allSatisfy { $0.count <= 12 })
        #expect(lines[0] == "title that i")
        #expect(lines[3] == "SERVICE  BAC")
        #expect(lines[6] == "... 8 more (")
        #expect(lines[7] == "cannot reach")
    }

    @Test func noBackends() {
        let lines = TopView().screen(title: "t", status: nil, height: 10, columns: 80)
        #expect(lines[1] == "0 backends, 0 up, 0 active, 0 conn/s")
        #expect(lines.last == "no backends")
    }
}

import Foundation

@Suite struct TopBackendDecodingTests {
    @Test func readsTodaysFieldNames() throws {
        let json = #"{"backends":[{"id":0,"backend":"127.0.0.1:9001","weight":1,"admin":"drain","health":"up","selectable":false,"last_check":"ok","active":2,"total":9,"failures":0,"bytes_to_backend":10,"bytes_from_backend":20,"shutdown_epoch":0}]}"#
        let reply = try JSONDecoder().decode(TopBackendsReply.self, from: Data(json.utf8))
        #expect(reply.backends == [TopBackend(address: "127.0.0.1:9001", state: "drain", health: "up", active: 2, total: 9,
                                              bytesToBackend: 10, bytesFromBackend: 20)])
    }

    @Test func prefersTheNamesOfIssueTenAndReadsTheOptionalFields() throws {
        let json = #"{"backends":[{"service":"pg","address":"[::1]:5432","backend":"old","state":"maint","admin":"ready","health":"down","active":0,"total":1,"bytes_to_backend":0,"bytes_from_backend":0,"connect_p99_ms":1.5}]}"#
        let reply = try JSONDecoder().decode(TopBackendsReply.self, from: Data(json.utf8))
        #expect(reply.backends == [TopBackend(service: "pg", address: "[::1]:5432", state: "maint", health: "down", active: 0,
                                              total: 1, bytesToBackend: 0, bytesFromBackend: 0, connectP99Milliseconds: 1.5)])
    }

    @Test func aBackendWithoutAnAddressIsAnError() {
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(TopBackendsReply.self, from: Data(#"{"backends":[{"state":"ready"}]}"#.utf8))
        }
    }
}
