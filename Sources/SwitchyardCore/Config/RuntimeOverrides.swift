/// The changes operators made through the admin socket that `--state-file` keeps across
/// restarts and reloads: drain and maint states, weights, added and removed backends.
///
/// The file is plain text, one admin command per line with the service always named, so an
/// operator can read it and a later start replays it:
///
///     # switchyard state (written by switchyard; changes made through the admin socket)
///     add pg/10.0.0.3:5432,weight=2
///     drain pg/10.0.0.1:5432
///     weight pg/10.0.0.2:5432 5
///     remove pg/10.0.0.9:5432
public struct RuntimeOverrides: Equatable, Sendable {
    public struct Override: Equatable, Sendable {
        /// drain or maint; nil is ready.
        public var state: AdminState?
        public var weight: Int?
        /// Added through the admin socket (not in the configuration).
        public var added: BackendSpec?
        /// Removed through the admin socket although the configuration lists it.
        public var removed: Bool

        public init(state: AdminState? = nil, weight: Int? = nil, added: BackendSpec? = nil, removed: Bool = false) {
            self.state = state
            self.weight = weight
            self.added = added
            self.removed = removed
        }

        var isEmpty: Bool { state == nil && weight == nil && added == nil && !removed }
    }

    /// Service name, then `HOST:PORT`.
    public private(set) var entries: [String: [String: Override]] = [:]

    public init() {}

    public var isEmpty: Bool { entries.isEmpty }

    /// Records a command the admin socket applied to `service`. Commands the file does not keep
    /// are ignored.
    public mutating func record(service: String, _ command: AdminCommand) {
        func edit(_ endpoint: Endpoint, _ body: (inout Override?) -> Void) {
            var byBackend = entries[service] ?? [:]
            var entry = byBackend[endpoint.description]
            body(&entry)
            byBackend[endpoint.description] = (entry?.isEmpty ?? true) ? nil : entry
            entries[service] = byBackend.isEmpty ? nil : byBackend
        }
        switch command {
        case let .drain(name): edit(name.endpoint) { $0 = ($0 ?? Override()).with { $0.state = .drain } }
        case let .maint(name): edit(name.endpoint) { $0 = ($0 ?? Override()).with { $0.state = .maint } }
        case let .ready(name): edit(name.endpoint) { $0?.state = nil }
        case let .weight(name, weight): edit(name.endpoint) { $0 = ($0 ?? Override()).with { $0.weight = weight } }
        case let .add(_, spec):
            edit(spec.endpoint) { entry in
                if entry?.removed == true {
                    // Back to what the configuration lists, with the weight given now.
                    entry = Override(state: nil, weight: spec.weightGiven ? spec.weight : nil)
                } else {
                    entry = Override(added: spec)
                }
            }
        case let .remove(name):
            edit(name.endpoint) { entry in
                entry = entry?.added != nil ? nil : Override(removed: true)
            }
        default:
            break
        }
    }

    /// The commands that recreate these overrides, service by service and backend by backend
    /// in name order: additions and removals first, then weights, then states.
    public var commands: [(service: String, command: AdminCommand)] {
        var result: [(String, AdminCommand)] = []
        for service in entries.keys.sorted() {
            for key in entries[service]!.keys.sorted() {
                let entry = entries[service]![key]!
                guard let endpoint = try? Endpoint(parsing: key) else { continue }
                let name = BackendName(service: service, endpoint: endpoint)
                if let added = entry.added { result.append((service, .add(service: service, added))) }
                if entry.removed { result.append((service, .remove(name))) }
                if let weight = entry.weight { result.append((service, .weight(name, weight))) }
                switch entry.state {
                case .drain?: result.append((service, .drain(name)))
                case .maint?: result.append((service, .maint(name)))
                default: break
                }
            }
        }
        return result
    }

    public static let header = "# switchyard state (written by switchyard; changes made through the admin socket)"

    /// The file's text.
    public var fileText: String {
        var lines = [Self.header]
        for (service, command) in commands { lines.append(Self.line(service: service, command)) }
        return lines.joined(separator: "\n") + "\n"
    }

    public static func line(service: String, _ command: AdminCommand) -> String {
        switch command {
        case let .add(_, spec): "add \(service)/\(spec)"
        case let .remove(name): "remove \(service)/\(name.endpoint)"
        case let .weight(name, weight): "weight \(service)/\(name.endpoint) \(weight)"
        case let .drain(name): "drain \(service)/\(name.endpoint)"
        case let .maint(name): "maint \(service)/\(name.endpoint)"
        default: "# \(command)"
        }
    }

    /// Reads a state file's text; any line that is not one of the commands above, with its
    /// service named, is an error naming `file` and the line.
    public init(parsing text: String, file: String) throws(ConfigFileError) {
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(inSetOf: " \t\r")
            if line.isEmpty || line.hasPrefix("#") { continue }
            let command: AdminCommand
            do {
                command = try AdminCommand(parsing: line)
            } catch {
                throw ConfigFileError(file: file, line: number + 1, column: 1, "not a state line: \(error.message)")
            }
            let service: String?
            switch command {
            case let .add(name, _): service = name
            case let .remove(name), let .weight(name, _), let .drain(name), let .maint(name): service = name.service
            default:
                throw ConfigFileError(file: file, line: number + 1, column: 1,
                                      "not a state line: expected add, remove, weight, drain or maint")
            }
            guard let service else {
                throw ConfigFileError(file: file, line: number + 1, column: 1, "the backend must name its service (SERVICE/HOST:PORT)")
            }
            record(service: service, command)
        }
    }
}

extension RuntimeOverrides.Override {
    func with(_ change: (inout Self) -> Void) -> Self {
        var copy = self
        change(&copy)
        return copy
    }
}

extension Substring {
    func trimmingCharacters(inSetOf characters: String) -> String {
        var text = self
        while let first = text.first, characters.contains(first) { text = text.dropFirst() }
        while let last = text.last, characters.contains(last) { text = text.dropLast() }
        return String(text)
    }
}
