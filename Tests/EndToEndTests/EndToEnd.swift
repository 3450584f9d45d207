import Testing

/// Root of the end-to-end suites. `.serialized` is inherited by every nested suite, so only
/// one proxy runs at a time: the build machine has two cores, and parallel suites would
/// make the timing assertions (2 s "promptly", idle timeouts) flaky.
///
/// Run: `swift build -j 1 && swift test -j 1 --filter EndToEndTests`
/// (set `SWITCHYARD_BIN=/path/to/binary` to test another build).
@Suite(.serialized, .timeLimit(.minutes(1)))
enum EndToEnd {}
