/// What every fuzz target shares: the hand-over to libFuzzer's driver, and the checks a target
/// makes on what a parser returned.
///
/// A target is built with `-sanitize=fuzzer,address`, which links libFuzzer. SwiftPM names an
/// executable's `main` after its module, so libFuzzer's own `main` is never linked; instead each
/// target's top-level code calls `runLibFuzzer(_:)`, which passes the command line and the
/// target's `LLVMFuzzerTestOneInput` to `LLVMFuzzerRunDriver` (libFuzzer's documented entry for
/// programs that have their own `main`).

/// The C signature libFuzzer calls for every input: a pointer to `size` bytes (not
/// NUL-terminated), returning 0.
public typealias FuzzEntry = @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32

@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ testOneInput: FuzzEntry
) -> Int32

@_silgen_name("exit")
private func exitProcess(_ status: Int32) -> Never

/// Runs libFuzzer with this process's arguments (`-max_total_time=`, corpus folders…) on
/// `testOneInput` and exits with its status: 0 when the time ran out without a failure.
public func runLibFuzzer(_ testOneInput: FuzzEntry) -> Never {
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    exitProcess(LLVMFuzzerRunDriver(&argc, &argv, testOneInput))
}

/// The input as bytes (empty when libFuzzer passes no pointer).
public func fuzzBytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
    guard let data, size > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: size))
}

/// The input as text, decoded the way Switchyard decodes outside text: invalid UTF-8 becomes
/// U+FFFD (as the admin server does with a line, and the standard library with `argv`).
public func fuzzText(_ data: UnsafePointer<UInt8>?, _ size: Int) -> String {
    String(decoding: fuzzBytes(data, size), as: UTF8.self)
}

/// Stops the run with `message` when a property a parser promises does not hold; libFuzzer
/// then saves the input that broke it as a crash.
public func fuzzCheck(
    _ condition: Bool, _ message: @autoclosure () -> String,
    file: StaticString = #fileID, line: UInt = #line
) {
    if !condition { fatalError("fuzz property failed: \(message())", file: file, line: line) }
}

/// Whether an error message fits the one-line rule: not empty and no line break, so it can be
/// sent as one admin reply line or one line of standard error.
public func isOneLine(_ message: String) -> Bool {
    !message.isEmpty && !message.contains(where: { $0.isNewline })
}
