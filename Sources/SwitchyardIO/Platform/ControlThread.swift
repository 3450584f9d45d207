import CSwitchyard
import Glibc
import Synchronization

/// A plain pthread: the workers, and the control-plane loops (health checker, admin socket),
/// which run their own poll(2) loop and never touch the workers' rings.
///
/// Started from an ordinary function: Swift 6 closures created in top-level code crashed when
/// the thread started (see shared/IO_URING.md).
struct ControlThread: Sendable {
    private final class Start {
        let name: String
        let body: @Sendable () -> Void
        init(name: String, body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }
    }

    let handle: pthread_t

    /// Starts `body` on a new thread named `name` (at most 15 bytes show in `top -H`).
    init(name: String, _ body: @escaping @Sendable () -> Void) throws(SystemCallError) {
        let start = Unmanaged.passRetained(Start(name: name, body: body)).toOpaque()
        var handle = pthread_t()
        let result = pthread_create(&handle, nil, { argument in
            let start = Unmanaged<Start>.fromOpaque(argument!).takeRetainedValue()
            _ = swy_set_thread_name(start.name)
            start.body()
            return nil
        }, start)
        guard result == 0 else {
            Unmanaged<Start>.fromOpaque(start).release()
            throw SystemCallError(call: "pthread_create", errno: result)
        }
        self.handle = handle
    }

    /// Lets the thread's resources go when it returns, for threads nobody joins. Call once.
    func detach() {
        _ = pthread_detach(handle)
    }

    /// Waits for the thread to return. Call once, from another thread.
    func join() {
        _ = pthread_join(handle, nil)
    }
}

/// What the owner of a control-plane loop needs to stop it: a flag the loop checks, an eventfd
/// that wakes the loop's poll(2), and the loop's thread, joined on stop.
final class LoopControl: Sendable {
    let wakeup: WakeupEvent
    private let stopping = Atomic<Bool>(false)
    private let thread = Mutex<ControlThread?>(nil)

    init() throws(SystemCallError) {
        wakeup = try WakeupEvent()
    }

    deinit {
        wakeup.close()
    }

    /// Whether `stop()` was called (the loop checks it each turn).
    var isStopping: Bool { stopping.load(ordering: .acquiring) }

    /// Starts `body` on a thread named `name`. Call once.
    func start(name: String, _ body: @escaping @Sendable () -> Void) throws(SystemCallError) {
        let started = try ControlThread(name: name, body)
        thread.withLock { $0 = started }
    }

    /// Asks the loop to end, wakes it and waits for its thread to return. Safe to call twice.
    func stop() {
        stopping.store(true, ordering: .releasing)
        wakeup.signal()
        thread.withLock { current -> ControlThread? in
            defer { current = nil }
            return current
        }?.join()
    }
}
