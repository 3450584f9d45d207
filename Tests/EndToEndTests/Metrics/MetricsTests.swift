import Foundation
import Testing

/// `GET path` on `endpoint`; the whole response (status line, headers, body) as text.
func httpGet(_ endpoint: TCPEndpoint, _ path: String, timeout: Double = 5) throws -> String {
    let connection = try TCPConnection(to: endpoint, timeout: timeout)
    defer { connection.close() }
    try connection.send("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    return connection.readToEnd(timeout: timeout, keepingUpTo: 4 << 20).keptText
}

/// The value of the exposition line `name{labels}` (labels as written, in order), if present.
func metricValue(_ exposition: String, _ series: String) -> Double? {
    for line in exposition.split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.dropFirst(series.count + 1).split(separator: " ").first ?? "")
    }
    return nil
}

extension EndToEnd {
    /// `--metrics` and `--access-log` through the real binary.
    @Suite(.timeLimit(.minutes(2))) struct Metrics {
        @Test func aScrapeAfterKnownTrafficCountsConnectionsBytesBackendsAndCausesExactly() throws {
            let a = try TestBackend(.echo), b = try TestBackend(.echo)
            let metrics = try Sockets.freeEndpoint()
            let proxy = try AdminProxy(workers: 2, options: ["--metrics", metrics.description], backends: [a.endpoint.description, b.endpoint.description])
            let listener = proxy.listen.description
            // The readiness probe was one connection (closed by the client without a byte).
            for index in 0..<10 {
                let connection = try TCPConnection(to: proxy.listen)
                try connection.roundTrip([UInt8](repeating: UInt8(index), count: 1000))
                connection.close()
            }
            // One connection ended by `shutdown BACKEND`.
            let held = try TCPConnection(to: proxy.listen)
            try held.roundTrip(Array("hold".utf8))
            #expect(eventually(timeout: 3, interval: 0.05) {
                (try? proxy.admin.send("show stats json").jsonObject()["open_connections"] as? Int) == 1
            })
            let rows = try adminBackendRows(socketPath: proxy.admin.path)
            let holder = try #require(rows.first { $0.active == 1 })
            #expect(try proxy.admin.send("shutdown \(holder.address)").isOK)
            #expect(held.readToEnd(timeout: 3).end != .timedOut)

            let labels = #"{service="default",listener="\#(listener)"}"#
            var text = ""
            let settled = eventually(timeout: 5, interval: 0.1) {
                text = (try? httpGet(metrics, "/metrics")) ?? ""
                return metricValue(text, "switchyard_connections_closed_total{service=\"default\",listener=\"\(listener)\",cause=\"admin_shutdown\"}") == 1
                    && metricValue(text, "switchyard_connections_open\(labels)") == 0
            }
            #expect(settled, "\(text.prefix(3000))")
            #expect(metricValue(text, "switchyard_connections_accepted_total\(labels)") == 12)
            #expect(metricValue(text, "switchyard_connections_closed_total{service=\"default\",listener=\"\(listener)\",cause=\"client_close\"}") == 11)
            #expect(metricValue(text, "switchyard_client_received_bytes_total\(labels)") == 10_004)
            #expect(metricValue(text, "switchyard_client_sent_bytes_total\(labels)") == 10_004)
            #expect(metricValue(text, "switchyard_connect_attempts_total\(labels)") == 12)
            #expect(metricValue(text, "switchyard_connect_failures_total\(labels)") == 0)
            let perBackend = [a, b].map { backend in
                metricValue(text, "switchyard_backend_connections_total{service=\"default\",backend=\"\(backend.endpoint)\"}") ?? -1
            }
            #expect(perBackend.reduce(0, +) == 12, "\(perBackend)")
            #expect(perBackend.allSatisfy { $0 >= 5 }, "round robin over two backends: \(perBackend)")
            #expect(metricValue(text, "switchyard_backend_up{service=\"default\",backend=\"\(a.endpoint)\"}") == 1)
            #expect(text.contains("switchyard_build_info{"))
            #expect(text.contains("process_resident_memory_bytes "))
            #expect(text.contains("switchyard_backend_connect_duration_seconds_bucket{service=\"default\",backend=\"\(a.endpoint)\""))

            // promtool accepts the exposition.
            let file = NSTemporaryDirectory() + "swy-scrape-\(getpid()).txt"
            defer { unlink(file) }
            let body = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
            try body.write(toFile: file, atomically: true, encoding: .utf8)
            let check = try SwitchyardProcess.runTool("/bin/sh", ["-c", "promtool check metrics < \(file)"])
            #expect(check.status == 0, "promtool: \(check.output)")

            // show backends gains connect time and connections per second.
            let json = try proxy.admin.send("show backends json").body.joined()
            #expect(json.contains("\"connect_p99_ms\":"), "\(json)")
            #expect(!json.contains("\"connect_p99_ms\":null"), "\(json)")
        }

        @Test func aResetAndACleanCloseByTheBackendAreCountedByCause() throws {
            let resetting = try TestBackend(.reset)
            let sender = try TestBackend(.sendThenClose(byteCount: 10, seed: 1))
            let metrics = try Sockets.freeEndpoint()
            let proxy = try AdminProxy(options: ["--metrics", metrics.description], backends: [resetting.endpoint.description])
            // The only backend resets before any byte: the client is reset, counted as a backend reset.
            let client = try TCPConnection(to: proxy.listen)
            #expect(client.readToEnd(timeout: 3).end == .reset)
            client.close()
            let labels = #"service="default",listener="\#(proxy.listen)""#
            var text = ""
            #expect(eventually(timeout: 5, interval: 0.1) {
                text = (try? httpGet(metrics, "/metrics")) ?? ""
                return (metricValue(text, "switchyard_connections_closed_total{\(labels),cause=\"backend_reset\"}") ?? 0) >= 1
            }, "\(text.prefix(2000))")

            // A backend that sends and closes: a backend close.
            #expect(try proxy.admin.send("add \(sender.endpoint)").isOK)
            #expect(try proxy.admin.send("remove \(resetting.endpoint)").isOK)
            let second = try TCPConnection(to: proxy.listen)
            #expect(second.readToEnd(timeout: 3).checksum.byteCount == 10)
            second.close()
            #expect(eventually(timeout: 5, interval: 0.1) {
                text = (try? httpGet(metrics, "/metrics")) ?? ""
                return metricValue(text, "switchyard_connections_closed_total{\(labels),cause=\"backend_close\"}") == 1
            }, "\(text.prefix(2000))")
        }

        @Test func healthzAnswers200WhileABackendIsSelectableAnd503WhenNone() throws {
            let a = try TestBackend(.echo)
            let metrics = try Sockets.freeEndpoint()
            let proxy = try AdminProxy(options: ["--metrics", metrics.description], backends: [a.endpoint.description])
            #expect(try httpGet(metrics, "/healthz").hasPrefix("HTTP/1.1 200"))
            #expect(try proxy.admin.send("drain \(a.endpoint)").isOK)
            #expect(try httpGet(metrics, "/healthz").hasPrefix("HTTP/1.1 503"))
            #expect(try httpGet(metrics, "/nope").hasPrefix("HTTP/1.1 404"))
        }

        @Test func badHTTPOnTheMetricsPortLeavesTheProxyRelaying() throws {
            let a = try TestBackend(.echo)
            let metrics = try Sockets.freeEndpoint()
            let proxy = try AdminProxy(options: ["--metrics", metrics.description], backends: [a.endpoint.description])
            let relayed = try TCPConnection(to: proxy.listen)
            // Garbage, a 1 MiB header, and a client that never finishes its request.
            let garbage = try TCPConnection(to: metrics)
            try? garbage.send([UInt8](repeating: 0xFF, count: 4096))
            let huge = try TCPConnection(to: metrics)
            try? huge.send("GET /metrics HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 1 << 20) + "\r\n\r\n")
            let silent = try TCPConnection(to: metrics)
            try silent.send("GET /met")
            try relayed.roundTrip(Array("still relaying".utf8))
            #expect(huge.readToEnd(timeout: 5, keepingUpTo: 64).keptText.hasPrefix("HTTP/1.1 431"))
            #expect(try httpGet(metrics, "/metrics").contains("switchyard_connections_accepted_total"))
            try relayed.roundTrip(Array("and still".utf8))
            _ = (garbage, silent)
        }

        @Test func theAccessLogHasOneLinePerConnectionWithItsCause() throws {
            let a = try TestBackend(.echo)
            let folder = try ConfiguredProxy.makeFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let path = folder + "/access.log"
            let proxy = try AdminProxy(options: ["--access-log", path, "--access-log-format", "json"], backends: [a.endpoint.description])
            for _ in 0..<5 {
                let connection = try TCPConnection(to: proxy.listen)
                try connection.roundTrip(Array("hello".utf8))
                connection.close()
            }
            let held = try TCPConnection(to: proxy.listen)
            try held.roundTrip(Array("x".utf8))
            // Only the held connection may be open when it is shut down (the readiness probe's
            // close may still be on its way).
            #expect(eventually(timeout: 3, interval: 0.05) {
                (try? proxy.admin.send("show stats json").jsonObject()["open_connections"] as? Int) == 1
            })
            #expect(try proxy.admin.send("shutdown \(a.endpoint)").isOK)
            _ = held.readToEnd(timeout: 3)

            var lines: [[String: Any]] = []
            #expect(eventually(timeout: 5, interval: 0.1) {
                let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
                lines = text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                return lines.count == 7
            }, "\(lines.count) lines")
            // The readiness probe, five echoes and the one shut down.
            let causes = lines.compactMap { $0["cause"] as? String }
            #expect(causes.filter { $0 == "client_close" }.count == 6, "\(causes)")
            #expect(causes.filter { $0 == "admin_shutdown" }.count == 1, "\(causes)")
            let echoed = lines.filter { ($0["bytes_from_client"] as? Int) == 5 }
            #expect(echoed.count == 5)
            #expect(echoed.allSatisfy { ($0["bytes_to_client"] as? Int) == 5 && ($0["backend"] as? String) == a.endpoint.description })
            #expect(lines.allSatisfy { ($0["client_address"] as? String) == "127.0.0.1" && ($0["listener"] as? String) == proxy.listen.description })

            // SIGUSR1 reopens the file (logrotate renames it first).
            try FileManager.default.moveItem(atPath: path, toPath: path + ".1")
            proxy.process.signal(SIGUSR1)
            #expect(eventually(timeout: 3) { proxy.process.standardError.contains("access log reopened") })
            let after = try TCPConnection(to: proxy.listen)
            try after.roundTrip(Array("new file".utf8))
            after.close()
            #expect(eventually(timeout: 5, interval: 0.1) {
                ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").count == 1
            })
        }

        @Test func aRealPrometheusScrapesSwitchyardAndAnswersAQuery() throws {
            let a = try TestBackend(.echo)
            let metrics = try Sockets.freeEndpoint()
            let proxy = try AdminProxy(options: ["--metrics", metrics.description], backends: [a.endpoint.description])
            for _ in 0..<4 {
                let connection = try TCPConnection(to: proxy.listen)
                try connection.roundTrip(Array("q".utf8))
                connection.close()
            }
            let folder = try ConfiguredProxy.makeFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            try """
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
            scrape_configs:
              - job_name: switchyard
                static_configs:
                  - targets: ["\(metrics)"]
            """.write(toFile: folder + "/prometheus.yml", atomically: true, encoding: .utf8)
            let web = try Sockets.freeEndpoint()
            let prometheus = Process()
            prometheus.executableURL = URL(fileURLWithPath: "/usr/bin/prometheus")
            prometheus.arguments = [
                "--config.file=\(folder)/prometheus.yml", "--web.listen-address=\(web)",
                "--storage.tsdb.path=\(folder)/data", "--log.level=warn",
            ]
            prometheus.standardInput = FileHandle.nullDevice
            prometheus.standardOutput = FileHandle.nullDevice
            prometheus.standardError = FileHandle.nullDevice
            try SwitchyardProcess.runWithDefaultSignalMask(prometheus)
            defer {
                if prometheus.isRunning { kill(prometheus.processIdentifier, SIGKILL) }
            }
            let query = "switchyard_connections_accepted_total".addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            var answer = ""
            let answered = eventually(timeout: 40, interval: 0.5) {
                answer = (try? httpGet(web, "/api/v1/query?query=\(query)")) ?? ""
                return answer.contains("\"value\":[")
            }
            #expect(answered, "\(answer.suffix(500))")
            // Five connections: the readiness probe and four clients.
            #expect(answer.contains(#""5"]"#), "\(answer.suffix(500))")
        }
    }
}
