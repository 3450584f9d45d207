import Foundation
import Testing

/// Root of the end-to-end suites. `.serialized` is inherited by every nested suite, so only
/// one proxy runs at a time: the build machine has two cores, and parallel suites would
/// make the timing assertions (2 s "promptly", idle timeouts) flaky.
///
/// Run: `swift build -j 1 && swift test -j 1 --filter EndToEndTests`
/// (set `SWITCHYARD_BIN=/path/to/binary` to test another build). The time limit only stops a
/// test that hangs: a sanitizer's run on a busy machine takes several times a plain one's.
@Suite(.serialized, .timeLimit(.minutes(3)))
enum EndToEnd {}

extension EndToEnd {
    /// How many times slower than a plain build the proxy under test may be: 4 under a
    /// sanitizer (`Scripts/test --sanitize` sets `SWITCHYARD_SANITIZER`), else 1. Deadlines that
    /// bound how long something may take are multiplied by it; bounds on how soon something may
    /// happen are not.
    static var sanitizerSlowdown: Double {
        ProcessInfo.processInfo.environment["SWITCHYARD_SANITIZER"] == nil ? 1 : 4
    }
}
