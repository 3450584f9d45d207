import Foundation
import Glibc
import SwitchyardCore
import SwitchyardIO
import Testing

/// The exposition against the real Prometheus tools (Debian's `prometheus` package, installed
/// by Scripts/test): `promtool check metrics`, and a Prometheus server on loopback that scrapes
/// a MetricsServer and answers a query.
@Suite(.serialized) struct MetricsPrometheusTests {
    /// Runs `executable` with `input` on standard input; returns exit status and both outputs.
    static func run(_ executable: String, _ arguments: [String], input: [UInt8]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stdout
        try process.run()
        stdin.fileHandleForWriting.write(Data(input))
        try stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    static func sampleWithProcessFigures() -> MetricsSample {
        var sample = KnownFigures.sample
        sample.process = ProcessFigures.current()
        return sample
    }

    @Test func promtoolAcceptsTheTextExposition() throws {
        let (status, output) = try Self.run("/usr/bin/promtool", ["check", "metrics"],
                                            input: MetricsExposition.render(Self.sampleWithProcessFigures()))
        #expect(status == 0, "promtool check metrics: \(output)")
        #expect(output.isEmpty, "promtool check metrics: \(output)")
    }

    @Test func promtoolRejectsABrokenExposition() throws {
        // The check is real: a counter without _total and a missing HELP are reported.
        let broken = Array("# TYPE requests counter\nrequests 1\n".utf8)
        let (status, output) = try Self.run("/usr/bin/promtool", ["check", "metrics"], input: broken)
        #expect(status != 0)
        #expect(output.contains("_total"))
    }

    /// A free loopback port (bound, read and released; a race with another process is unlikely).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { Glibc.close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Int32 in
                guard bind(fd, pointer, length) == 0 else { return -1 }
                return getsockname(fd, pointer, &length)
            }
        }
        guard bound == 0 else { throw SystemCallError(call: "bind 127.0.0.1:0", errno: errno) }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// The value of the first series `query` returns, or nil (no data yet, or no answer).
    static func query(_ query: String, port: Int) -> String? {
        guard let connection = try? RawHTTPConnection(port: port, receiveTimeout: 2) else { return nil }
        let encoded = query.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? query
        connection.write("GET /api/v1/query?query=\(encoded) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        guard let response = connection.readResponse(), response.status == 200,
              let json = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
              let data = json["data"] as? [String: Any], let result = data["result"] as? [[String: Any]],
              let value = result.first?["value"] as? [Any], value.count == 2 else { return nil }
        return value[1] as? String
    }

    @Test(.timeLimit(.minutes(1)))
    func prometheusScrapesTheServerAndAnswersAQuery() throws {
        let metrics = try TestMetricsServer(sample: Self.sampleWithProcessFigures())
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swy-prometheus-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = directory.appendingPathComponent("prometheus.yml")
        try """
        global:
          scrape_interval: 1s
          scrape_timeout: 1s
        scrape_configs:
          - job_name: switchyard
            static_configs:
              - targets: ["127.0.0.1:\(metrics.port)"]
        """.write(to: config, atomically: true, encoding: .utf8)
        let webPort = try Self.freePort()
        let log = directory.appendingPathComponent("prometheus.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let prometheus = Process()
        prometheus.executableURL = URL(fileURLWithPath: "/usr/bin/prometheus")
        prometheus.arguments = [
            "--config.file=\(config.path)",
            "--web.listen-address=127.0.0.1:\(webPort)",
            "--storage.tsdb.path=\(directory.appendingPathComponent("data").path)",
            "--log.level=warn",
        ]
        prometheus.standardOutput = try FileHandle(forWritingTo: log)
        prometheus.standardError = try FileHandle(forWritingTo: log)
        try prometheus.run()
        defer {
            // Only the process this test started, by its pid.
            if prometheus.isRunning {
                kill(prometheus.processIdentifier, SIGTERM)
                prometheus.waitUntilExit()
            }
        }

        var accepted: String?
        let deadline = Date().addingTimeInterval(40)
        while Date() < deadline && prometheus.isRunning {
            accepted = Self.query(#"switchyard_connections_accepted_total{listener="127.0.0.1:6379"}"#, port: webPort)
            if accepted != nil { break }
            usleep(250_000)
        }
        let logText = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(accepted == "5", "prometheus log:\n\(logText)")
        #expect(Self.query(#"up{job="switchyard"}"#, port: webPort) == "1")
        #expect(Self.query(#"switchyard_backend_state{backend="10.0.0.6:6379",state="maint"}"#, port: webPort) == "1")
        #expect(Self.query(#"switchyard_session_duration_seconds_count"#, port: webPort) == "2")
        #expect(Self.query(#"switchyard_session_duration_seconds_bucket{le="0.004194304"}"#, port: webPort) == "1")
        #expect(Self.query(#"switchyard_build_info{commit="abc1234"}"#, port: webPort) == "1")
        // Prometheus asks for OpenMetrics first, so that is the parser these answers went through.
        #expect(metrics.lastFormat.withLock { $0 } == .openMetrics)
    }
}
