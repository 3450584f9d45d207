/// The admin commands that change a backend (`drain`, `ready`, `maint`, `weight`, `add`,
/// `remove`, `shutdown`): each applies one `PoolEdit` to the service's registry and words the
/// reply, or the refusal, for the operator.
extension AdminController {
    func setAdmin(_ admin: AdminState, of name: BackendName, command: AdminCommand) -> AdminReply {
        change(name, .setAdminState(name.endpoint, admin), command: command) { before, backend in
            let open = backend.stats.active.load(ordering: .relaxed)
            switch admin {
            case .drain, .maint:
                return "\(name) \(before.admin.rawValue) -> \(admin.rawValue); \(open) open connection\(open == 1 ? "" : "s") will finish"
            case .ready:
                return "\(name) \(before.admin.rawValue) -> ready" + (backend.health.isUp ? "" : " (but health checks say it is down)")
                    + (backend.effectiveAdmin == .ready ? "" : " (but its agent says \(backend.effectiveAdmin.rawValue))")
            }
        }
    }

    func setWeight(_ weight: Int, of name: BackendName, command: AdminCommand) -> AdminReply {
        change(name, .setWeight(name.endpoint, weight), command: command) { before, _ in
            "\(name) weight \(before.spec.weight) -> \(weight)"
        }
    }

    func shutDownSessions(of name: BackendName) -> AdminReply {
        change(name, .shutDownSessions(name.endpoint), command: nil) { _, backend in
            let open = backend.stats.active.load(ordering: .relaxed)
            return "closing \(open) open connection\(open == 1 ? "" : "s") to \(name)"
        }
    }

    /// Applies `edit` to the service of the backend `name` refers to; `reply` makes the reply
    /// body from the backend before and after. A `command` the state file keeps is passed to
    /// `recordChange` once applied.
    private func change(_ name: BackendName, _ edit: PoolEdit, command: AdminCommand?,
                        reply: (_ before: BackendState, _ after: BackendState) -> String) -> AdminReply {
        let service: AdminService
        switch locate(name) {
        case let .success((found, _)): service = found
        case let .failure(reply): return reply
        }
        do {
            // The edits named here change one backend, which they refuse when it is absent.
            let result = try service.registry.apply(edit)
            if let command { recordChange(service.name, command) }
            return .success([reply(result.before!, result.after!)])
        } catch {
            return .failure(Self.refusal(error, name))
        }
    }

    /// A refused edit in the operator's words, naming the backend as `name` does.
    private static func refusal(_ refusal: PoolEditRefusal, _ name: CustomStringConvertible) -> String {
        switch refusal {
        case .unknownBackend:
            "unknown backend '\(name)'; 'show backends' lists them"
        case .alreadyPresent:
            "backend '\(name)' already exists; use 'weight' or 'ready' to change it"
        case let .busy(_, open):
            "\(name) has \(open) open connection\(open == 1 ? "" : "s"); "
                + "send 'drain \(name)', then 'wait \(name) 60s', then remove it"
        case .unresolved, .badWeight:
            refusal.description
        }
    }

    func add(_ spec: BackendSpec, to serviceName: String?) -> AdminReply {
        let all = services()
        let service: AdminService
        if let serviceName {
            guard let found = all.first(where: { $0.name == serviceName }) else {
                return .failure("unknown service '\(serviceName)'; 'show services' lists them")
            }
            service = found
        } else if all.count == 1 {
            service = all[0]
        } else {
            return .failure("name the service: add SERVICE/\(spec) (services: \(all.map(\.name).joined(separator: ", ")))")
        }
        let name = spec.endpoint.description
        let shown = serviceName.map { "\($0)/\(name)" } ?? name
        var resolved = spec
        do {
            resolved.endpoint = try resolve(spec.endpoint)
        } catch {
            return .failure(error.message)
        }
        do {
            let id = try service.registry.apply(.add(resolved)).after!.id
            recordChange(service.name, .add(service: service.name, spec))
            return .success(["added \(shown) with weight \(spec.weight) as backend \(id)"])
        } catch {
            return .failure(Self.refusal(error, shown))
        }
    }

    func remove(_ name: BackendName) -> AdminReply {
        let service: AdminService
        switch locate(name) {
        case let .success((found, _)): service = found
        case let .failure(reply): return reply
        }
        do {
            try service.registry.apply(.removeWhenIdle(name.endpoint))
            recordChange(service.name, .remove(name))
            return .success(["removed \(name)"])
        } catch {
            return .failure(Self.refusal(error, name))
        }
    }
}
