/// One backend as `show backends json` reports it, for `switchyard admin top`.
///
/// Reads the field names of issue 10 (`address`, `state`) and falls back to the older ones
/// (`backend`, `admin`) when they are absent; `service` and `connect_p99_ms` are optional, and
/// a missing counter reads as 0, so the view works across versions of the reply.
public struct TopBackend: Sendable, Equatable, Decodable {
    public var service: String?
    public var address: String
    public var state: String
    public var health: String
    public var active: Int
    public var total: Int
    public var bytesToBackend: Int
    public var bytesFromBackend: Int
    public var connectP99Milliseconds: Double?

    public init(
        service: String? = nil, address: String, state: String, health: String, active: Int, total: Int,
        bytesToBackend: Int, bytesFromBackend: Int, connectP99Milliseconds: Double? = nil
    ) {
        self.service = service
        self.address = address
        self.state = state
        self.health = health
        self.active = active
        self.total = total
        self.bytesToBackend = bytesToBackend
        self.bytesFromBackend = bytesFromBackend
        self.connectP99Milliseconds = connectP99Milliseconds
    }

    private enum Key: String, CodingKey {
        case service, address, backend, state, admin, health, active, total
        case bytesToBackend = "bytes_to_backend"
        case bytesFromBackend = "bytes_from_backend"
        case connectP99 = "connect_p99_ms"
    }

    public init(from decoder: any Decoder) throws {
        let fields = try decoder.container(keyedBy: Key.self)
        service = try fields.decodeIfPresent(String.self, forKey: .service)
        address = try fields.decodeIfPresent(String.self, forKey: .address) ?? fields.decode(String.self, forKey: .backend)
        state = try fields.decodeIfPresent(String.self, forKey: .state) ?? fields.decodeIfPresent(String.self, forKey: .admin) ?? "?"
        health = try fields.decodeIfPresent(String.self, forKey: .health) ?? "?"
        active = try fields.decodeIfPresent(Int.self, forKey: .active) ?? 0
        total = try fields.decodeIfPresent(Int.self, forKey: .total) ?? 0
        bytesToBackend = try fields.decodeIfPresent(Int.self, forKey: .bytesToBackend) ?? 0
        bytesFromBackend = try fields.decodeIfPresent(Int.self, forKey: .bytesFromBackend) ?? 0
        connectP99Milliseconds = try fields.decodeIfPresent(Double.self, forKey: .connectP99)
    }
}

/// The body of `show backends json`: `{"backends": [...]}`.
public struct TopBackendsReply: Sendable, Decodable {
    public var backends: [TopBackend]
}

/// What `switchyard admin top` shows: the latest backends and their rates, computed from the
/// difference between two polls. Pure: the caller polls, keeps time and draws the lines.
public struct TopView: Sendable {
    public struct Row: Sendable, Equatable {
        public var backend: TopBackend
        /// New connections per second since the previous poll; nil on the first poll, for a
        /// backend that was not there before, or after a counter went backwards (re-added).
        public var connectionsPerSecond: Double?
        public var bytesToBackendPerSecond: Double?
        public var bytesFromBackendPerSecond: Double?
    }

    public private(set) var rows: [Row] = []
    private var previous: [String: TopBackend] = [:]
    private var previousTime: Duration?

    public init() {}

    /// Takes a new poll made at `time` (any monotonic clock).
    public mutating func update(_ backends: [TopBackend], at time: Duration) {
        let elapsed = previousTime.map { Double((time - $0).nanosecondsClamped) / 1e9 }
        rows = backends.map { backend in
            var row = Row(backend: backend)
            if let elapsed, elapsed > 0, let before = previous[Self.key(backend)] {
                func rate(_ now: Int, _ then: Int) -> Double? { now >= then ? Double(now - then) / elapsed : nil }
                row.connectionsPerSecond = rate(backend.total, before.total)
                row.bytesToBackendPerSecond = rate(backend.bytesToBackend, before.bytesToBackend)
                row.bytesFromBackendPerSecond = rate(backend.bytesFromBackend, before.bytesFromBackend)
            }
            return row
        }
        previous = Dictionary(backends.map { (Self.key($0), $0) }, uniquingKeysWith: { _, last in last })
        previousTime = time
    }

    private static func key(_ backend: TopBackend) -> String {
        (backend.service ?? "") + "/" + backend.address
    }

    /// The screen as lines of at most `columns` characters, at most `height` of them: a title,
    /// a summary, the table (a SERVICE column only when some backend has a service), and
    /// `status` (an error, say) on the last line when given.
    public func screen(title: String, status: String?, height: Int, columns: Int) -> [String] {
        let up = rows.filter { $0.backend.health == "up" }.count
        let active = rows.reduce(0) { $0 + $1.backend.active }
        let rate = rows.compactMap(\.connectionsPerSecond).reduce(0, +)
        var lines = [
            title,
            "\(rows.count) backend\(rows.count == 1 ? "" : "s"), \(up) up, \(active) active, \(Self.rate(rate)) conn/s",
            "",
        ]
        let withService = rows.contains { $0.backend.service != nil }
        var table: [[String]] = [
            (withService ? ["SERVICE"] : []) + ["BACKEND", "STATE", "HEALTH", "ACTIVE", "CONN/S", "TO_BACKEND/S", "FROM_BACKEND/S", "CONNECT_P99"],
        ]
        for row in rows {
            let backend = row.backend
            table.append((withService ? [backend.service ?? "-"] : []) + [
                backend.address, backend.state, backend.health, "\(backend.active)",
                row.connectionsPerSecond.map(Self.rate) ?? "-",
                row.bytesToBackendPerSecond.map(Self.bytes) ?? "-",
                row.bytesFromBackendPerSecond.map(Self.bytes) ?? "-",
                backend.connectP99Milliseconds.map(Self.milliseconds) ?? "-",
            ])
        }
        if rows.isEmpty { table.append(["no backends"]) }
        let leftAligned = withService ? 4 : 3
        lines += Self.aligned(table, leftAlignedColumns: leftAligned)
        let room = max(height - (status == nil ? 0 : 1), 1)
        if lines.count > room {
            let hidden = lines.count - room + 1
            lines = Array(lines.prefix(room - 1)) + ["... \(hidden) more (make the window taller)"]
        }
        if let status { lines.append(status) }
        return lines.map { Self.cut($0, to: columns) }
    }

    /// Columns separated by two spaces; the first `leftAlignedColumns` left-aligned, the rest
    /// (numbers) right-aligned. A row shorter than the header (the "no backends" line) is kept as is.
    static func aligned(_ rows: [[String]], leftAlignedColumns: Int) -> [String] {
        guard let header = rows.first else { return [] }
        let widths = header.indices.map { column in rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
        return rows.map { row in
            guard row.count == header.count else { return row.joined(separator: "  ") }
            return row.enumerated().map { column, cell in
                let padding = String(repeating: " ", count: widths[column] - cell.count)
                return column < leftAlignedColumns ? cell + padding : padding + cell
            }.joined(separator: "  ").trimmingTrailingSpaces
        }
    }

    static func cut(_ line: String, to columns: Int) -> String {
        line.count <= columns ? line : String(line.prefix(max(columns, 0)))
    }

    /// `0`, `0.5`, `12.3`, `1234`.
    static func rate(_ value: Double) -> String {
        if value == 0 { return "0" }
        if value >= 100 { return "\(Int(value.rounded()))" }
        return oneDecimal(value)
    }

    /// `512B`, `12.3K`, `4.5M`, `1.2G` (powers of 1024).
    static func bytes(_ value: Double) -> String {
        let units = ["B", "K", "M", "G", "T"]
        var scaled = value
        var unit = 0
        while scaled >= 1024 && unit < units.count - 1 {
            scaled /= 1024
            unit += 1
        }
        return (unit == 0 ? "\(Int(scaled.rounded()))" : oneDecimal(scaled)) + units[unit]
    }

    /// `0.84ms`, `12.3ms`, `1.20s`.
    static func milliseconds(_ value: Double) -> String {
        if value >= 1000 { return twoDecimals(value / 1000) + "s" }
        if value >= 10 { return oneDecimal(value) + "ms" }
        return twoDecimals(value) + "ms"
    }

    private static func oneDecimal(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }

    private static func twoDecimals(_ value: Double) -> String {
        let hundredths = Int((value * 100).rounded())
        let fraction = hundredths % 100
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}

private extension String {
    var trimmingTrailingSpaces: String {
        var text = self
        while text.last == " " { text.removeLast() }
        return text
    }
}
