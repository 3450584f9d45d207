import Foundation
import Glibc

/// A proxy started with `serve --config FILE` from a YAML text the test writes, with its own
/// admin socket, in a temporary folder removed on deinit (after the process was killed).
final class ConfiguredProxy: Sendable {
    let process: SwitchyardProcess
    let admin: AdminSocket
    let folder: String
    let configPath: String
    /// Whether this created `folder` (and so removes it).
    private let ownsFolder: Bool

    /// `yaml` is the file without `admin-socket`, which this adds. `listen` are the addresses the
    /// proxy must accept on before this returns.
    init(yaml: String, listen: [TCPEndpoint], extraArguments: [String] = [], folder existing: String? = nil) throws {
        folder = try existing ?? Self.makeFolder()
        ownsFolder = existing == nil
        configPath = folder + "/switchyard.yaml"
        let socket = folder + "/admin.sock"
        admin = AdminSocket(path: socket)
        try Self.write("admin-socket: \(socket)\n" + yaml, to: configPath)
        process = try SwitchyardProcess(arguments: ["serve", "--config", configPath] + extraArguments, listenEndpoints: listen)
        try process.waitUntilReady(timeout: 10)
    }

    deinit {
        process.kill()
        if ownsFolder { try? FileManager.default.removeItem(atPath: folder) }
    }

    /// Replaces the configuration file (keeping the admin socket line) for a reload.
    func rewrite(_ yaml: String) throws {
        try Self.write("admin-socket: \(admin.path)\n" + yaml, to: configPath)
    }

    static func makeFolder() throws -> String {
        var template = Array("\(NSTemporaryDirectory())swy-config-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw HarnessError("mkdtemp failed: errno \(errno)")
        }
        return String(cString: made)
    }

    static func write(_ text: String, to path: String) throws {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }
}

/// A loop of short client connections through `proxy`, each reading its backend's name and
/// echoing a line, back to back on `threads` threads until stopped; counts every failure.
final class ClientLoop: Sendable {
    private let stop = StopSignal()
    private let tasks: [BackgroundTask]
    private let tally = Tally()

    init(through proxy: TCPEndpoint, threads: Int = 2, limit: Int = 20_000) {
        let stop = self.stop
        let tally = self.tally
        tasks = (0..<threads).map { _ in
            BackgroundTask {
                var done = 0
                while !stop.isRaised && done < limit {
                    done += 1
                    do {
                        let client = try IdentifiedClient(through: proxy, timeout: 3)
                        try client.roundTrip("ping \(done)\n")
                        client.close()
                        tally.record(success: client.backendName)
                    } catch {
                        tally.record(failure: "\(error)")
                    }
                }
            }
        }
    }

    /// Stops the loop and returns the backends reached (with counts) and every failure.
    func finish() -> (reached: [String: Int], failures: [String]) {
        stop.raise()
        for task in tasks { _ = task.join(timeout: 15) }
        return tally.result
    }

    /// Connections made so far.
    var successes: Int { tally.result.reached.values.reduce(0, +) }

    private final class Tally: Sendable {
        private let state = Mutex<([String: Int], [String])>(([:], []))
        func record(success backend: String) { state.withLock { $0.0[backend, default: 0] += 1 } }
        func record(failure: String) { state.withLock { $0.1.append(failure) } }
        var result: (reached: [String: Int], failures: [String]) { state.withLock { ($0.0, $0.1) } }
    }
}

import Synchronization
