import Foundation
import Testing
@testable import SwitchyardCore

@Suite struct StatusDocumentTests {
    static let stats = ProcessStats(
        uptime: .seconds(42), workers: 2, relayMode: "auto", balance: "per service",
        openConnections: 3, totalConnections: 10, bytesFromClients: 100, bytesToClients: 200)

    static func inputs(admin: Bool = false) -> StatusInputs {
        let db = BackendRegistry(backends: [try! BackendSpec(parsing: "10.0.0.1:5432"), try! BackendSpec(parsing: "10.0.0.2:5432,weight=3")],
                                 algorithm: .roundRobin, service: "db")
        let cache = BackendRegistry(backends: [try! BackendSpec(parsing: "10.0.0.3:6379")], algorithm: .leastConnections, service: "cache")
        let services = [AdminService(name: "cache", registry: cache, listeners: ["127.0.0.1:6379"]),
                        AdminService(name: "db", registry: db, listeners: ["127.0.0.1:5432"], lastCheckText: { _ in "<b>said</b> \"no\"" })]
        let controller = AdminController(services: { services }, processStats: { stats })
        _ = controller.handle(line: "drain db/10.0.0.2:5432", now: ContinuousClock.now)
        var recorder = StatusRecorder(secondPoints: 10, minutePoints: 10)
        let subject = StatusSubject(service: "db")
        recorder.record(time: 99, [subject: StatusCounters(connections: 0)])
        recorder.record(time: 100, [subject: StatusCounters(connections: 5, bytesIn: 10, bytesOut: 20)])
        var figures = ConnectionFigures()
        figures.recordClose(.noBackend)
        figures.recordClose(.rejectedDeny)
        return StatusInputs(controller: controller, recorder: recorder, serviceFigures: ["db": figures],
                            process: .init(residentBytes: 5 << 20, openDescriptors: 12, maximumDescriptors: 1024),
                            time: 100, now: .now, adminEnabled: admin, csrfToken: "c5rf")
    }

    static func object(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test func theDocumentHasTheSchemaREADMEDocuments() throws {
        let inputs = Self.inputs()
        let document = try Self.object(StatusDocument.json(inputs))
        #expect(document["schema_version"] as? Int == 1)
        #expect(document["time"] as? Int == 100)
        #expect(document["history"] == nil)
        let process = try #require(document["process"] as? [String: Any])
        for key in ["pid", "uptime_seconds", "workers", "relay", "version", "commit", "open_connections", "rss_bytes", "open_fds", "max_fds"] {
            #expect(process[key] != nil, "process.\(key)")
        }
        let admin = try #require(document["admin"] as? [String: Any])
        #expect(admin["enabled"] as? Bool == false)
        #expect(admin["csrf_token"] as? String == "c5rf")
        #expect(document["fields"] as? [String] == StatusRecorder.fields)
        let services = try #require(document["services"] as? [[String: Any]])
        #expect(services.map { $0["name"] as? String } == ["cache", "db"])
        let db = services[1]
        // Every field of `show services json`, then the page's own.
        let shown = try Self.object(try #require(inputs.controller.showServices(json: true).body.first))
        let serviceKeys = Set(try #require((shown["services"] as? [[String: Any]])?.first).keys)
        #expect(serviceKeys.isSubset(of: Set(db.keys)))
        #expect((db["rates"] as? [String: Double])?["conn_per_sec"] == 5)
        #expect((db["refusals"] as? [String: Int])?["no_backend"] == 1)
        #expect((db["refusals"] as? [String: Int])?["deny"] == 1)
        #expect(services[0]["rates"] is NSNull)
        let backends = try #require(db["backends"] as? [[String: Any]])
        let listed = try Self.object(try #require(inputs.controller.showBackends(service: "db", json: true).body.first))
        let backendKeys = Set(try #require((listed["backends"] as? [[String: Any]])?.first).keys)
        for backend in backends {
            #expect(backendKeys.isSubset(of: Set(backend.keys)))
            #expect(backend["effective_weight"] != nil)
            #expect(backend.keys.contains("rates"))
        }
        #expect(backends.map { $0["state"] as? String } == ["ready", "drain"])
        #expect(backends[1]["effective_weight"] as? Int == 3)
    }

    @Test func sinceAddsTheHistoryAfterIt() throws {
        let document = try Self.object(StatusDocument.json(Self.inputs(), since: 0))
        let history = try #require(document["history"] as? [String: Any])
        #expect(history["resolution_seconds"] as? Int == 1)
        #expect((history["subjects"] as? [[String: Any]])?.count == 1)
        let none = try Self.object(StatusDocument.json(Self.inputs(), since: 100))
        #expect(((none["history"] as? [String: Any])?["subjects"] as? [[String: Any]])?.first?["points"] as? [[Double]] == [])
    }

    @Test func thePageIsTablesWithStatesWrittenOutAndTextEscaped() {
        let page = StatusPage.html(Self.inputs())
        #expect(page.contains("<section class=\"service\" data-service=\"db\">"))
        #expect(page.contains("&lt;b&gt;said&lt;/b&gt; &quot;no&quot;"))
        #expect(!page.contains("<b>said"))
        #expect(page.contains("data-backend=\"10.0.0.2:5432\" class=\"state-drain health-up\""))
        #expect(page.contains("<span class=\"badge drain\">drain</span>"))
        #expect(page.contains("<noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>"))
        #expect(page.contains("no_backend 1"))
        #expect(!page.contains("id=\"token\""))
        #expect(StatusPage.html(Self.inputs(admin: true)).contains("id=\"token\""))
    }

    @Test func figuresReadAsPeopleWriteThem() {
        #expect(StatusPage.bytes(512) == "512 B")
        #expect(StatusPage.bytes(1536) == "1.5 KiB")
        #expect(StatusPage.bytes(300 * 1024 * 1024) == "300 MiB")
        #expect(StatusPage.rate(2500) == "2.5k")
        #expect(StatusPage.duration(3725) == "1h 2m")
        #expect(StatusPage.clock(86399) == "23:59:59")
    }
}
