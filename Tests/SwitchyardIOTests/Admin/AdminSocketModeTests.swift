import Foundation
import Glibc
import Synchronization
import Testing
@testable import SwitchyardCore
@testable import SwitchyardIO

private let statsForModeTests = ProcessStats(
    uptime: .seconds(1), workers: 1, relayMode: "auto", balance: "round-robin",
    openConnections: 0, totalConnections: 0, bytesFromClients: 0, bytesToClients: 0)

/// A directory of its own under /tmp, so that leftovers of a server's set-up can be counted.
private func makePrivateTestDirectory() throws -> String {
    var template = Array("/tmp/swy-mode-test-\(getpid())-XXXXXX".utf8CString)
    guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
        throw SystemCallError(call: "mkdtemp", errno: errno)
    }
    return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

private func entries(of directory: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
}

/// Watches a path from another thread, as fast as it can and again at once whenever inotify
/// reports a change in its directory, and counts how often it saw a private socket (mode 0600)
/// and anything else there. Atomics only, so that it runs clean under ThreadSanitizer.
private final class ModeWatcher: Sendable {
    private let looks = Atomic<Int>(0)
    private let privateSockets = Atomic<Int>(0)
    private let others = Atomic<Int>(0)
    /// The st_mode of the last "other" sighting.
    private let otherMode = Atomic<UInt32>(0)
    private let stopping = Atomic<Bool>(false)
    private let finished = Atomic<Bool>(false)

    init(path: String, directory: String) {
        let thread = Thread { [self] in
            let inotify = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
            if inotify >= 0 {
                _ = inotify_add_watch(inotify, directory, UInt32(IN_CREATE | IN_ATTRIB | IN_MOVED_TO))
            }
            var buffer = [UInt8](repeating: 0, count: 4096)
            var status = stat()
            while !stopping.load(ordering: .acquiring) {
                if inotify >= 0 { _ = buffer.withUnsafeMutableBytes { read(inotify, $0.baseAddress, $0.count) } }
                looks.add(1, ordering: .relaxed)
                guard lstat(path, &status) == 0 else { continue }
                let mode = UInt32(status.st_mode)
                if mode & S_IFMT == S_IFSOCK && mode & 0o777 == 0o600 {
                    privateSockets.add(1, ordering: .relaxed)
                } else {
                    others.add(1, ordering: .relaxed)
                    otherMode.store(mode, ordering: .relaxed)
                }
            }
            if inotify >= 0 { Glibc.close(inotify) }
            finished.store(true, ordering: .releasing)
        }
        thread.start()
    }

    /// Stops the thread; returns its counts and the mode of the last sighting that was not a
    /// private socket.
    func finish() -> (looks: Int, privateSockets: Int, others: Int, otherMode: UInt32) {
        stopping.store(true, ordering: .releasing)
        for _ in 0..<2000 where !finished.load(ordering: .acquiring) { usleep(1000) }
        return (looks.load(ordering: .relaxed), privateSockets.load(ordering: .relaxed),
                others.load(ordering: .relaxed), otherMode.load(ordering: .relaxed))
    }
}

@Suite(.serialized) struct AdminSocketModeTests {
    /// The socket must never be reachable by anyone else, not even between bind(2) and chmod(2):
    /// another thread watches the path while servers start and stop there again and again.
    @Test func socketFileNeverExistsWithAModeWiderThan0600() throws {
        let directory = try makePrivateTestDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/admin.sock"
        let registry = BackendRegistry(backends: [], algorithm: .roundRobin)
        let watcher = ModeWatcher(path: path, directory: directory)
        var failure: (any Error)?
        for _ in 0..<200 {
            do {
                let server = try AdminServer(socketPath: path, registry: registry, processStats: { statsForModeTests })
                server.stop()
            } catch {
                failure = error
                break
            }
        }
        let seen = watcher.finish()
        #expect(failure == nil, "\(String(describing: failure))")
        #expect(seen.looks > 200, "the watcher looked at the path only \(seen.looks) times")
        #expect(seen.privateSockets > 0, "the watcher never saw the socket (\(seen.looks) looks)")
        #expect(seen.others == 0, "seen \(seen.others) times as something other than a mode 0600 socket, last with mode \(String(seen.otherMode, radix: 8))")
        #expect(entries(of: directory).isEmpty, "left behind: \(entries(of: directory))")
    }

    @Test func theSocketAcceptsAsSoonAsItsPathExists() throws {
        let directory = try makePrivateTestDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/admin.sock"
        let server = try AdminServer(socketPath: path, registry: BackendRegistry(backends: [], algorithm: .roundRobin), processStats: { statsForModeTests })
        defer { server.stop() }
        // Listening before the name exists: a client that finds the path can connect, and its
        // command is answered once the server starts.
        let probe = try UnixSocket.make(nonBlocking: false)
        defer { Glibc.close(probe) }
        let address = try UnixSocket.address(path)
        #expect(UnixSocket.withAddress(address) { connect(probe, $0, $1) } == 0, "connect: \(String(cString: strerror(errno)))")
        #expect(entries(of: directory) == ["admin.sock"], "only the socket is in the directory: \(entries(of: directory))")
        try server.start()
        #expect(try AdminClient.send(command: "help", socketPath: path).ok)
    }

    @Test func refusedStartsLeaveNothingBehind() throws {
        let directory = try makePrivateTestDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/admin.sock"
        let registry = BackendRegistry(backends: [], algorithm: .roundRobin)
        let live = try AdminServer(socketPath: path, registry: registry, processStats: { statsForModeTests })
        try live.start()
        defer { live.stop() }
        #expect(throws: AdminSocketError("another switchyard is already serving the admin socket \(path); stop it or choose another --admin-socket")) {
            _ = try AdminServer(socketPath: path, registry: registry, processStats: { statsForModeTests })
        }
        #expect(entries(of: directory) == ["admin.sock"])
        #expect(try AdminClient.send(command: "help", socketPath: path).ok, "the live instance keeps its socket")

        let missing = directory + "/no-such-directory/admin.sock"
        #expect(throws: AdminSocketError.self) {
            _ = try AdminServer(socketPath: missing, registry: registry, processStats: { statsForModeTests })
        }
        #expect(entries(of: directory) == ["admin.sock"])
    }

    @Test func aDirectoryTooLongForAPrivateNameIsAClearError() throws {
        // 98 bytes of directory and a 5-byte name fit sun_path (108 with its NUL), but the private
        // name beside it (".swy-XXXXXX/s") would not.
        let directory = "/tmp/" + String(repeating: "d", count: 93)
        let path = directory + "/a.so"
        #expect(throws: AdminSocketError("admin socket directory '\(directory)' is too long: at most 93 bytes, to leave room for a private name while the socket is set up")) {
            _ = try AdminServer(socketPath: path, registry: BackendRegistry(backends: [], algorithm: .roundRobin), processStats: { statsForModeTests })
        }
    }
}
