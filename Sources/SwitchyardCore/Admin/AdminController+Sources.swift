/// One source as `show sources` lists it.
public struct SourceRow: Sendable, Equatable {
    public var service: String
    /// The address, or `NETWORK/LENGTH` when `source-mask` counts networks.
    public var source: String
    public var open: Int
    /// Connection attempts a second over the last second.
    public var connectionsPerSecond: Double
    /// Connections of this source refused, whatever the reason.
    public var refusals: Int

    public init(service: String, source: String, open: Int, connectionsPerSecond: Double, refusals: Int) {
        self.service = service
        self.source = source
        self.open = open
        self.connectionsPerSecond = connectionsPerSecond
        self.refusals = refusals
    }
}

extension AdminController {
    /// `show sources [SERVICE] [json]`: the rows `sources` gives, busiest first.
    func showSources(service: String?, json: Bool) -> AdminReply {
        if let service, !services().contains(where: { $0.name == service }) {
            return .failure("no service named '\(service)'")
        }
        let rows = sources(service)
        if json {
            let objects = rows.map { row in
                JSONText.object([
                    ("service", JSONText.string(row.service)),
                    ("source", JSONText.string(row.source)),
                    ("open", "\(row.open)"),
                    ("connection_rate", String(format3: row.connectionsPerSecond)),
                    ("refusals", "\(row.refusals)"),
                ])
            }
            return .success([JSONText.object([("sources", JSONText.array(objects))])])
        }
        if rows.isEmpty { return .success(["no sources seen (per-client controls count sources of services that set allow, deny or a per-source limit)"]) }
        let header = ["SERVICE", "SOURCE", "OPEN", "CONN/S", "REFUSALS"]
        let table = rows.map { row in
            [row.service, row.source, "\(row.open)", BackendFigures.text(row.connectionsPerSecond), "\(row.refusals)"]
        }
        return .success(Self.aligned([header] + table))
    }
}
