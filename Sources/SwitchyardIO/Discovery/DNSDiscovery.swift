import CSwitchyard
import Glibc
import Logging
import Synchronization
import SwitchyardCore

/// What a watch follows.
public enum DNSDiscoveryTarget: Hashable, Sendable, CustomStringConvertible {
    /// `dns: NAME:PORT` (or a hostname in a backend list): the A and AAAA records of `name`;
    /// every address is a backend on `port`.
    case addresses(name: DNSName, port: UInt16)
    /// `dns-srv: _service._tcp.NAME`: the SRV records of `name`; each target's addresses, on the
    /// record's port, with its weight.
    case service(name: DNSName)

    public var description: String {
        switch self {
        case let .addresses(name, port): "\(name):\(port)"
        case let .service(name): "SRV \(name)"
        }
    }
}

/// A watched name's new backend set, handed to the watch's callback.
public struct DNSBackendChange: Hashable, Sendable {
    public var target: DNSDiscoveryTarget
    /// The whole new set, sorted by address then port (the same for any order of the answers).
    public var backends: [DNSBackend]
    /// How it differs from the previous set (everything is `added` the first time).
    public var difference: DNSBackendDifference
}

/// Counters and state of one watch, for logs, the admin socket and metrics.
public struct DNSWatchStatus: Hashable, Sendable {
    public var id: DNSDiscovery.WatchID
    public var target: DNSDiscoveryTarget
    /// DNS messages sent for this watch (every attempt of every question), added up when each
    /// resolution ends.
    public var queries: Int
    /// Resolutions that failed (each kept the last known set).
    public var failures: Int
    public var consecutiveFailures: Int
    /// When the last resolution that gave a set finished (monotonic clock).
    public var lastSuccess: ContinuousClock.Instant?
    /// The same moment as wall-clock seconds since 1970, for metrics and people.
    public var lastSuccessUnixTime: Double?
    /// Why the last failed resolution failed, nil before any failure.
    public var lastFailure: DNSResolutionFailure?
    /// The last known set; nil until the first success.
    public var backends: [DNSBackend]?
    /// When the name is asked next (nil while a resolution is under way).
    public var nextQuery: ContinuousClock.Instant?
}

/// Follows DNS names on a thread of its own (`swy-dns`, off the workers) and reports each new
/// backend set through the watch's callback.
///
/// Each watch is resolved at once, then again when the smallest TTL of its answer expires
/// (clamped by its `DNSRefreshPolicy`: `dns-min-ttl`, `dns-max-ttl`). A failed resolution
/// (timeout, SERVFAIL or another error code, a malformed answer, NXDOMAIN or no address at all)
/// keeps the last known set, is logged and counted, and is retried with exponential back-off.
/// When only one address family's question of a name fails (a server that answers A and
/// REFUSES AAAA), the other family's addresses are used (`DNSAddressLookup`) and the failure is
/// logged once, not every time it recurs.
/// The callback runs only when the set changed, never for an unchanged one.
///
/// Queries go straight to the configured servers over UDP, and over TCP when an answer is
/// truncated (`DNSExchange`); every watch's questions are in flight together in one poll(2) set,
/// so a slow server delays nobody else's answers.
///
/// Threads: any thread may call `watch`, `unwatch` and `status`; `start` and `stop` from the
/// owner's thread. Callbacks run on the discovery thread, one at a time and never under a lock
/// of this class, so a callback may call `status` or `unwatch`. A watch removed by `unwatch`
/// while its callback is being called (or about to be) may see that one call complete after
/// `unwatch` returned; no further call follows.
public final class DNSDiscovery: Sendable {
    public struct WatchID: Hashable, Sendable, Comparable, CustomStringConvertible {
        public let rawValue: Int
        public static func < (left: WatchID, right: WatchID) -> Bool { left.rawValue < right.rawValue }
        public var description: String { "watch \(rawValue)" }
    }

    /// The callback of a watch: the whole new set, whenever it changes.
    public typealias ChangeHandler = @Sendable (DNSBackendChange) -> Void

    /// Questions one resolution keeps in flight at once (an SRV answer may name many targets).
    static let maximumQuestionsInFlight = 16

    public let queryPolicy: DNSQueryPolicy
    let logger: Logger
    private let control: LoopControl
    private let shared = Mutex(Shared())

    struct Watch: Sendable {
        let target: DNSDiscoveryTarget
        let policy: DNSRefreshPolicy
        let onChange: ChangeHandler
        var status: DNSWatchStatus
    }

    struct Shared: Sendable {
        var nextID = 0
        var watches: [WatchID: Watch] = [:]
        /// Bumped on every watch or unwatch, so the loop rereads `watches` only after one.
        var generation = 0
    }

    /// `queryPolicy` must have passed `validate()`. Throws if eventfd(2) fails.
    public init(queryPolicy: DNSQueryPolicy, logger: Logger = Logger(label: "switchyard.dns")) throws(SystemCallError) {
        self.queryPolicy = queryPolicy
        self.logger = logger
        self.control = try LoopControl()
    }

    /// Starts following `target`: it is resolved at once (once `start()` has run), and
    /// `onChange` gets every new set. `policy` must have passed `validate()`.
    @discardableResult
    public func watch(_ target: DNSDiscoveryTarget, policy: DNSRefreshPolicy, onChange: @escaping ChangeHandler) -> WatchID {
        let id = shared.withLock { shared -> WatchID in
            let id = WatchID(rawValue: shared.nextID)
            shared.nextID += 1
            let status = DNSWatchStatus(
                id: id, target: target, queries: 0, failures: 0, consecutiveFailures: 0,
                lastSuccess: nil, lastSuccessUnixTime: nil, lastFailure: nil, backends: nil, nextQuery: nil)
            shared.watches[id] = Watch(target: target, policy: policy, onChange: onChange, status: status)
            shared.generation += 1
            return id
        }
        control.wakeup.signal()
        return id
    }

    /// Stops following the watch; its questions in flight are dropped. Unknown ids are ignored.
    public func unwatch(_ id: WatchID) {
        shared.withLock { shared in
            if shared.watches.removeValue(forKey: id) != nil { shared.generation += 1 }
        }
        control.wakeup.signal()
    }

    /// The status of one watch, nil once unwatched.
    public func status(of id: WatchID) -> DNSWatchStatus? {
        shared.withLock { $0.watches[id]?.status }
    }

    /// Every watch's status, by id.
    public func statuses() -> [DNSWatchStatus] {
        shared.withLock { $0.watches.values.map(\.status) }.sorted { $0.id < $1.id }
    }

    /// Starts the discovery thread. Call once.
    public func start() throws(SystemCallError) {
        try control.start(name: "swy-dns") { [self] in
            var loop = DNSDiscoveryLoop(discovery: self)
            loop.run()
        }
    }

    /// Ends the discovery thread and waits for it; questions in flight are dropped. Safe to call twice.
    public func stop() {
        control.stop()
    }

    // MARK: For the loop

    var isStopping: Bool { control.isStopping }
    var wakeupDescriptor: Int32 { control.wakeup.fd }
    func drainWakeup() { control.wakeup.drain() }

    /// The watches, when they changed since `generation`.
    func watchesIfChanged(since generation: Int) -> (Int, [WatchID: (DNSDiscoveryTarget, DNSRefreshPolicy)])? {
        shared.withLock { shared in
            guard shared.generation != generation else { return nil }
            return (shared.generation, shared.watches.mapValues { ($0.target, $0.policy) })
        }
    }

    func publish(_ id: WatchID, _ update: (inout DNSWatchStatus) -> Void) {
        shared.withLock { shared in
            if shared.watches[id] != nil { update(&shared.watches[id]!.status) }
        }
    }

    func handler(of id: WatchID) -> ChangeHandler? {
        shared.withLock { $0.watches[id]?.onChange }
    }
}
