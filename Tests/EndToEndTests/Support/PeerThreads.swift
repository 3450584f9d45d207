import Foundation
import Synchronization

/// The threads a test peer starts (its accept loop, one per connection), counted so that
/// stopping the peer can wait until every one has returned.
final class PeerThreads: Sendable {
    private let running = Mutex(0)
    private let stackSize: Int

    init(stackSize: Int = 1 << 20) {
        self.stackSize = stackSize
    }

    var count: Int { running.withLock { $0 } }

    func start(_ body: @escaping @Sendable () -> Void) {
        running.withLock { $0 += 1 }
        let thread = Thread { [self] in
            body()
            running.withLock { $0 -= 1 }
        }
        thread.stackSize = stackSize
        thread.start()
    }

    /// Waits up to `timeout` seconds for every thread to return; true when they all did.
    @discardableResult
    func waitUntilDone(timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while count > 0 {
            if Date() >= deadline { return false }
            usleep(5_000)
        }
        return true
    }
}
