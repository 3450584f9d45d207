/// `busy-polling`: how long a worker spins on its completion queue before it sleeps in
/// `io_uring_enter`, adapted to the gaps between its completions.
///
/// A worker that sleeps pays a wake-up (an inter-processor interrupt, on a virtual machine a
/// halt and a trip through the hypervisor) each time its next completion arrives. When
/// completions come in quick succession, spinning a few microseconds first catches the next one
/// awake. The window adapts the way KVM's halt polling does (Linux
/// `Documentation/virt/kvm/halt-polling.rst`): a wait that ended within `maximum` of its start
/// grows the window (a longer spin would have caught it), a longer wait halves it, down to
/// nothing. So a worker without traffic does not spin at all (its 1 s tick wakes it after a long
/// sleep), and a busy one spins at most `maximum` per wait, plus the cost of its work.
///
/// A pure value: the worker measures the time and asks; nothing here reads a clock.
public struct BusyPollingPolicy: Sendable, Equatable {
    /// The longest spin, and the gap beyond which a wait counts as idle (nanoseconds).
    public let maximum: Int64
    /// The first window after an idle spell (nanoseconds).
    public let start: Int64
    /// How long the next wait spins before it sleeps (nanoseconds); 0: it sleeps at once.
    public private(set) var window: Int64 = 0

    public static let defaultMaximum: Int64 = 50_000
    public static let defaultStart: Int64 = 10_000

    public init(maximum: Int64 = defaultMaximum, start: Int64 = defaultStart) {
        self.maximum = max(0, maximum)
        self.start = min(max(1, start), self.maximum)
    }

    /// A wait found no completion within the window and slept; work came `nanoseconds` after the
    /// wait began (spin included).
    public mutating func waited(nanoseconds: Int64) {
        guard maximum > 0 else { return }
        if nanoseconds <= maximum {
            window = window == 0 ? start : min(maximum, window * 2)
        } else {
            window /= 2
            if window < start { window = 0 }
        }
    }
}
