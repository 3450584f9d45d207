import Synchronization
import SwitchyardCore

/// One listen address of a service, bound once per worker (`SO_REUSEPORT`).
public struct ListenerEntry: Sendable {
    /// Stable for the life of the process; never reused.
    public let id: Int
    public let service: String
    /// The address as bound (a port 0 in the configuration is the kernel's choice here).
    public let endpoint: Endpoint
    public let registry: BackendRegistry
    /// Listening sockets, one per worker, by worker index. Once published, worker `i` owns
    /// `descriptors[i]` and is the only one that closes it.
    public let descriptors: [Int32]
}

/// Every listener the workers should accept on, published as one immutable table.
public final class ListenerTable: Sendable {
    public let version: UInt64
    public let entries: [ListenerEntry]
    /// Every service by name, those without listeners included (`route-by-sni` targets).
    public let services: [String: BackendRegistry]
    /// The TLS contexts of the services that terminate TLS, by name.
    public let tls: [String: TLSServerContext]

    init(version: UInt64, entries: [ListenerEntry], services: [String: BackendRegistry], tls: [String: TLSServerContext] = [:]) {
        self.version = version
        self.entries = entries
        self.services = services
        self.tls = tls
    }
}

/// Where the instance publishes the listener table and the workers pick it up.
///
/// Thread safety: `publish` from the control side (startup, reload), serialised by the caller;
/// workers call `tableIfNewer(than:)` (one atomic load unless something changed) and
/// `acknowledge(worker:version:)` once they have adopted a table.
public final class ListenerDirectory: Sendable {
    private let table: Mutex<ListenerTable>
    private let version = Atomic<UInt64>(0)
    private let adopted: Mutex<[UInt64]>

    public init(workers: Int) {
        table = Mutex(ListenerTable(version: 0, entries: [], services: [:]))
        adopted = Mutex(Array(repeating: 0, count: workers))
    }

    public var current: ListenerTable { table.withLock { $0 } }

    /// Publishes `entries` as the new table and returns its version.
    @discardableResult
    public func publish(_ entries: [ListenerEntry], services: [String: BackendRegistry] = [:],
                        tls: [String: TLSServerContext] = [:]) -> UInt64 {
        let next = table.withLock { table -> ListenerTable in
            table = ListenerTable(version: table.version + 1, entries: entries, services: services, tls: tls)
            return table
        }
        version.store(next.version, ordering: .releasing)
        return next.version
    }

    func tableIfNewer(than known: UInt64) -> ListenerTable? {
        guard version.load(ordering: .acquiring) != known else { return nil }
        return current
    }

    func acknowledge(worker: Int, version: UInt64) {
        adopted.withLock { $0[worker] = version }
    }

    /// Whether every worker has adopted `version` (or a later one).
    public func adoptedByAll(_ version: UInt64) -> Bool {
        adopted.withLock { $0.allSatisfy { $0 >= version } }
    }
}

/// A listener as one worker holds it.
///
/// Thread ownership: the worker's thread.
final class WorkerListener {
    let id: Int
    let fd: Int32
    let endpoint: Endpoint
    /// `HOST:PORT` as bound, for the access log (built once).
    let name: String
    let service: ServicePicker
    /// This worker's figures for the listener, published on each tick.
    var figures = ConnectionFigures()
    /// Connections routed by SNI, by route (pattern, `no_sni`, `no_match`, `malformed`).
    var sniRoutes: [String: UInt64] = [:]
    /// Handshakes of a terminating listener (Worker+TLS.swift).
    var tlsHandshakes = TLSHandshakeFigures()
    var open = true
    /// A multishot accept is armed (not while backing off after EMFILE).
    var acceptArmed = false
    /// A reload removed it: it is closed once its accept has ended, never re-armed.
    var retired = false

    init(id: Int, fd: Int32, endpoint: Endpoint, service: ServicePicker) {
        self.id = id
        self.fd = fd
        self.endpoint = endpoint
        self.name = endpoint.description
        self.service = service
    }
}
