import SwitchyardCore
import SwitchyardIO
import Testing

/// A known set of figures and the exact exposition it must produce.
enum KnownFigures {
    static let build = BuildInfo(version: "0.1.0", commit: "abc1234")

    static let sessionValues: [Int64] = [3_000_000, 40_000_000_000]
    static let connectValues: [Int64] = [150_000]
    static let backendConnectValues: [Int64] = [150_000, 2_000_000_000]
    static let checkValues: [Int64] = [1_500_000]

    static var listenerFigures: ConnectionFigures {
        var figures = ConnectionFigures()
        figures.accepted = 5
        figures.recordClose(.refused)
        figures.recordClose(.clientClose, sessionNanoseconds: sessionValues[0])
        figures.recordClose(.clientClose)
        figures.recordClose(.backendReset, sessionNanoseconds: sessionValues[1])
        figures.connectAttempts = 5
        figures.connectFailures = 1
        figures.connectRetries = 1
        figures.bytesFromClients = 100
        figures.bytesToClients = 2000
        figures.starvedReceives = 3
        figures.sourcePortExhausted = 4
        for value in connectValues { figures.connectTime.record(nanoseconds: value) }
        return figures
    }

    static func histogram(_ values: [Int64]) -> LatencyHistogram {
        var histogram = LatencyHistogram()
        for value in values { histogram.record(nanoseconds: value) }
        return histogram
    }

    static var sample: MetricsSample {
        MetricsSample(
            build: build,
            process: ProcessFigures(
                cpuSeconds: 1.25, residentMemoryBytes: 10_485_760, virtualMemoryBytes: 104_857_600,
                openFileDescriptors: 17, maxFileDescriptors: 1024, startTimeSeconds: 1_796_127_171.5),
            listeners: [.init(service: "default", listener: "127.0.0.1:6379", figures: listenerFigures)],
            backends: [
                // Listed out of order: the exposition sorts series.
                .init(service: "default", address: "10.0.0.6:6379", weight: 0, healthy: false, state: .maint,
                      active: 0, connections: 0, failures: 0, bytesToBackend: 0, bytesFromBackend: 0),
                .init(service: "default", address: "10.0.0.5:6379", weight: 2, healthy: true, state: .ready,
                      active: 1, connections: 4, failures: 1, bytesToBackend: 100, bytesFromBackend: 2000,
                      connectTime: histogram(backendConnectValues), lastCheckSeconds: 0.0015, lastCheckSucceeded: true,
                      checkDuration: histogram(checkValues), certificateExpirySeconds: 86_340),
            ],
            providedBuffers: 1024, providedBuffersInUse: 3, pipesInUse: 2, accessLogDroppedLines: 7)
    }

    /// The exposed bucket bounds, written out: 2^13 ns ... 2^36 ns in seconds.
    static let bounds: [(text: String, nanoseconds: Int64)] = (13...36).map { exponent in
        let nanoseconds = Int64(1) << Int64(exponent)
        let texts = [
            "0.000008192", "0.000016384", "0.000032768", "0.000065536", "0.000131072", "0.000262144",
            "0.000524288", "0.001048576", "0.002097152", "0.004194304", "0.008388608", "0.016777216",
            "0.033554432", "0.067108864", "0.134217728", "0.268435456", "0.536870912", "1.073741824",
            "2.147483648", "4.294967296", "8.589934592", "17.179869184", "34.359738368", "68.719476736",
        ]
        return (texts[exponent - 13], nanoseconds)
    }

    static func histogramLines(_ name: String, _ labels: String, _ values: [Int64]) -> [String] {
        var lines = bounds.map { bound in
            "\(name)_bucket{\(labels),le=\"\(bound.text)\"} \(values.filter { $0 <= bound.nanoseconds }.count)"
        }
        lines.append("\(name)_bucket{\(labels),le=\"+Inf\"} \(values.count)")
        lines.append("\(name)_sum{\(labels)} \(Double(values.reduce(0, +)) / 1e9)")
        lines.append("\(name)_count{\(labels)} \(values.count)")
        return lines
    }

    static let listenerLabels = #"service="default",listener="127.0.0.1:6379""#
    static let backend5 = #"service="default",backend="10.0.0.5:6379""#
    static let backend6 = #"service="default",backend="10.0.0.6:6379""#

    static func family(_ name: String, _ type: String, _ help: String, _ lines: [String]) -> [String] {
        ["# HELP \(name) \(help)", "# TYPE \(name) \(type)"] + lines
    }

    static var expectedText: [String] {
        var lines: [String] = []
        lines += family("switchyard_build_info", "gauge", "Version and git commit of the running build; always 1.",
                        [#"switchyard_build_info{version="0.1.0",commit="abc1234"} 1.0"#])
        lines += family("switchyard_instance_ready", "gauge",
                        "Whether the instance asks for new flows (1), or is drained by 'instance drain' or withdrawing before it stops (0).",
                        ["switchyard_instance_ready 1.0"])
        lines += family("switchyard_connections_accepted_total", "counter", "Client connections accepted, refused ones included.",
                        ["switchyard_connections_accepted_total{\(listenerLabels)} 5"])
        lines += family("switchyard_connections_open", "gauge", "Client connections open now.",
                        ["switchyard_connections_open{\(listenerLabels)} 1.0"])
        lines += family("switchyard_connections_refused_total", "counter", "Client connections closed at accept because --max-connections were open.",
                        ["switchyard_connections_refused_total{\(listenerLabels)} 1"])
        let closed: [(String, Int)] = [
            ("admin_shutdown", 0), ("backend_close", 0), ("backend_down", 0), ("backend_reset", 1), ("backup_preempted", 0),
            ("client_close", 2), ("client_reset", 0), ("connect_failure", 0), ("graceful_stop", 0), ("idle_timeout", 0),
            ("no_backend", 0), ("queue_full", 0), ("queue_timeout", 0), ("removal_grace", 0),
        ]
        lines += family("switchyard_connections_closed_total", "counter", "Client connections that ended after being served, by cause.",
                        closed.map { "switchyard_connections_closed_total{\(listenerLabels),cause=\"\($0.0)\"} \($0.1)" })
        lines += family("switchyard_connections_rejected_total", "counter",
                        "Client connections refused by a per-client control: deny, not_allowed (outside allow), source_limit (max-connections-per-source) or source_rate (connection-rate-per-source).",
                        ["deny", "not_allowed", "source_limit", "source_rate"].map { "switchyard_connections_rejected_total{\(listenerLabels),reason=\"\($0)\"} 0" })
        lines += family("switchyard_accept_rate_pauses_total", "counter", "Times the listener paused accepting for its max-connection-rate (clients waited in the backlog).",
                        ["switchyard_accept_rate_pauses_total{\(listenerLabels)} 0"])
        lines += family("switchyard_connect_attempts_total", "counter", "Backend connects started, retries included.",
                        ["switchyard_connect_attempts_total{\(listenerLabels)} 5"])
        lines += family("switchyard_connect_failures_total", "counter", "Backend connects that failed or timed out.",
                        ["switchyard_connect_failures_total{\(listenerLabels)} 1"])
        lines += family("switchyard_connect_retries_total", "counter", "Backend connects started after a failed one for the same client.",
                        ["switchyard_connect_retries_total{\(listenerLabels)} 1"])
        lines += family("switchyard_client_received_bytes_total", "counter", "Bytes received from clients.",
                        ["switchyard_client_received_bytes_total{\(listenerLabels)} 100"])
        lines += family("switchyard_client_sent_bytes_total", "counter", "Bytes sent to clients.",
                        ["switchyard_client_sent_bytes_total{\(listenerLabels)} 2000"])
        lines += family("switchyard_accept_backoffs_total", "counter", "Times accepting paused for 100 ms because descriptors ran out (EMFILE or ENFILE).",
                        ["switchyard_accept_backoffs_total{\(listenerLabels)} 0"])
        lines += family("switchyard_queued_total", "counter", "Clients that waited in the service's queue because every backend was at its max-connections.",
                        ["switchyard_queued_total{\(listenerLabels)} 0"])
        lines += family("switchyard_starved_receives_total", "counter", "Receives that found the provided-buffer pool empty and waited.",
                        ["switchyard_starved_receives_total{\(listenerLabels)} 3"])
        lines += family("switchyard_parked_directions_total", "counter", "Times a stalled direction's bytes moved out of the shared provided buffers into memory of its own.",
                        ["switchyard_parked_directions_total{\(listenerLabels)} 0"])
        lines += family("switchyard_source_port_exhausted_total", "counter", "Backend connects that found no free local port (EADDRNOTAVAIL) and tried another backend.",
                        ["switchyard_source_port_exhausted_total{\(listenerLabels)} 4"])
        lines += family("switchyard_session_duration_seconds", "histogram", "Client connection lifetimes, accept to close.",
                        histogramLines("switchyard_session_duration_seconds", listenerLabels, sessionValues))
        lines += family("switchyard_connect_duration_seconds", "histogram", "Time taken by successful backend connects.",
                        histogramLines("switchyard_connect_duration_seconds", listenerLabels, connectValues))
        lines += family("switchyard_backend_weight", "gauge", "Configured weight of the backend (0 to 256).",
                        ["switchyard_backend_weight{\(backend5)} 2.0", "switchyard_backend_weight{\(backend6)} 0.0"])
        lines += family("switchyard_backend_up", "gauge", "Whether health checks consider the backend up (1) or down (0).",
                        ["switchyard_backend_up{\(backend5)} 1.0", "switchyard_backend_up{\(backend6)} 0.0"])
        lines += family("switchyard_backend_state", "gauge", "Administrative state of the backend: 1 for its state, 0 for the others.", [
            "switchyard_backend_state{\(backend5),state=\"drain\"} 0.0",
            "switchyard_backend_state{\(backend5),state=\"maint\"} 0.0",
            "switchyard_backend_state{\(backend5),state=\"ready\"} 1.0",
            "switchyard_backend_state{\(backend6),state=\"drain\"} 0.0",
            "switchyard_backend_state{\(backend6),state=\"maint\"} 1.0",
            "switchyard_backend_state{\(backend6),state=\"ready\"} 0.0",
        ])
        lines += family("switchyard_backend_active_connections", "gauge", "Connections open to the backend now.",
                        ["switchyard_backend_active_connections{\(backend5)} 1.0", "switchyard_backend_active_connections{\(backend6)} 0.0"])
        lines += family("switchyard_backend_connections_total", "counter", "Connections made to the backend.",
                        ["switchyard_backend_connections_total{\(backend5)} 4", "switchyard_backend_connections_total{\(backend6)} 0"])
        lines += family("switchyard_backend_failures_total", "counter", "Failed connects to the backend and connections it ended with an error.",
                        ["switchyard_backend_failures_total{\(backend5)} 1", "switchyard_backend_failures_total{\(backend6)} 0"])
        lines += family("switchyard_backend_sent_bytes_total", "counter", "Bytes sent to the backend (from its clients).",
                        ["switchyard_backend_sent_bytes_total{\(backend5)} 100", "switchyard_backend_sent_bytes_total{\(backend6)} 0"])
        lines += family("switchyard_backend_received_bytes_total", "counter", "Bytes received from the backend (for its clients).",
                        ["switchyard_backend_received_bytes_total{\(backend5)} 2000", "switchyard_backend_received_bytes_total{\(backend6)} 0"])
        lines += family("switchyard_backend_connect_duration_seconds", "histogram", "Time taken by successful connects to the backend.",
                        histogramLines("switchyard_backend_connect_duration_seconds", backend5, backendConnectValues)
                            + histogramLines("switchyard_backend_connect_duration_seconds", backend6, []))
        lines += family("switchyard_backend_last_check_duration_seconds", "gauge", "How long the last health check of the backend took.",
                        ["switchyard_backend_last_check_duration_seconds{\(backend5)} 0.0015"])
        lines += family("switchyard_backend_last_check_success", "gauge", "Whether the last health check of the backend passed (1) or failed (0).",
                        ["switchyard_backend_last_check_success{\(backend5)} 1.0"])
        lines += family("switchyard_backend_check_duration_seconds", "histogram", "Round trips of completed health checks of the backend.",
                        histogramLines("switchyard_backend_check_duration_seconds", backend5, checkValues)
                            + histogramLines("switchyard_backend_check_duration_seconds", backend6, []))
        lines += family("switchyard_backend_certificate_expiry_seconds", "gauge",
                        "Seconds until the certificate the backend presented to its last TLS health check expires (negative once expired).",
                        ["switchyard_backend_certificate_expiry_seconds{\(backend5)} 86340.0"])
        lines += family("switchyard_provided_buffers", "gauge", "Receive buffers in the workers' provided-buffer pools.",
                        ["switchyard_provided_buffers 1024.0"])
        lines += family("switchyard_provided_buffers_in_use", "gauge", "Receive buffers holding data now.",
                        ["switchyard_provided_buffers_in_use 3.0"])
        lines += family("switchyard_pipes_in_use", "gauge", "Splice pipes taken from the workers' pools now.",
                        ["switchyard_pipes_in_use 2.0"])
        lines += family("switchyard_parked_bytes", "gauge", "Bytes of stalled clients held in the workers' own memory instead of their shared receive buffers (at most parked-memory per worker).",
                        ["switchyard_parked_bytes 0.0"])
        lines += family("switchyard_access_log_dropped_lines_total", "counter", "Access-log lines dropped because a worker's queue was full.",
                        ["switchyard_access_log_dropped_lines_total 7"])
        lines += family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
                        ["process_cpu_seconds_total 1.25"])
        lines += family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", ["process_resident_memory_bytes 10485760.0"])
        lines += family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", ["process_virtual_memory_bytes 104857600.0"])
        lines += family("process_open_fds", "gauge", "Number of open file descriptors.", ["process_open_fds 17.0"])
        lines += family("process_max_fds", "gauge", "Maximum number of open file descriptors.", ["process_max_fds 1024.0"])
        lines += family("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
                        ["process_start_time_seconds 1796127171.5"])
        return lines
    }
}

@Suite struct MetricsExpositionTests {
    static func lines(_ bytes: [UInt8]) -> [String] {
        String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    }

    @Test func knownFiguresRenderExactlyLineByLine() {
        let rendered = Self.lines(MetricsExposition.render(KnownFigures.sample))
        let expected = KnownFigures.expectedText + [""]  // the output ends with a newline
        for (index, pair) in zip(rendered, expected).enumerated() where pair.0 != pair.1 {
            Issue.record("line \(index + 1): got\n  \(pair.0)\nexpected\n  \(pair.1)")
            break
        }
        #expect(rendered.count == expected.count)
    }

    @Test func renderingIsTheSameEveryTime() {
        let first = MetricsExposition.render(KnownFigures.sample)
        for _ in 0..<5 { #expect(MetricsExposition.render(KnownFigures.sample) == first) }
    }

    @Test func openMetricsNamesCounterFamiliesWithoutTotalAndEndsWithEOF() {
        let rendered = Self.lines(MetricsExposition.render(KnownFigures.sample, format: .openMetrics))
        let expected = KnownFigures.expectedText.map { line -> String in
            for prefix in ["# HELP ", "# TYPE "] where line.hasPrefix(prefix) {
                let rest = line.dropFirst(prefix.count)
                let name = rest.prefix { $0 != " " }
                if name.hasSuffix("_total") { return prefix + name.dropLast(6) + rest.dropFirst(name.count) }
            }
            return line
        } + ["# EOF", ""]
        #expect(rendered == expected)
        #expect(rendered.contains("# TYPE switchyard_connections_accepted counter"))
        #expect(rendered.contains("switchyard_connections_accepted_total{\(KnownFigures.listenerLabels)} 5"))
    }

    @Test func histogramsMergedFromWorkersExposeTheSumOfTheirBuckets() {
        var first = ConnectionFigures()
        var second = ConnectionFigures()
        for value: Int64 in [20_000, 5_000_000] { first.sessionDuration.record(nanoseconds: value) }
        for value: Int64 in [20_000, 700_000_000, 90_000_000_000] { second.sessionDuration.record(nanoseconds: value) }
        let merged = ConnectionFigures.merged([first, second])
        let sample = MetricsSample(build: KnownFigures.build, listeners: [.init(service: "s", listener: "[::1]:80", figures: merged)])
        let rendered = Self.lines(MetricsExposition.render(sample))
        let expected = KnownFigures.histogramLines(
            "switchyard_session_duration_seconds", #"service="s",listener="[::1]:80""#,
            [20_000, 5_000_000, 20_000, 700_000_000, 90_000_000_000])
        let start = rendered.firstIndex(of: "# TYPE switchyard_session_duration_seconds histogram")
        #expect(start != nil)
        if let start {
            #expect(Array(rendered[(start + 1)...].prefix(expected.count)) == expected)
        }
        #expect(rendered.contains(#"switchyard_session_duration_seconds_bucket{service="s",listener="[::1]:80",le="+Inf"} 5"#))
        #expect(rendered.contains(#"switchyard_session_duration_seconds_bucket{service="s",listener="[::1]:80",le="68.719476736"} 4"#))
    }

    @Test func labelValuesAreEscaped() {
        let sample = MetricsSample(
            build: BuildInfo(version: "1\"2", commit: "a\\b"),
            listeners: [.init(service: "x\ny", listener: "h:1", figures: ConnectionFigures())])
        let text = String(decoding: MetricsExposition.render(sample), as: UTF8.self)
        #expect(text.contains(#"switchyard_build_info{version="1\"2",commit="a\\b"} 1.0"#))
        #expect(text.contains(#"switchyard_connections_accepted_total{service="x\ny",listener="h:1"} 0"#))
        #expect(text.contains(#"switchyard_session_duration_seconds_count{service="x\ny",listener="h:1"} 0"#))
    }

    @Test func emptyFamiliesAreLeftOut() {
        let text = String(decoding: MetricsExposition.render(MetricsSample(build: KnownFigures.build)), as: UTF8.self)
        #expect(text.contains("switchyard_build_info{"))
        #expect(!text.contains("switchyard_connections_accepted_total"))
        #expect(!text.contains("switchyard_backend_"))
        #expect(!text.contains("process_"))
        #expect(text.contains("switchyard_pipes_in_use 0.0"))
    }

    @Test(arguments: [
        (nil, ExpositionFormat.prometheusText),
        ("*/*", .prometheusText),
        ("text/plain", .prometheusText),
        ("application/openmetrics-text; version=1.0.0; charset=utf-8", .openMetrics),
        // What Prometheus 2.42 sends.
        ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1", .openMetrics),
        ("text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5", .prometheusText),
        ("application/openmetrics-text;q=0", .prometheusText),
        ("application/openmetrics-text;q=0.3, */*;q=0.2", .openMetrics),
        ("garbage;;;,,q=", .prometheusText),
    ] as [(String?, ExpositionFormat)])
    func acceptHeaderChoosesTheFormat(accept: String?, expected: ExpositionFormat) {
        #expect(ExpositionFormat.negotiate(accept: accept) == expected)
    }

    @Test func processFiguresAreReadFromProc() throws {
        let figures = try #require(ProcessFigures.current())
        #expect(figures.residentMemoryBytes > 1_000_000)
        #expect(figures.virtualMemoryBytes >= figures.residentMemoryBytes)
        #expect(figures.openFileDescriptors >= 3)
        #expect(figures.maxFileDescriptors >= figures.openFileDescriptors)
        #expect(figures.cpuSeconds > 0)
        // Started within the last day, and not in the future.
        let now = Double(Int64(clockRealtimeSeconds()))
        #expect(figures.startTimeSeconds <= now + 1 && figures.startTimeSeconds > now - 86_400)
    }
}

import Glibc

func clockRealtimeSeconds() -> Int {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return now.tv_sec
}
