import CSwitchyard
import Glibc
import Logging
import SwitchyardCore

/// A checker whose thread runs a `ProbePollLoop`: its logger, and the control that stops and
/// wakes the thread.
protocol ProbeChecker: AnyObject, Sendable {
    var logger: Logger { get }
    var control: LoopControl { get }
}

/// A backend's schedule in a checker thread: when its next probe starts.
protocol ScheduledProbe {
    var nextStart: ContinuousClock.Instant { get set }
}

/// A probe in flight: its non-blocking socket, what it waits for, and when it gives up.
protocol PolledProbe {
    var fd: Int32 { get }
    /// poll(2) events the probe waits for now.
    var pollEvents: Int16 { get }
    var deadline: ContinuousClock.Instant { get }
}

/// The loop the health checker and the agent checker share: every backend has its own schedule
/// (`scheduled`) and at most one probe in flight (`inFlight`), and every probe's socket is in
/// one poll(2) set with the checker's wake-up descriptor, so a slow or silent backend never
/// delays another. Probes that find no descriptor (EMFILE, ENFILE) skip the rest of their round
/// with a rate-limited warning: this process's shortage is no verdict on a backend.
///
/// Threads: the checker's thread only.
protocol ProbePollLoop {
    associatedtype Checker: ProbeChecker
    associatedtype Schedule: ScheduledProbe
    associatedtype Probe: PolledProbe

    var checker: Checker { get }
    var scheduled: [Int: Schedule] { get set }
    var inFlight: [Int: Probe] { get set }
    var clock: ContinuousClock { get }
    var shortage: DescriptorShortage { get set }
    /// Names the probes in log lines: `health checks`/`probe`, `agent checks`/`check`.
    var probeKind: (checks: String, probe: String) { get }
    /// Prefix of the log line of a failed poll.
    var pollFailureLabel: String { get }

    /// Once per turn before polling: adopt what changed, then `startDueProbes(now:)`.
    mutating func prepareTurn(now: ContinuousClock.Instant)
    /// The time between two probes of `entry`.
    func interval(of entry: Schedule) -> Duration
    /// Whether `entry`'s due probe is skipped without a verdict (a backend in maintenance).
    func isPaused(_ entry: Schedule) -> Bool
    /// Starts the due probe of backend `id`; on EMFILE or ENFILE it calls `skipForWantOfDescriptors`.
    mutating func startProbe(id: Int, entry: Schedule, now: ContinuousClock.Instant)
    /// Handles poll events of probe `id`.
    mutating func advance(id: Int, revents: Int32)
    /// Ends every probe whose deadline has passed.
    mutating func expireProbes(now: ContinuousClock.Instant)
}

/// Whether the current round of probes found no descriptor, and the rate limit of its warning.
struct DescriptorShortage {
    /// The errno (EMFILE, ENFILE) of a probe of the current round that found no descriptor: the
    /// round's other probes are skipped without trying. nil while descriptors are to be had.
    var roundErrno: Int32?
    var skipped = SkippedProbes()
}

extension ProbePollLoop {
    func isPaused(_ entry: Schedule) -> Bool { false }

    var logger: Logger { checker.logger }

    /// Runs until the checker stops, then closes every probe's socket.
    mutating func run() {
        var pollSet: [pollfd] = []
        var pollIDs: [Int] = []
        while !checker.control.isStopping {
            prepareTurn(now: clock.now)

            pollSet.removeAll(keepingCapacity: true)
            pollIDs.removeAll(keepingCapacity: true)
            pollSet.append(pollfd(fd: checker.control.wakeup.fd, events: Int16(POLLIN), revents: 0))
            for (id, probe) in inFlight {
                pollSet.append(pollfd(fd: probe.fd, events: probe.pollEvents, revents: 0))
                pollIDs.append(id)
            }
            let ready = Descriptor.poll(&pollSet, timeout: pollTimeout(now: clock.now))
            if ready < 0 {
                if ready != -EINTR { logger.error("\(pollFailureLabel): \(errnoText(-ready))") }
                continue
            }
            if pollSet[0].revents != 0 { checker.control.wakeup.drain() }
            for (slot, id) in pollIDs.enumerated() where pollSet[slot + 1].revents != 0 {
                advance(id: id, revents: Int32(pollSet[slot + 1].revents))
            }
            expireProbes(now: clock.now)
        }
        for probe in inFlight.values { closeDescriptor(probe.fd) }
        inFlight.removeAll()
    }

    /// Starts the probe of every backend that is due and has none in flight.
    mutating func startDueProbes(now: ContinuousClock.Instant) {
        shortage.roundErrno = nil
        for (id, entry) in scheduled where entry.nextStart <= now && inFlight[id] == nil {
            // Keep the phase of the schedule; after a long stall start again from now, not in a burst.
            let interval = interval(of: entry)
            var next = entry.nextStart + interval
            if next <= now { next = now + interval }
            scheduled[id]?.nextStart = next
            if isPaused(entry) { continue }
            if let code = shortage.roundErrno {
                skipForWantOfDescriptors(code: code, now: now)
            } else {
                startProbe(id: id, entry: entry, now: now)
            }
        }
    }

    /// A probe that could not have a socket: no verdict, and a warning now and then.
    mutating func skipForWantOfDescriptors(code: Int32, now: ContinuousClock.Instant) {
        shortage.roundErrno = code
        guard let count = shortage.skipped.skipped(at: now) else { return }
        let (checks, probe) = probeKind
        logger.warning("""
            \(checks) skipped: socket: \(errnoPhrase(code)) (\(count) \(probe)\(count == 1 ? "" : "s") since the last \
            warning); no backend's state changes; warned at most every \(shortage.skipped.warningInterval.shortDescription)
            """)
    }

    /// Milliseconds until the next probe start or deadline, at least 0, at most 1 s. A published
    /// snapshot wakes the loop through the registry's publish observer.
    func pollTimeout(now: ContinuousClock.Instant) -> Int32 {
        var next = now + .seconds(1)
        for (id, entry) in scheduled where inFlight[id] == nil { next = min(next, entry.nextStart) }
        for probe in inFlight.values { next = min(next, probe.deadline) }
        guard next > now else { return 0 }
        // Round up so that the deadline has passed when poll returns.
        return Int32(min(1000, ((next - now).nanosecondsClamped + 999_999) / 1_000_000))
    }
}
