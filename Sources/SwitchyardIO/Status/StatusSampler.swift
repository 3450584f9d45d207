import Synchronization
import SwitchyardCore

/// Keeps the status page's history: once a second (on the status listener's thread) it reads
/// every service's and backend's counters and records them in a `StatusRecorder`; requests read
/// the recorder under the same lock. Memory is fixed by the recorder's rings.
final class StatusSampler: Sendable {
    private let recorder = Mutex(StatusRecorder())

    /// Records one second of `counters` at `time` (seconds since the epoch).
    func record(time: Int64, _ counters: [StatusSubject: StatusCounters]) {
        recorder.withLock { $0.record(time: time, counters) }
    }

    /// A copy of the recorder (its rings are shared until the next record writes one).
    var snapshot: StatusRecorder { recorder.withLock { $0 } }
}
