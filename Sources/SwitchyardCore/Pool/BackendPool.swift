/// A service's backends while edits are applied to them: the rule of every `PoolEdit`, in one
/// switch. Pure; `BackendRegistry` runs it under its lock on a copy of its backends and
/// publishes the outcome (or nothing, when an edit is refused).
struct BackendPool {
    var backends: [BackendState]
    /// The id the next added backend gets; ids are never reused.
    var nextID: Int
    let settings: ServiceSettings
    let now: ContinuousClock.Instant

    mutating func apply(_ edit: PoolEdit) throws(PoolEditRefusal) -> PoolEditResult {
        switch edit {
        case let .setAdminState(endpoint, admin):
            return try change(endpoint) { $0.admin = admin }
        case let .setWeight(endpoint, weight):
            guard (0...BackendSpec.maximumWeight).contains(weight) else { throw .badWeight(weight) }
            return try change(endpoint) { backend in
                backend.spec.weight = weight
                backend.spec.weightGiven = true
            }
        case let .add(spec):
            guard index(of: spec.endpoint) == nil else { throw .alreadyPresent(spec.endpoint) }
            guard spec.endpoint.address != nil else { throw .unresolved(spec.endpoint) }
            return PoolEditResult(after: append(spec))
        case let .removeWhenIdle(endpoint):
            guard let index = index(of: endpoint) else { throw .unknownBackend(endpoint) }
            let open = backends[index].stats.active.load(ordering: .relaxed)
            guard open == 0 else { throw .busy(endpoint, openConnections: open) }
            return PoolEditResult(before: backends.remove(at: index))
        case let .shutDownSessions(endpoint):
            return try change(endpoint) { $0.shutDownSessions(cause: .adminShutdown) }
        case let .markRemoving(endpoint):
            return changeIfPresent(endpoint) { $0.removing = true }
        case let .cancelRemoval(endpoint):
            return changeIfPresent(endpoint) { $0.removing = false }
        case let .put(spec):
            guard index(of: spec.endpoint) != nil else { return PoolEditResult(after: append(spec)) }
            return changeIfPresent(spec.endpoint) { backend in
                backend.removing = false
                backend.spec = spec
            }
        case let .replaceSpec(spec):
            return changeIfPresent(spec.endpoint) { backend in
                let address = backend.spec.endpoint.address
                backend.spec = spec
                if backend.spec.endpoint.address == nil { backend.spec.endpoint.address = address }
            }
        case let .healthVerdict(id, verdict):
            return changeIfPresent(id: id) { $0.health = verdict }
        case let .agentVerdict(id, verdict):
            return changeIfPresent(id: id) { $0.agent = verdict }
        case let .moveAddress(endpoint, address):
            guard let index = index(of: endpoint), backends[index].spec.endpoint.address != address else {
                return PoolEditResult()
            }
            let old = backends[index].spec.endpoint.address.map { "\($0)" } ?? "?"
            backends[index].spec.endpoint.address = address
            return PoolEditResult(notes: ["\(old) -> \(address)"])
        case let .setDiscovered(found, defaultWeight):
            return PoolEditResult(notes: setDiscovered(found, defaultWeight: defaultWeight))
        case .removeFinished:
            let done = backends.filter { $0.removing && $0.stats.active.load(ordering: .relaxed) == 0 }
            backends.removeAll { backend in done.contains { $0.id == backend.id } }
            return PoolEditResult(notes: done.map { $0.spec.endpoint.description })
        case let .endRemovalGrace(ids):
            var names: [String] = []
            for index in backends.indices where ids.contains(backends[index].id) && backends[index].removing {
                backends[index].shutDownSessions(cause: .removalGrace)
                names.append(backends[index].name)
            }
            return PoolEditResult(notes: names)
        case .advanceSlowStart:
            var result = PoolEditResult()
            for index in backends.indices where backends[index].rampStartedAt != nil {
                result.republish = true
                if backends[index].rampProgress(window: settings.slowStart(of: backends[index].spec), at: now) >= 1 {
                    backends[index].rampStartedAt = nil
                }
            }
            return result
        }
    }

    // MARK: - Finding and changing one backend

    private func index(of endpoint: Endpoint) -> Int? {
        let wanted = endpoint.description
        return backends.firstIndex { $0.spec.endpoint.description == wanted }
    }

    /// Changes the backend at `endpoint`; refused when there is none.
    private mutating func change(_ endpoint: Endpoint, _ body: (inout BackendState) -> Void) throws(PoolEditRefusal) -> PoolEditResult {
        guard let index = index(of: endpoint) else { throw .unknownBackend(endpoint) }
        return change(at: index, body)
    }

    /// Changes the backend at `endpoint` if there is one.
    private mutating func changeIfPresent(_ endpoint: Endpoint, _ body: (inout BackendState) -> Void) -> PoolEditResult {
        guard let index = index(of: endpoint) else { return PoolEditResult() }
        return change(at: index, body)
    }

    /// Changes backend `id` if there is one.
    private mutating func changeIfPresent(id: Int, _ body: (inout BackendState) -> Void) -> PoolEditResult {
        guard let index = backends.firstIndex(where: { $0.id == id }) else { return PoolEditResult() }
        return change(at: index, body)
    }

    private mutating func change(at index: Int, _ body: (inout BackendState) -> Void) -> PoolEditResult {
        let before = backends[index]
        body(&backends[index])
        return PoolEditResult(before: before, after: backends[index])
    }

    /// Appends a new backend for `spec` with the next id; returns it.
    private mutating func append(_ spec: BackendSpec, discovered: Bool = false) -> BackendState {
        var backend = BackendState(id: nextID, spec: spec)
        backend.discovered = discovered
        nextID += 1
        backends.append(backend)
        return backend
    }

    // MARK: - DNS discovery

    /// `setDiscovered`: returns one log line per backend changed.
    private mutating func setDiscovered(_ found: [DNSBackend], defaultWeight: Int) -> [String] {
        var lines: [String] = []
        let wanted = Dictionary(found.map { ($0.endpoint.description, $0) }, uniquingKeysWith: { a, _ in a })
        for index in backends.indices where backends[index].discovered {
            let name = backends[index].spec.endpoint.description
            if let backend = wanted[name] {
                if backends[index].removing {
                    backends[index].removing = false
                    lines.append("\(name) is back")
                }
                let newWeight = backend.weight ?? defaultWeight
                if backends[index].spec.weight != newWeight {
                    lines.append("\(name) weight \(backends[index].spec.weight) -> \(newWeight)")
                    backends[index].spec.weight = newWeight
                }
            } else if !backends[index].removing {
                backends[index].removing = true
                lines.append("\(name) gone (drains)")
            }
        }
        let present = Set(backends.map(\.spec.endpoint.description))
        for backend in found where !present.contains(backend.endpoint.description) {
            let added = append(backend.spec(defaultWeight: defaultWeight), discovered: true)
            lines.append("\(backend.endpoint) added (weight \(added.spec.weight))")
        }
        return lines
    }
}
