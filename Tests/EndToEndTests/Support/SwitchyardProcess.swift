import Foundation
import Glibc
import Synchronization
import Testing

/// How the proxy copies bytes between client and backend (`--relay`).
enum RelayMode: String, Sendable, CaseIterable, CustomTestStringConvertible {
    case auto, copy, splice

    var testDescription: String { rawValue }
}

/// One running `switchyard` process started by a test.
///
/// It only ever signals its own pid, and only while Foundation has not yet reaped it, so a
/// recycled pid can never be hit. On deinit a process still running is killed with SIGKILL.
final class SwitchyardProcess: Sendable {
    /// The addresses passed as `--listen`, in order.
    let listenEndpoints: [TCPEndpoint]
    private let process: Process
    private let standardErrorURL: URL
    private let standardOutputURL: URL
    /// The admin socket path this harness chose, removed on deinit (a SIGKILL leaves it behind).
    private let temporaryAdminSocket = Mutex<String?>(nil)

    var listen: TCPEndpoint { listenEndpoints[0] }
    /// The admin socket this harness chose for the process, if it chose one.
    var adminSocketPath: String? { temporaryAdminSocket.withLock { $0 } }

    /// Waits until the proxy itself counts no open client connection (the readiness probe's
    /// slot is released a moment after the backend sees it close).
    func waitUntilNoOpenConnections(timeout: Double = 3) -> Bool {
        guard let path = adminSocketPath else { return false }
        return eventually(timeout: timeout, interval: 0.02) {
            (try? AdminSocket(path: path).send("show stats json").jsonObject()["open_connections"] as? Int) == 0
        }
    }
    var pid: pid_t { process.processIdentifier }

    /// CPU seconds (user + system, every thread) the process has used, from /proc/PID/stat.
    func cpuSeconds() -> Double? { ProcessCPU.seconds(of: pid) }
    /// This file's path, from which `repositoryRoot` and `binaryURL` find the package.
    static let harnessFile = #filePath
    var isRunning: Bool { process.isRunning }

    /// The repository's root folder, found from this file's path
    /// (<root>/Tests/EndToEndTests/Support/SwitchyardProcess.swift).
    static var repositoryRoot: URL {
        var root = URL(fileURLWithPath: harnessFile)
        for _ in 0..<4 { root.deleteLastPathComponent() }
        return root
    }

    /// The path of the binary under test: `SWITCHYARD_BIN`, else `.build/debug/switchyard`
    /// in the repository containing this file.
    static func binaryURL() throws -> URL {
        if let path = ProcessInfo.processInfo.environment["SWITCHYARD_BIN"], !path.isEmpty {
            guard FileManager.default.isExecutableFile(atPath: path) else {
                throw HarnessError("SWITCHYARD_BIN=\(path) is not an executable file")
            }
            return URL(fileURLWithPath: path)
        }
        let root = repositoryRoot
        let binary = root.appendingPathComponent(".build/debug/switchyard")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw HarnessError(
                "switchyard binary not found at \(binary.path): run `swift build` first, or set SWITCHYARD_BIN")
        }
        return binary
    }

    /// Starts the binary with exactly `arguments` and does not wait for anything; for
    /// invocations expected to exit on their own.
    /// `descriptorLimit` runs the binary under `prlimit --nofile=N:N` (same pid: prlimit execs it).
    /// `environment` is added to (and overrides) the test runner's; `launcher` runs the binary
    /// through another program that execs it, such as `systemd-socket-activate` (same pid).
    init(arguments: [String], listenEndpoints: [TCPEndpoint] = [], descriptorLimit: Int? = nil,
         environment: [String: String] = [:], launcher: (path: String, arguments: [String])? = nil) throws {
        let binary = try Self.binaryURL()
        let directory = FileManager.default.temporaryDirectory
        let stem = "switchyard-e2e-\(getpid())-\(UUID().uuidString)"
        standardErrorURL = directory.appendingPathComponent(stem + ".stderr")
        standardOutputURL = directory.appendingPathComponent(stem + ".stdout")
        _ = FileManager.default.createFile(atPath: standardErrorURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: standardOutputURL.path, contents: nil)
        self.listenEndpoints = listenEndpoints
        process = Process()
        if let launcher {
            process.executableURL = URL(fileURLWithPath: launcher.path)
            process.arguments = launcher.arguments + [binary.path] + arguments
        } else if let descriptorLimit {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/prlimit")
            process.arguments = ["--nofile=\(descriptorLimit):\(descriptorLimit)", "--", binary.path] + arguments
        } else {
            process.executableURL = binary
            process.arguments = arguments
        }
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, given in given }
        }
        process.standardInput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: standardErrorURL)
        process.standardOutput = try FileHandle(forWritingTo: standardOutputURL)
        try Self.runWithDefaultSignalMask(process)
    }

    /// Runs `executable` with `arguments` to completion (at most `timeout` seconds), its output
    /// (stdout and stderr together) captured in a temporary file.
    static func runTool(_ executable: String, _ arguments: [String], timeout: Double = 30) throws -> (status: Int32, output: String) {
        let outputPath = NSTemporaryDirectory() + "swy-tool-\(getpid())-\(UUID().uuidString).out"
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        defer { unlink(outputPath) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        process.standardOutput = handle
        process.standardError = handle
        try runWithDefaultSignalMask(process)
        guard eventually(timeout: timeout, interval: 0.01, { !process.isRunning }) else {
            Glibc.kill(process.processIdentifier, SIGKILL)
            throw HarnessError("\(executable) did not finish within \(timeout) s")
        }
        try? handle.close()
        return (process.terminationStatus, (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "")
    }

    /// Runs `process` from a short-lived thread whose signal mask is empty.
    ///
    /// A spawned child inherits the spawning thread's signal mask, and the test runner's threads
    /// block SIGTERM and SIGINT (among others). Launched from such a thread, a proxy that installs
    /// ordinary signal handlers would never see the SIGTERM the shutdown tests send. A shell or
    /// service manager starts it with nothing blocked, so the tests do too.
    static func runWithDefaultSignalMask(_ process: Process) throws {
        let outcome = Mutex<Result<Void, any Error>?>(nil)
        let thread = Thread {
            var empty = sigset_t()
            sigemptyset(&empty)
            pthread_sigmask(SIG_SETMASK, &empty, nil)
            let result = Result { try process.run() }
            outcome.withLock { $0 = result }
        }
        thread.start()
        guard eventually(timeout: 10, interval: 0.002, { outcome.withLock { $0 != nil } }) else {
            throw HarnessError("launching the switchyard process did not return within 10 s")
        }
        try outcome.withLock { $0 }?.get()
    }

    /// Starts `switchyard serve --listen … <options> <backends>` on fresh loopback ports
    /// (one per entry of `listenHosts`) and waits until every listen port accepts connections.
    convenience init(
        relay: RelayMode = .auto,
        workers: Int = 1,
        options: [String] = [],
        listenHosts: [String] = [Sockets.ipv4Loopback],
        backends: [String],
        readinessTimeout: Double = 10,
        descriptorLimit: Int? = nil
    ) throws {
        let listens = try listenHosts.map { try Sockets.freeEndpoint(host: $0) }
        var arguments = ["serve"]
        for endpoint in listens { arguments += ["--listen", endpoint.description] }
        arguments += ["--relay", relay.rawValue, "--workers", String(workers)]
        arguments += options
        // Each proxy gets its own admin socket, so tests never meet another instance's socket.
        var ownSocket: String?
        if !options.contains("--admin-socket") && !options.contains("--no-admin-socket") {
            ownSocket = Self.temporaryAdminSocketPath()
            arguments += ["--admin-socket", ownSocket!]
        }
        arguments += backends
        try self.init(arguments: arguments, listenEndpoints: listens, descriptorLimit: descriptorLimit)
        temporaryAdminSocket.withLock { $0 = ownSocket }
        try waitUntilReady(timeout: readinessTimeout)
    }

    /// A fresh path for an admin socket under the temporary directory.
    static func temporaryAdminSocketPath() -> String {
        "\(NSTemporaryDirectory())swy-e2e-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
    }

    deinit {
        kill()
        if let path = temporaryAdminSocket.withLock({ $0 }) { unlink(path) }
        try? FileManager.default.removeItem(at: standardErrorURL)
        try? FileManager.default.removeItem(at: standardOutputURL)
    }

    /// Readiness is "every listen port completes a TCP handshake". Each probe connection is
    /// closed at once without sending anything (the proxy may still relay it to a backend).
    func waitUntilReady(timeout: Double) throws {
        let deadline = Date().addingTimeInterval(timeout)
        for endpoint in listenEndpoints {
            while true {
                if !isRunning {
                    throw HarnessError(
                        "switchyard exited with status \(process.terminationStatus) before listening on \(endpoint); stderr:\n\(standardError)")
                }
                if let probe = try? TCPConnection(to: endpoint, timeout: 1) {
                    probe.close()
                    break
                }
                if Date() > deadline {
                    kill()
                    throw HarnessError("switchyard did not accept on \(endpoint) within \(timeout) s; stderr:\n\(standardError)")
                }
                usleep(20_000)
            }
        }
    }

    /// Sends SIGTERM (graceful shutdown).
    func terminate() {
        signal(SIGTERM)
    }

    /// Sends `signalNumber` to this process only, if it has not been reaped yet.
    func signal(_ signalNumber: Int32) {
        guard process.isRunning else { return }
        Glibc.kill(process.processIdentifier, signalNumber)
    }

    /// Kills this process with SIGKILL if still running and waits (bounded) for it to be reaped.
    func kill() {
        guard process.isRunning else { return }
        signal(SIGKILL)
        _ = waitForExit(timeout: 5)
    }

    /// The exit status once the process has exited, or nil if it is still running after
    /// `timeout` seconds. Death by a signal is reported as 128 + the signal number, as a shell would.
    func waitForExit(timeout: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() > deadline { return nil }
            usleep(10_000)
        }
        switch process.terminationReason {
        case .exit: return process.terminationStatus
        case .uncaughtSignal: return 128 + process.terminationStatus
        @unknown default: return process.terminationStatus
        }
    }

    /// Everything the process wrote to stderr so far.
    var standardError: String {
        (try? String(contentsOf: standardErrorURL, encoding: .utf8)) ?? ""
    }

    /// The number of open file descriptors of the process, from /proc/PID/fd.
    var openFileDescriptorCount: Int? {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd"))?.count
    }
}
