import Foundation
import Glibc
import Testing

/// An HTTP request on a fresh connection; the whole response as text.
func httpRequest(_ endpoint: TCPEndpoint, _ method: String, _ path: String, headers: [String: String] = [:], body: String = "",
                 timeout: Double = 5) throws -> (status: Int, headers: String, body: String) {
    let connection = try TCPConnection(to: endpoint, timeout: timeout)
    defer { connection.close() }
    var request = "\(method) \(path) HTTP/1.1\r\nHost: \(endpoint)\r\nConnection: close\r\n"
    for (name, value) in headers { request += "\(name): \(value)\r\n" }
    if method == "POST" { request += "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: \(body.utf8.count)\r\n" }
    try connection.send(request + "\r\n" + body)
    let text = connection.readToEnd(timeout: timeout, keepingUpTo: 8 << 20).keptText
    let parts = text.components(separatedBy: "\r\n\r\n")
    let status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
    return (status, parts.first ?? "", parts.dropFirst().joined(separator: "\r\n\r\n"))
}

/// `/status.json` of `endpoint` as an object.
func statusDocument(_ endpoint: TCPEndpoint, since: Int? = nil) throws -> [String: Any] {
    let response = try httpRequest(endpoint, "GET", "/status.json" + (since.map { "?since=\($0)" } ?? ""))
    guard response.status == 200 else { throw HarnessError("status.json answered \(response.status): \(response.body)") }
    guard let object = try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any] else {
        throw HarnessError("status.json is not an object: \(response.body.prefix(200))")
    }
    return object
}

/// A two-service instance with the status page on, for the status tests (HTTP and browser).
final class StatusPageInstance: Sendable {
    let proxy: ConfiguredProxy
    let backends: [TestBackend]
    let listen: [TCPEndpoint]
    let status: TCPEndpoint
    let metrics: TCPEndpoint
    let tokenPath: String
    let statePath: String
    static let token = "status-token-\(getpid())"

    /// `sharedWithMetrics`: status and metrics on one address.
    init(admin: Bool, sharedWithMetrics: Bool = false) throws {
        backends = try (0..<3).map { _ in try TestBackend(.echo) }
        listen = try (0..<2).map { _ in try Sockets.freeEndpoint() }
        status = try Sockets.freeEndpoint()
        metrics = sharedWithMetrics ? status : try Sockets.freeEndpoint()
        let folder = try ConfiguredProxy.makeFolder()
        tokenPath = folder + "/token"
        statePath = folder + "/state"
        try ConfiguredProxy.write(Self.token + "\n", to: tokenPath)
        let adminKeys = admin ? "status-admin: true\nstatus-admin-token-file: \(tokenPath)\n" : ""
        proxy = try ConfiguredProxy(yaml: """
            metrics: \(metrics)
            status: \(status)
            state-file: \(statePath)
            \(adminKeys)defaults:
              health: {interval: 300ms, timeout: 300ms, rise: 1, fall: 1}
            services:
              web:
                listen: ["\(listen[0])"]
                backends: ["\(backends[0].endpoint)", "\(backends[1].endpoint)"]
              cache:
                listen: ["\(listen[1])"]
                balance: least-conn
                backends: ["\(backends[2].endpoint)"]
            """, listen: listen, folder: folder)
    }

    /// Echoes `count` round trips of 64 KiB of random bytes through `service`'s listener.
    func relay(_ count: Int, service: Int = 0) throws {
        for _ in 0..<count {
            let connection = try TCPConnection(to: listen[service])
            try connection.roundTrip((0..<65536).map { _ in UInt8.random(in: 0...255) })
            connection.close()
        }
    }

    /// The anti-CSRF token the page carries.
    func csrfToken() throws -> String {
        try #require((try statusDocument(status)["admin"] as? [String: Any])?["csrf_token"] as? String)
    }

    func action(_ form: String, token: String? = StatusPageInstance.token, csrf: String? = nil) throws -> (status: Int, headers: String, body: String) {
        var headers: [String: String] = [:]
        if let token { headers["Authorization"] = "Bearer \(token)" }
        headers["X-CSRF-Token"] = try csrf ?? csrfToken()
        return try httpRequest(status, "POST", "/status/action", headers: headers, body: form)
    }
}

extension EndToEnd {
    /// `--status`: the page, its data and its actions through the real binary.
    @Suite(.timeLimit(.minutes(2))) struct StatusPage {
        @Test func thePageAndItsDataShowEveryServiceAndBackendAndTheirHistory() throws {
            let instance = try StatusPageInstance(admin: false)
            try instance.relay(5)
            try instance.relay(2, service: 1)

            let page = try httpRequest(instance.status, "GET", "/")
            #expect(page.status == 200)
            #expect(page.headers.contains("Content-Security-Policy: default-src 'none'; script-src 'self'"))
            for service in ["web", "cache"] { #expect(page.body.contains("data-service=\"\(service)\"")) }
            for backend in instance.backends { #expect(page.body.contains("data-backend=\"\(backend.endpoint)\"")) }
            #expect(page.body.contains("<noscript><meta http-equiv=\"refresh\""))
            #expect(try httpRequest(instance.status, "GET", "/status.js").body.contains("/status.json"))
            #expect(try httpRequest(instance.status, "GET", "/status.css").status == 200)

            // The counters of the traffic, and rates and history once the sampler saw it.
            var document: [String: Any] = [:]
            let sampled = eventually(timeout: 8, interval: 0.5) {
                document = (try? statusDocument(instance.status, since: 0)) ?? [:]
                let history = (document["history"] as? [String: Any])?["subjects"] as? [[String: Any]] ?? []
                return history.contains { subject in
                    subject["service"] as? String == "web" && subject["backend"] is NSNull
                        && (subject["points"] as? [[Double]] ?? []).contains { $0[1] > 0 }
                }
            }
            #expect(sampled, "\(document)")
            #expect(document["schema_version"] as? Int == 1)
            let services = try #require(document["services"] as? [[String: Any]])
            #expect(Set(services.compactMap { $0["name"] as? String }) == ["web", "cache"])
            let web = try #require(services.first { $0["name"] as? String == "web" })
            #expect(web["total"] as? Int == 6)  // The harness's readiness probe and 5 round trips.
            let backends = try #require(web["backends"] as? [[String: Any]])
            #expect(backends.reduce(0) { $0 + ($1["bytes_to_backend"] as? Int ?? 0) } == 5 * 65536)
            #expect(backends.allSatisfy { $0["state"] as? String == "ready" && $0["effective_weight"] as? Int == 1 })
            let process = try #require(document["process"] as? [String: Any])
            #expect((process["rss_bytes"] as? Int ?? 0) > 0)
            #expect((process["open_fds"] as? Int ?? 0) > 0)
            #expect((document["admin"] as? [String: Any])?["enabled"] as? Bool == false)

            // The full export at both resolutions.
            let minutes = try httpRequest(instance.status, "GET", "/status/history.json?resolution=60")
            #expect(minutes.status == 200)
            #expect(minutes.body.contains("\"resolution_seconds\":60"))
            #expect(try httpRequest(instance.status, "GET", "/status/history.json?resolution=7").status == 400)
            #expect(try httpRequest(instance.status, "GET", "/status.json?since=yesterday").status == 400)
            // Metrics still answer on their own address, and not the page.
            #expect(try httpGet(instance.metrics, "/metrics").contains("switchyard_connections_accepted_total"))
            #expect(try httpRequest(instance.metrics, "GET", "/").status == 404)
        }

        @Test func aReadOnlyPageRefusesEveryAction() throws {
            let instance = try StatusPageInstance(admin: false)
            let backend = "web/\(instance.backends[0].endpoint)"
            let refused = try instance.action("backend=\(backend)&action=drain")
            #expect(refused.status == 403, "\(refused)")
            #expect(refused.body.contains("read-only"))
            #expect(try instance.proxy.admin.backends()[instance.backends[0].endpoint.description]?["state"] as? String == "ready")
            #expect(try httpRequest(instance.status, "PUT", "/status/action").status == 405)
            #expect(try httpRequest(instance.status, "POST", "/").status == 405)
        }

        @Test func anActionWithTheTokenRunsAsTheAdminSocketsCommandAndOneWithoutIsRefused() throws {
            let instance = try StatusPageInstance(admin: true, sharedWithMetrics: true)
            let name = instance.backends[1].endpoint.description
            let backend = "web/\(name)"
            let state = { try instance.proxy.admin.backends()[name]?["state"] as? String }

            for (token, csrf, expected) in [(nil, nil, 401), ("wrong", nil, 401), (StatusPageInstance.token, "forged", 403)] as [(String?, String?, Int)] {
                let refused = try instance.action("backend=\(backend)&action=drain", token: token, csrf: csrf)
                #expect(refused.status == expected, "\(refused)")
            }
            let crossSite = try httpRequest(instance.status, "POST", "/status/action",
                                            headers: ["Authorization": "Bearer \(StatusPageInstance.token)", "X-CSRF-Token": try instance.csrfToken(),
                                                      "Origin": "http://attacker.example"],
                                            body: "backend=\(backend)&action=drain")
            #expect(crossSite.status == 403)
            #expect(try state() == "ready")

            let drained = try instance.action("backend=\(backend)&action=drain")
            #expect(drained.status == 200, "\(drained)")
            // The admin socket's own reply and record.
            #expect(drained.body.hasPrefix("OK\n"))
            #expect(try state() == "drain")
            #expect(eventually(timeout: 3) { ((try? String(contentsOfFile: instance.statePath, encoding: .utf8)) ?? "").contains("drain \(backend)") })
            let weighted = try instance.action("backend=\(backend)&action=weight&weight=7")
            #expect(weighted.status == 200)
            #expect(try instance.proxy.admin.backends()[name]?["weight"] as? Int == 7)
            // A command the socket refuses is refused the same way, and nothing else runs.
            let unknown = try instance.action("backend=web/127.0.0.1:1&action=ready")
            #expect(unknown.status == 409)
            #expect(unknown.body.hasPrefix("ERROR: "))
            #expect(try instance.action("backend=\(backend)&action=remove").status == 400)
            // The page shares the metrics address: both answer there.
            #expect(try httpGet(instance.metrics, "/metrics").contains("switchyard_backend_weight"))
            #expect(try httpRequest(instance.status, "GET", "/").body.contains("id=\"token\""))
        }

        @Test func badHTTPToTheStatusPortLeavesTheProxyRelaying() throws {
            let instance = try StatusPageInstance(admin: true)
            // Garbage, an oversized head, an oversized body, and a client that sends half a
            // request and stalls, all at once.
            let garbage = try TCPConnection(to: instance.status)
            try garbage.send("\u{0}\u{1}NOT HTTP\r\n\r\n")
            let huge = try TCPConnection(to: instance.status)
            try huge.send("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + String(repeating: "a", count: 40_000) + "\r\n\r\n")
            let stalled = try TCPConnection(to: instance.status)
            try stalled.send("GET /status.json HTTP/1.1\r\nHo")
            let body = String(repeating: "x", count: 10_000)
            let tooLarge = try httpRequest(instance.status, "POST", "/status/action", body: body)
            #expect(tooLarge.status == 413)
            #expect(garbage.readToEnd(timeout: 5, keepingUpTo: 4096).keptText.hasPrefix("HTTP/1.1 400"))
            #expect(huge.readToEnd(timeout: 5, keepingUpTo: 4096).keptText.hasPrefix("HTTP/1.1 431"))
            try instance.relay(3)
            #expect(try httpRequest(instance.status, "GET", "/status.json").status == 200)
            stalled.close()
        }
    }
}
