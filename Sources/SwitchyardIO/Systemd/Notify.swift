import CSwitchyard
import Glibc
import Logging
import Synchronization
import SwitchyardCore

/// Sends service notifications to systemd over the `NOTIFY_SOCKET` datagram protocol
/// (sd_notify(3)) without libsystemd: one datagram per message, to a path or an `@abstract`
/// name. A no-op when `NOTIFY_SOCKET` is unset (not started by systemd, or not `Type=notify`).
///
/// Failures are logged, never thrown: a notification that cannot be sent must not stop the
/// load balancer (systemd then times the start out, which says more than a crash would). The
/// first failure is logged as a warning; later ones are not, until a send succeeds again.
///
/// Threads: any; each send is one sendto(2) with `MSG_DONTWAIT`, so it never blocks.
public final class SystemdNotifier: Sendable {
    /// Where notifications go; nil when disabled.
    public let address: NotifySocketAddress?
    private let descriptor: Int32
    private let logger: Logger
    private let failing = Atomic<Bool>(false)
    /// CLOCK_MONOTONIC microseconds of the last `statusIfDue` send (0: none yet).
    private let lastStatus = Atomic<UInt64>(0)

    /// Reads `NOTIFY_SOCKET` (left set: a process taking over from this one must be able to
    /// notify too). An unusable value is logged and disables notifications.
    public static func fromEnvironment(logger: Logger) -> SystemdNotifier {
        SystemdNotifier(socket: getenv("NOTIFY_SOCKET").map { String(cString: $0) }, logger: logger)
    }

    /// `socket` is the variable's value; nil or empty disables notifications.
    public init(socket value: String?, logger: Logger) {
        self.logger = logger
        guard let value, !value.isEmpty else {
            address = nil
            descriptor = -1
            return
        }
        let parsed: NotifySocketAddress
        do {
            parsed = try NotifySocketAddress(parsing: value)
        } catch {
            logger.error("systemd notifications disabled: \(error.message)")
            address = nil
            descriptor = -1
            return
        }
        let fd: Int32
        do {
            fd = try systemCall("socket(AF_UNIX, SOCK_DGRAM)") { socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        } catch {
            logger.error("systemd notifications disabled: \(error)")
            address = nil
            descriptor = -1
            return
        }
        address = parsed
        descriptor = fd
    }

    deinit {
        if descriptor >= 0 { closeDescriptor(descriptor) }
    }

    public var isEnabled: Bool { descriptor >= 0 }

    /// Sends `notification`; returns whether it was sent (false when disabled or on failure,
    /// which is logged).
    @discardableResult
    public func send(_ notification: ServiceNotification) -> Bool {
        guard let address, descriptor >= 0 else { return false }
        var target = sockaddr_un()
        target.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = address.socketPathBytes
        withUnsafeMutableBytes(of: &target.sun_path) { $0.copyBytes(from: pathBytes) }
        // An abstract name is exactly the bytes given (a trailing NUL would be part of it); a
        // path is ended by the NUL the zeroed structure already holds.
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
        let length: Int
        switch address {
        case .abstract: length = pathOffset + pathBytes.count
        case .path: length = pathOffset + pathBytes.count + 1
        }
        let text = Array(notification.text.utf8)
        let sent = withUnsafePointer(to: &target) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                text.withUnsafeBytes { bytes in
                    systemCallResult {
                        sendto(descriptor, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT), socketAddress, socklen_t(length))
                    }
                }
            }
        }
        if sent < 0 {
            if !failing.exchange(true, ordering: .relaxed) {
                let error = SystemCallError(call: "sendto \(address)", errno: Int32(-sent))
                logger.warning("systemd notification not sent (\(notification.fields.map(\.name).joined(separator: ", "))): \(error); further failures are not logged until one succeeds")
            }
            return false
        }
        failing.store(false, ordering: .relaxed)
        return true
    }

    /// `READY=1`, with a `STATUS=` line when given.
    @discardableResult
    public func ready(status: String? = nil) -> Bool { send(.ready(status: status)) }

    /// `RELOADING=1` with `MONOTONIC_USEC=` now; send `ready` once the reload is done.
    @discardableResult
    public func reloading(status: String? = nil) -> Bool {
        send(.reloading(monotonicMicroseconds: Self.monotonicMicroseconds(), status: status))
    }

    /// `STOPPING=1`, with a `STATUS=` line when given.
    @discardableResult
    public func stopping(status: String? = nil) -> Bool { send(.stopping(status: status)) }

    /// `STATUS=text`.
    @discardableResult
    public func status(_ text: String) -> Bool { send(.status(text)) }

    /// `STATUS=text()` when the previous one sent this way is at least `interval` old; the
    /// text is only built when it is sent. Nothing when disabled.
    public func statusIfDue(every interval: Duration, _ text: () -> String) {
        guard isEnabled else { return }
        let now = Self.monotonicMicroseconds()
        let last = lastStatus.load(ordering: .relaxed)
        guard last == 0 || now - last >= UInt64(interval.nanosecondsClamped / 1000) else { return }
        lastStatus.store(now, ordering: .relaxed)
        send(.status(text()))
    }

    /// `MAINPID=processID` (and `READY=1` unless `ready` is false): after a takeover, this
    /// process is the service's main process.
    @discardableResult
    public func mainProcess(_ processID: Int32 = getpid(), ready: Bool = true, status: String? = nil) -> Bool {
        send(.mainProcess(Int(processID), ready: ready, status: status))
    }

    /// CLOCK_MONOTONIC in microseconds, the clock systemd's `MONOTONIC_USEC` is on.
    public static func monotonicMicroseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000 + UInt64(time.tv_nsec) / 1000
    }
}
