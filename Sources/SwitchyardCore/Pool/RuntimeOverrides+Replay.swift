extension RuntimeOverrides {
    /// What replaying one kept command did.
    public enum Replay: Equatable, Sendable {
        /// It changed the pool.
        case applied
        /// It changed nothing: the pool was already so, the backend is gone, or (with a note
        /// such as ` (cannot resolve HOST)`) it could not be applied.
        case changedNothing(note: String)
    }

    /// Replays `command` (a line of the file, from `commands`) on its service's `registry` with
    /// the edits the admin socket makes, where they differ only in what a replay tolerates:
    /// - `add`: the backend is added (a hostname is resolved with `resolve` only then); when
    ///   it is already there, a removal in progress is called off instead.
    /// - `remove`: the backend goes when idle, else it drains and goes once its connections
    ///   have ended (`markRemoving`). At start nothing is connected yet: it goes at once.
    /// - `weight`, `drain`, `maint`: applied when the backend is there and not already so.
    public static func replay(
        _ command: AdminCommand, on registry: BackendRegistry, resolve: (Endpoint) throws(ConfigError) -> Endpoint
    ) -> Replay {
        func attempt(_ edit: PoolEdit) -> Result<PoolEditResult, PoolEditRefusal> {
            Result { () throws(PoolEditRefusal) -> PoolEditResult in try registry.apply(edit) }
        }
        let nothing = Replay.changedNothing(note: "")
        switch command {
        case let .add(service, spec):
            switch attempt(.add(spec)) {
            case .success:
                return .applied
            case .failure(.alreadyPresent):
                let called = try? registry.apply(.cancelRemoval(spec.endpoint))
                return called?.before?.removing == true ? .applied : nothing
            case .failure(.unresolved):
                guard let endpoint = try? resolve(spec.endpoint) else {
                    return .changedNothing(note: " (cannot resolve \(spec.endpoint.host))")
                }
                var resolved = spec
                resolved.endpoint = endpoint
                return endpoint.address == nil ? nothing : replay(.add(service: service, resolved), on: registry, resolve: resolve)
            case .failure:
                return nothing
            }
        case let .remove(name):
            switch attempt(.removeWhenIdle(name.endpoint)) {
            case .success:
                return .applied
            case .failure(.busy):
                _ = try? registry.apply(.markRemoving(name.endpoint))
                return .applied
            case .failure:
                return nothing
            }
        case let .weight(name, weight):
            let result = try? attempt(.setWeight(name.endpoint, weight)).get()
            return result?.before.map { $0.spec.weight != weight } == true ? .applied : nothing
        case let .drain(name), let .maint(name):
            let state: AdminState = if case .drain = command { .drain } else { .maint }
            let result = try? attempt(.setAdminState(name.endpoint, state)).get()
            return result?.before.map { $0.admin != state } == true ? .applied : nothing
        default:
            return nothing
        }
    }
}
