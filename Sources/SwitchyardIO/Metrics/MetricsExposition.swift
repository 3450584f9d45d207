import Prometheus
import SwitchyardCore

/// Which text a scrape gets: the Prometheus text format 0.0.4, or OpenMetrics 1.0 when the
/// scraper's `Accept` header prefers it (Prometheus 2.x asks for OpenMetrics first).
public enum ExpositionFormat: Sendable, Equatable {
    case prometheusText
    case openMetrics

    public var contentType: String {
        switch self {
        case .prometheusText: "text/plain; version=0.0.4; charset=utf-8"
        case .openMetrics: "application/openmetrics-text; version=1.0.0; charset=utf-8"
        }
    }

    /// The format for an `Accept` header (RFC 9110 section 12.5.1): OpenMetrics when
    /// `application/openmetrics-text` is acceptable with a quality at least that of
    /// `text/plain` (or of `*/*` when `text/plain` is not named); the text format otherwise,
    /// including for a missing or unparsable header.
    public static func negotiate(accept: String?) -> ExpositionFormat {
        guard let accept else { return .prometheusText }
        var openMetrics = -1.0
        var text = -1.0
        var wildcard = -1.0
        for range in accept.split(separator: ",") {
            let parts = range.split(separator: ";").map { $0.trimmingSpaces.lowercased() }
            guard let type = parts.first else { continue }
            var quality = 1.0
            for parameter in parts.dropFirst() where parameter.hasPrefix("q=") {
                quality = Double(parameter.dropFirst(2)) ?? 0
            }
            switch type {
            case "application/openmetrics-text": openMetrics = max(openMetrics, quality)
            case "text/plain", "text/*": text = max(text, quality)
            case "*/*": wildcard = max(wildcard, quality)
            default: break
            }
        }
        let plain = text >= 0 ? text : wildcard
        return openMetrics > 0 && openMetrics >= plain ? .openMetrics : .prometheusText
    }
}

/// Renders a `MetricsSample` for a scrape.
///
/// Counters and gauges go through swift-prometheus (`PrometheusCollectorRegistry`): it writes
/// the `# HELP`/`# TYPE` lines, the sample lines and their label escaping. One registry is
/// made per family and per scrape, because the registry keeps families and series in
/// dictionaries: rendering family by family, with the series of each family sorted, makes the
/// output the same for the same figures.
///
/// Histograms are written here, in the same format, because swift-prometheus cannot carry them
/// honestly: its `Histogram` only takes one observation at a time (`record(_:)`), keeps its
/// bucket counts private and has no way to set counts or a sum. The workers' histograms arrive
/// already bucketed and merged; feeding them through `record` would mean replaying every
/// observation at a made-up value, which costs time per observation and gets `_sum` wrong.
///
/// OpenMetrics differs from the text format only in what this output uses: a counter family is
/// named without its `_total` suffix (the samples keep it), and the exposition ends with `# EOF`.
public enum MetricsExposition {
    /// The exposition of `sample` in `format`, UTF-8.
    public static func render(_ sample: MetricsSample, format: ExpositionFormat = .prometheusText) -> [UInt8] {
        var out = Writer(format: format)
        let build = sample.build
        out.gauge("switchyard_build_info", "Version and git commit of the running build; always 1.",
                  [([("version", build.version), ("commit", build.commit)], 1)])
        out.gauge("switchyard_instance_ready",
                  "Whether the instance asks for new flows (1), or is drained by 'instance drain' or withdrawing before it stops (0).",
                  [([], sample.instanceReady ? 1 : 0)])

        let listeners = sample.listeners.map { listener in
            (labels: [("service", listener.service), ("listener", listener.listener)], figures: listener.figures)
        }
        func listenerCounter(_ name: String, _ help: String, _ value: (ConnectionFigures) -> UInt64) {
            out.counter(name, help, listeners.map { ($0.labels, value($0.figures)) })
        }
        listenerCounter("switchyard_connections_accepted_total", "Client connections accepted, refused ones included.") { $0.accepted }
        out.gauge("switchyard_connections_open", "Client connections open now.",
                  listeners.map { ($0.labels, Double($0.figures.open)) })
        listenerCounter("switchyard_connections_refused_total", "Client connections closed at accept because --max-connections were open.") { $0.refused }
        out.counter("switchyard_connections_closed_total", "Client connections that ended after being served, by cause.",
                    listeners.flatMap { listener in
                        TerminationCause.servedCases.map { cause in
                            (listener.labels + [("cause", cause.label)], listener.figures.closed(cause))
                        }
                    })
        // Per-client controls.
        out.counter("switchyard_connections_rejected_total",
                    "Client connections refused by a per-client control: deny, not_allowed (outside allow), source_limit (max-connections-per-source) or source_rate (connection-rate-per-source).",
                    listeners.flatMap { listener in
                        RejectionReason.allCases.map { reason in
                            (listener.labels + [("reason", reason.label)], listener.figures.rejected(reason))
                        }
                    })
        listenerCounter("switchyard_accept_rate_pauses_total", "Times the listener paused accepting for its max-connection-rate (clients waited in the backlog).") { $0.acceptRatePauses }
        listenerCounter("switchyard_connect_attempts_total", "Backend connects started, retries included.") { $0.connectAttempts }
        listenerCounter("switchyard_connect_failures_total", "Backend connects that failed or timed out.") { $0.connectFailures }
        listenerCounter("switchyard_connect_retries_total", "Backend connects started after a failed one for the same client.") { $0.connectRetries }
        listenerCounter("switchyard_client_received_bytes_total", "Bytes received from clients.") { $0.bytesFromClients }
        listenerCounter("switchyard_client_sent_bytes_total", "Bytes sent to clients.") { $0.bytesToClients }
        listenerCounter("switchyard_accept_backoffs_total", "Times accepting paused for 100 ms because descriptors ran out (EMFILE or ENFILE).") { $0.acceptBackoffs }
        listenerCounter("switchyard_queued_total", "Clients that waited in the service's queue because every backend was at its max-connections.") { $0.queued }
        listenerCounter("switchyard_starved_receives_total", "Receives that found the provided-buffer pool empty and waited.") { $0.starvedReceives }
        listenerCounter("switchyard_parked_directions_total", "Times a stalled direction's bytes moved out of the shared provided buffers into memory of its own.") { $0.parkedDirections }
        listenerCounter("switchyard_source_port_exhausted_total", "Backend connects that found no free local port (EADDRNOTAVAIL) and tried another backend.") { $0.sourcePortExhausted }
        out.histogram("switchyard_session_duration_seconds", "Client connection lifetimes, accept to close.",
                      listeners.map { ($0.labels, $0.figures.sessionDuration) })
        out.histogram("switchyard_connect_duration_seconds", "Time taken by successful backend connects.",
                      listeners.map { ($0.labels, $0.figures.connectTime) })
        if !sample.sniRoutes.isEmpty {
            out.counter("switchyard_sni_routed_connections_total",
                        "Connections of route-by-sni listeners by route: the matched pattern, no_sni, no_match or malformed.",
                        sample.sniRoutes.map { ([("service", $0.service), ("listener", $0.listener), ("route", $0.route)], $0.count) })
        }
        if !sample.tlsHandshakes.isEmpty {
            out.counter("switchyard_tls_handshakes_total",
                        "TLS handshakes of terminating services (on their own listeners or routed by SNI): success by negotiated version, failure (version unknown).",
                        sample.tlsHandshakes.flatMap { service, figures in
                            figures.completed.sorted { $0.key < $1.key }.map { ([("service", service), ("version", $0.key), ("result", "success")], $0.value) }
                                + [([("service", service), ("version", "unknown"), ("result", "failure")], figures.totalFailed)]
                        })
            out.counter("switchyard_tls_handshake_failures_total",
                        "Failed TLS handshakes by reason: no_shared_cipher, bad_certificate, unknown_ca, timeout (tls-handshake-timeout) or protocol.",
                        sample.tlsHandshakes.flatMap { service, figures in
                            TLSHandshakeFailure.allCases.map { ([("service", service), ("reason", $0.label)], figures.failures($0)) }
                        })
            out.counter("switchyard_tls_resumed_handshakes_total", "Completed TLS handshakes that resumed a session from a ticket.",
                        sample.tlsHandshakes.map { ([("service", $0.service)], $0.figures.resumed) })
            out.histogram("switchyard_tls_handshake_duration_seconds", "Completed TLS handshakes, from accept to the handshake's end.",
                          sample.tlsHandshakes.map { ([("service", $0.service)], $0.figures.duration) })
            out.gauge("switchyard_tls_certificate_expiry_seconds",
                      "Seconds until a terminating service's certificate expires (negative once expired), as loaded at start or the last reload.",
                      sample.tlsCertificates.map { ([("service", $0.service), ("certificate", $0.certificate), ("name", $0.name)], $0.expirySeconds) })
        }
        if !sample.acceptProxyServices.isEmpty {
            var byService: [String: ConnectionFigures] = [:]
            for listener in sample.listeners where sample.acceptProxyServices.contains(listener.service) {
                byService[listener.service, default: ConnectionFigures()].merge(listener.figures)
            }
            out.counter("switchyard_proxy_header_errors_total",
                        "Clients of accept-proxy listeners closed for their PROXY header: missing, malformed, oversized, timeout or untrusted (outside accept-proxy-from).",
                        sample.acceptProxyServices.sorted().flatMap { service in
                            ProxyHeaderFailure.allCases.map { failure in
                                ([("service", service), ("cause", failure.label)], byService[service]?.proxyHeaderErrors(failure) ?? 0)
                            }
                        })
        }

        let backends = sample.backends.map { backend in
            (labels: [("service", backend.service), ("backend", backend.address)], backend: backend)
        }
        out.gauge("switchyard_backend_weight", "Configured weight of the backend (0 to 256).",
                  backends.map { ($0.labels, Double($0.backend.weight)) })
        out.gauge("switchyard_backend_up", "Whether health checks consider the backend up (1) or down (0).",
                  backends.map { ($0.labels, $0.backend.healthy ? 1 : 0) })
        out.gauge("switchyard_backend_state", "Administrative state of the backend: 1 for its state, 0 for the others.",
                  backends.flatMap { entry in
                      AdminState.allCases.map { state in
                          (entry.labels + [("state", state.rawValue)], entry.backend.state == state ? 1 : 0)
                      }
                  })
        out.gauge("switchyard_backend_active_connections", "Connections open to the backend now.",
                  backends.map { ($0.labels, Double($0.backend.active)) })
        out.counter("switchyard_backend_connections_total", "Connections made to the backend.",
                    backends.map { ($0.labels, $0.backend.connections) })
        out.counter("switchyard_backend_failures_total", "Failed connects to the backend and connections it ended with an error.",
                    backends.map { ($0.labels, $0.backend.failures) })
        out.counter("switchyard_backend_sent_bytes_total", "Bytes sent to the backend (from its clients).",
                    backends.map { ($0.labels, $0.backend.bytesToBackend) })
        out.counter("switchyard_backend_received_bytes_total", "Bytes received from the backend (for its clients).",
                    backends.map { ($0.labels, $0.backend.bytesFromBackend) })
        out.histogram("switchyard_backend_connect_duration_seconds", "Time taken by successful connects to the backend.",
                      backends.map { ($0.labels, $0.backend.connectTime) })
        out.gauge("switchyard_backend_last_check_duration_seconds", "How long the last health check of the backend took.",
                  backends.compactMap { entry in entry.backend.lastCheckSeconds.map { (entry.labels, $0) } })
        out.gauge("switchyard_backend_last_check_success", "Whether the last health check of the backend passed (1) or failed (0).",
                  backends.compactMap { entry in entry.backend.lastCheckSucceeded.map { (entry.labels, $0 ? 1 : 0) } })
        out.histogram("switchyard_backend_check_duration_seconds", "Round trips of completed health checks of the backend.",
                      backends.map { ($0.labels, $0.backend.checkDuration) })
        out.gauge("switchyard_backend_certificate_expiry_seconds", "Seconds until the certificate the backend presented to its last TLS health check expires (negative once expired).",
                  backends.compactMap { entry in entry.backend.certificateExpirySeconds.map { (entry.labels, $0) } })
        out.counter("switchyard_backend_tls_handshakes_total", "TLS handshakes with the backend (backend-tls): result ok or failed (a failure counts as a failed connect).",
                    backends.flatMap { entry in
                        entry.backend.tlsHandshakes.map { [(entry.labels + [("result", "ok")], $0.ok), (entry.labels + [("result", "failed")], $0.failed)] } ?? []
                    })

        out.gauge("switchyard_provided_buffers", "Receive buffers in the workers' provided-buffer pools.",
                  [([], Double(sample.providedBuffers))])
        out.gauge("switchyard_provided_buffers_in_use", "Receive buffers holding data now.",
                  [([], Double(sample.providedBuffersInUse))])
        out.gauge("switchyard_pipes_in_use", "Splice pipes taken from the workers' pools now.",
                  [([], Double(sample.pipesInUse))])
        out.gauge("switchyard_parked_bytes", "Bytes of stalled clients held in the workers' own memory instead of their shared receive buffers (at most parked-memory per worker).",
                  [([], Double(sample.parkedBytes))])
        out.counter("switchyard_access_log_dropped_lines_total", "Access-log lines dropped because a worker's queue was full.",
                    [([], sample.accessLogDroppedLines)])

        if let process = sample.process {
            out.counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                        seconds: process.cpuSeconds)
            out.gauge("process_resident_memory_bytes", "Resident memory size in bytes.",
                      [([], Double(process.residentMemoryBytes))])
            out.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                      [([], Double(process.virtualMemoryBytes))])
            out.gauge("process_open_fds", "Number of open file descriptors.",
                      [([], Double(process.openFileDescriptors))])
            out.gauge("process_max_fds", "Maximum number of open file descriptors.",
                      [([], Double(process.maxFileDescriptors))])
            out.gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                      [([], process.startTimeSeconds)])
        }
        if format == .openMetrics { out.bytes.append(contentsOf: "# EOF\n".utf8) }
        return out.bytes
    }

    /// Families in call order; each skipped when it has no series.
    private struct Writer {
        let format: ExpositionFormat
        var bytes: [UInt8] = []

        init(format: ExpositionFormat) {
            self.format = format
            bytes.reserveCapacity(16 * 1024)
        }

        typealias Labels = [(String, String)]

        mutating func counter(_ name: String, _ help: String, _ series: [(Labels, UInt64)]) {
            guard !series.isEmpty else { return }
            let registry = PrometheusCollectorRegistry()
            let descriptor = Self.descriptor(name, help)
            for (labels, value) in series {
                let counter = labels.isEmpty
                    ? registry.makeCounter(descriptor: descriptor)
                    : registry.makeCounter(descriptor: descriptor, labels: labels)
                counter.increment(by: Int64(clamping: value))
            }
            append(registry, counterName: name)
        }

        mutating func counter(_ name: String, _ help: String, seconds: Double) {
            let registry = PrometheusCollectorRegistry()
            registry.makeCounter(descriptor: Self.descriptor(name, help)).increment(by: max(seconds, 0))
            append(registry, counterName: name)
        }

        mutating func gauge(_ name: String, _ help: String, _ series: [(Labels, Double)]) {
            guard !series.isEmpty else { return }
            let registry = PrometheusCollectorRegistry()
            let descriptor = Self.descriptor(name, help)
            for (labels, value) in series {
                let gauge = labels.isEmpty
                    ? registry.makeGauge(descriptor: descriptor)
                    : registry.makeGauge(descriptor: descriptor, labels: labels)
                gauge.set(to: value)
            }
            append(registry, counterName: nil)
        }

        /// The whole name is given as `metricName`; an empty unit adds nothing to it.
        static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
        }

        /// One family's lines from its own registry: the `#` lines first as emitted, then the
        /// series sorted. For OpenMetrics, a counter family's `# HELP`/`# TYPE` name drops `_total`.
        private mutating func append(_ registry: PrometheusCollectorRegistry, counterName: String?) {
            var family: [UInt8] = []
            registry.emit(into: &family)
            var header: [ArraySlice<UInt8>] = []
            var series: [ArraySlice<UInt8>] = []
            for line in family.split(separator: UInt8(ascii: "\n")) {
                if line.first == UInt8(ascii: "#") { header.append(line) } else { series.append(line) }
            }
            for line in header {
                if format == .openMetrics, let counterName, counterName.hasSuffix("_total") {
                    let text = String(decoding: line, as: UTF8.self)
                    let familyName = String(counterName.dropLast("_total".count))
                    let renamed = text.replacingFirst("\(counterName) ", with: "\(familyName) ")
                    bytes.append(contentsOf: renamed.utf8)
                } else {
                    bytes.append(contentsOf: line)
                }
                bytes.append(UInt8(ascii: "\n"))
            }
            for line in series.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                bytes.append(contentsOf: line)
                bytes.append(UInt8(ascii: "\n"))
            }
        }

        /// A histogram family in the same format the registry writes: cumulative `_bucket`
        /// series at the exposed bounds and `+Inf`, then `_sum` (seconds) and `_count`.
        mutating func histogram(_ name: String, _ help: String, _ series: [(Labels, LatencyHistogram)]) {
            guard !series.isEmpty else { return }
            bytes.append(contentsOf: "# HELP \(name) \(help)\n# TYPE \(name) histogram\n".utf8)
            let rendered = series.map { (labels: Self.labelText($0.0), histogram: $0.1) }
            for (labels, histogram) in rendered.sorted(by: { $0.labels < $1.labels }) {
                let prefix = labels.isEmpty ? "" : labels + ","
                for bucket in histogram.exposedBuckets {
                    let bound = Self.decimalSeconds(nanoseconds: bucket.upperBoundNanoseconds)
                    bytes.append(contentsOf: "\(name)_bucket{\(prefix)le=\"\(bound)\"} \(bucket.cumulativeCount)\n".utf8)
                }
                bytes.append(contentsOf: "\(name)_bucket{\(prefix)le=\"+Inf\"} \(histogram.count)\n".utf8)
                let braces = labels.isEmpty ? "" : "{\(labels)}"
                bytes.append(contentsOf: "\(name)_sum\(braces) \(histogram.sumSeconds)\n".utf8)
                bytes.append(contentsOf: "\(name)_count\(braces) \(histogram.count)\n".utf8)
            }
        }

        /// `a="x",b="y"` with values escaped as the exposition formats require (`\\`, `\"`, `\n`).
        static func labelText(_ labels: Labels) -> String {
            labels.map { name, value in
                var escaped = ""
                for character in value {
                    switch character {
                    case "\\": escaped += "\\\\"
                    case "\"": escaped += "\\\""
                    case "\n": escaped += "\\n"
                    default: escaped.append(character)
                    }
                }
                return "\(name)=\"\(escaped)\""
            }.joined(separator: ",")
        }

        /// Whole nanoseconds as exact decimal seconds without an exponent: `0.000008192`, `1`, `68.719476736`.
        static func decimalSeconds(nanoseconds: UInt64) -> String {
            let whole = nanoseconds / 1_000_000_000
            var fraction = String(nanoseconds % 1_000_000_000)
            guard fraction != "0" else { return "\(whole)" }
            fraction = String(repeating: "0", count: 9 - fraction.count) + fraction
            while fraction.hasSuffix("0") { fraction.removeLast() }
            return "\(whole).\(fraction)"
        }
    }
}

private extension Substring {
    var trimmingSpaces: Substring {
        var text = self
        while text.first == " " || text.first == "\t" { text.removeFirst() }
        while text.last == " " || text.last == "\t" { text.removeLast() }
        return text
    }
}

private extension String {
    func replacingFirst(_ target: String, with replacement: String) -> String {
        guard let range = firstRange(of: target) else { return self }
        return String(self[..<range.lowerBound]) + replacement + String(self[range.upperBound...])
    }
}
