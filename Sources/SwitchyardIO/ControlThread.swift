import CSwitchyard
import Glibc

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
