import Synchronization
import SwitchyardCore

/// The contexts of every `backend-tls` setting in the configuration, made on the control thread
/// at start and by each reload (which reads the files again), shared by the workers: each takes
/// the table when its version moved (one atomic load per connect, a lock only then).
public final class BackendTLSContexts: Sendable {
    /// The contexts in force, and the settings the latest configuration named.
    private let state = Mutex<(table: [BackendTLSSettings: TLSContext], configured: Set<BackendTLSSettings>)>(([:], []))
    private let version = Atomic<UInt64>(0)

    public init() {}

    /// One context per distinct setting in `configuration` (a service's, a backend's own); the
    /// error names the service (and backend) and the file at fault.
    public static func make(_ configuration: Configuration) throws(ConfigError) -> [BackendTLSSettings: TLSContext] {
        var made: [BackendTLSSettings: TLSContext] = [:]
        for service in configuration.services {
            var wanted: [(settings: BackendTLSSettings, place: String)] = []
            if let settings = service.settings.backendTLS { wanted.append((settings, "backend-tls")) }
            for backend in service.backends {
                if case let .on(settings)? = backend.backendTLS { wanted.append((settings, "backend \(backend.endpoint): backend-tls")) }
            }
            for (settings, place) in wanted where made[settings] == nil {
                do {
                    made[settings] = try TLSContext.backend(settings)
                } catch {
                    throw ConfigError("service \(service.name): \(place): \(error.message)")
                }
            }
        }
        return made
    }

    /// Puts `contexts` in force. Contexts of settings no longer configured stay one reload
    /// longer: a worker may still hold a snapshot of the old settings when it takes the table.
    public func replace(with contexts: [BackendTLSSettings: TLSContext]) {
        state.withLock { state in
            var table = contexts
            for settings in state.configured where table[settings] == nil { table[settings] = state.table[settings] }
            state = (table, Set(contexts.keys))
        }
        version.add(1, ordering: .releasing)
    }

    /// The table, when its version is not `known`.
    func tableIfNewer(than known: UInt64) -> (version: UInt64, table: [BackendTLSSettings: TLSContext])? {
        let current = version.load(ordering: .acquiring)
        guard current != known else { return nil }
        return (current, state.withLock { $0.table })
    }
}
