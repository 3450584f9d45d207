/// The status page at `/`: a whole page rendered on the server, so that it reads as plain tables
/// with JavaScript off (it then reloads every 5 seconds), and that `/status.js` re-renders
/// every second from `/status.json`, adding charts, hover values and actions. Both render the
/// same markup: a `section.service[data-service]` per service and a `tr[data-service][data-backend]`
/// per backend whose `.state` and `.health` cells write the state out (not by colour alone).
public enum StatusPage {
    public static func html(_ inputs: StatusInputs) -> String {
        let stats = Dictionary(inputs.controller.statsFields().map { ($0.0, $0.1) }, uniquingKeysWith: { first, _ in first })
        func plain(_ key: String) -> String {
            let value = stats[key] ?? ""
            return value.hasPrefix("\"") ? String(value.dropFirst().dropLast()) : value
        }
        var process = "version \(plain("version")) (\(plain("commit"))) · pid \(plain("pid")) · up \(duration(Int(plain("uptime_seconds")) ?? 0))"
            + " · \(plain("workers")) workers · relay \(plain("relay")) · \(plain("open_connections")) open"
        if let resources = inputs.process {
            process += " · RSS \(bytes(Double(resources.residentBytes))) · \(resources.openDescriptors)/\(resources.maximumDescriptors) descriptors"
        }
        var page = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>Switchyard status</title>
            <meta name="viewport" content="width=device-width,initial-scale=1">
            <noscript><meta http-equiv="refresh" content="5"></noscript>
            <link rel="stylesheet" href="/status.css"><script src="/status.js" defer></script></head>
            <body data-csrf="\(escape(inputs.csrfToken))" data-admin="\(inputs.adminEnabled)">
            <header><h1>Switchyard</h1><p id="process">\(escape(process))</p>
            <p id="live" class="live">as of \(escape(clock(inputs.time))) UTC</p></header>

            """
        if inputs.adminEnabled {
            page += """
                <div id="admin-bar"><label>Admin token <input type="password" id="token" autocomplete="off"></label>
                <span>actions are sent with it; the page keeps it for this tab only</span></div>

                """
        }
        page += "<p id=\"message\" role=\"status\"></p>\n<main id=\"services\">\n"
        for view in StatusDocument.views(inputs) {
            page += service(view, inputs)
        }
        page += "</main>\n<div id=\"tip\" hidden></div>\n</body></html>\n"
        return page
    }

    static func service(_ view: StatusServiceView, _ inputs: StatusInputs) -> String {
        let name = view.service.name
        let rates = inputs.recorder.latest[StatusSubject(service: name)]
        let refused = view.refusals.reduce(UInt64(0)) { $0 + $1.1 }
        let reasons = view.refusals.filter { $0.1 > 0 }.map { "\($0.0) \($0.1)" }.joined(separator: ", ")
        var html = """
            <section class="service" data-service="\(escape(name))"><h2>\(escape(name))</h2>
            <table class="summary"><tr><th>Listeners</th><th>Balance</th><th>Tiers</th><th>Open</th><th>Conn/s</th><th>In/s</th><th>Out/s</th><th>Queued</th><th>Refused</th></tr>
            <tr><td>\(escape(view.service.listeners.joined(separator: ", ")))</td><td>\(escape(view.snapshot.algorithm.rawValue))</td>
            <td>\(escape(tiers(view.snapshot)))</td><td class="open">\(view.active)</td>
            <td>\(rate(rates?[0]))</td><td>\(bytesRate(rates?[1]))</td><td>\(bytesRate(rates?[2]))</td>
            <td>\(view.service.registry.queue.count)</td><td class="refused" title="\(escape(reasons))">\(refused)\(reasons.isEmpty ? "" : " (\(escape(reasons)))")</td></tr></table>
            <div class="charts" data-service="\(escape(name))" data-backend=""></div>
            <table class="backends"><thead><tr><th>Backend</th><th>State</th><th>Health</th><th>Last check</th><th>Weight</th><th>Active</th><th>Conn/s</th><th>Connect p50 / p99</th><th>Failures</th>\(inputs.adminEnabled ? "<th>Actions</th>" : "")</tr></thead><tbody>

            """
        for row in view.backends {
            let address = row.state.spec.endpoint.description
            let state = row.state.effectiveAdmin.rawValue + (row.state.removing ? " (removing)" : "")
            let health = row.state.health.isUp ? "up" : "down"
            let effective = view.effectiveWeight(row.state, at: inputs.now)
            let weight = effective == row.state.spec.weight ? "\(effective)" : "\(effective) of \(row.state.spec.weight)"
            html += """
                <tr data-service="\(escape(name))" data-backend="\(escape(address))" class="state-\(row.state.effectiveAdmin.rawValue) health-\(health)">
                <td>\(escape(address))</td><td class="state"><span class="badge \(row.state.effectiveAdmin.rawValue)">\(escape(state))</span></td>
                <td class="health"><span class="badge \(health)">\(health)</span></td><td class="check">\(escape(row.lastCheck))</td>
                <td class="weight">\(weight)</td><td class="active">\(row.active)</td><td>\(BackendFigures.text(row.figures.connectionsPerSecond))</td>
                <td>\(milliseconds(row.figures.connectP50Milliseconds)) / \(milliseconds(row.figures.connectP99Milliseconds))</td><td class="failures">\(row.failures)</td>\(inputs.adminEnabled ? "<td></td>" : "")</tr>

                """
        }
        return html + "</tbody></table></section>\n"
    }

    /// `tier 0: 2 of 3 up, 100%; tier backup: 1 of 1 up, 0%` (the share of clients each takes).
    static func tiers(_ snapshot: BackendSnapshot) -> String {
        snapshot.failover.tiers.map { tier in
            let up = tier.members.filter { snapshot.backends[$0].selectable }.count
            return "tier \(tier.name): \(up) of \(tier.members.count) up, \(Int((tier.share * 100).rounded()))%"
        }.joined(separator: "; ")
    }

    /// Text safe inside an element or a quoted attribute.
    static func escape(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }

    static func rate(_ value: Float?) -> String {
        guard let value else { return "-" }
        return scaled(Double(value), units: ["", "k", "M", "G"], step: 1000)
    }

    static func bytesRate(_ value: Float?) -> String {
        guard let value else { return "-" }
        return bytes(Double(value)) + "/s"
    }

    static func bytes(_ value: Double) -> String {
        scaled(value, units: [" B", " KiB", " MiB", " GiB", " TiB"], step: 1024)
    }

    static func scaled(_ value: Double, units: [String], step: Double) -> String {
        var value = value
        var unit = 0
        while value >= step && unit < units.count - 1 {
            value /= step
            unit += 1
        }
        let text = value >= 100 || unit == 0 && value == value.rounded() ? "\(Int(value.rounded()))" : String(format3: value).dropLast(2)
        return "\(text)\(units[unit])"
    }

    static func milliseconds(_ value: Double?) -> String {
        guard let value else { return "-" }
        return BackendFigures.text(value) + " ms"
    }

    static func duration(_ seconds: Int) -> String {
        if seconds < 60 { return "\(seconds)s" }
        if seconds < 3600 { return "\(seconds / 60)m \(seconds % 60)s" }
        if seconds < 86400 { return "\(seconds / 3600)h \(seconds % 3600 / 60)m" }
        return "\(seconds / 86400)d \(seconds % 86400 / 3600)h"
    }

    /// `HH:MM:SS` of an epoch second, UTC.
    static func clock(_ time: Int64) -> String {
        let day = Int(((time % 86400) + 86400) % 86400)
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(two(day / 3600)):\(two(day % 3600 / 60)):\(two(day % 60))"
    }
}
