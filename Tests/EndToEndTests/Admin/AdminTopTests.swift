import Foundation
import Glibc
import Testing

extension EndToEnd {
    /// `switchyard admin top` in a real terminal: a tmux server of the test's own (its own
    /// socket, `-L`), a window running the binary, keys sent with send-keys and the screen read
    /// with capture-pane. Only that tmux server is killed at the end.
    @Suite struct AdminTopTests {
        final class Tmux {
            let socket = "swy-top-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            let session = "top"

            /// Runs tmux with `arguments` on this test's server and waits for that client to end;
            /// returns its exit status and what it printed.
            ///
            /// Spawned directly, not with Foundation's Process: the first client forks the tmux
            /// server, which inherits the descriptor Process watches to learn that its child
            /// ended, so Process would wait for the server too. The signal mask is emptied (the
            /// test runner blocks SIGINT and SIGTERM, and children would inherit that).
            @discardableResult
            func run(_ arguments: [String]) throws -> (Int32, String) {
                let outputPath = "\(NSTemporaryDirectory())\(socket)-\(UInt32.random(in: 0...UInt32.max)).out"
                defer { unlink(outputPath) }
                var attributes = posix_spawnattr_t()
                posix_spawnattr_init(&attributes)
                defer { posix_spawnattr_destroy(&attributes) }
                var empty = sigset_t()
                sigemptyset(&empty)
                posix_spawnattr_setsigmask(&attributes, &empty)
                posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
                var actions = posix_spawn_file_actions_t()
                posix_spawn_file_actions_init(&actions)
                defer { posix_spawn_file_actions_destroy(&actions) }
                posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
                posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
                posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
                let argv = (["/usr/bin/tmux", "-L", socket] + arguments).map { strdup($0) }
                defer { argv.forEach { free($0) } }
                var pid = pid_t()
                let spawned = posix_spawn(&pid, "/usr/bin/tmux", &actions, &attributes, argv + [nil], environ)
                guard spawned == 0 else { throw HarnessError("posix_spawn tmux: \(String(cString: strerror(spawned)))") }
                var status: Int32 = 0
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
                return ((status >> 8) & 0xFF, output)
            }

            func screen() -> String {
                (try? run(["capture-pane", "-p", "-t", session]).1) ?? ""
            }

            /// The screen once `condition` holds for it (polled for up to `timeout` seconds), else nil.
            func waitForScreen(timeout: Double, _ condition: (String) -> Bool) -> String? {
                let deadline = Date().addingTimeInterval(timeout)
                repeat {
                    let text = screen()
                    if condition(text) { return text }
                    usleep(100_000)
                } while Date() < deadline
                return nil
            }

            deinit { _ = try? run(["kill-server"]) }
        }

        @Test func topShowsTheBackendsLiveAndQuitsOnQRestoringTheTerminal() throws {
            let first = try TestBackend(.echo)
            let second = try TestBackend(.echo)
            let socketPath = SwitchyardProcess.temporaryAdminSocketPath()
            defer { unlink(socketPath) }
            let proxy = try SwitchyardProcess(
                options: ["--admin-socket", socketPath], backends: [first.endpoint.description, second.endpoint.description])
            let binary = try SwitchyardProcess.binaryURL()

            let tmux = Tmux()
            // After top exits the shell prints its status and the terminal's settings, then waits,
            // so the screen can still be read.
            let command = "\(binary.path) admin --socket \(socketPath) top; echo \"top exited $?\"; stty -a | tr ';' '\\n' | grep -E -w -o -- '-?(icanon|echo)' | tr '\\n' ' '; echo; echo end-of-check; sleep 60"
            try tmux.run(["new-session", "-d", "-s", tmux.session, "-x", "150", "-y", "30", command])

            let shown = tmux.waitForScreen(timeout: 10) { screen in
                screen.contains(first.endpoint.description) && screen.contains(second.endpoint.description)
            }
            #expect(shown != nil, "screen:\n\(tmux.screen())")
            #expect(shown?.contains("BACKEND") == true)
            #expect(shown?.contains("CONNECT_P99") == true)
            #expect(shown?.contains("2 backends, 2 up") == true)

            // Two clients held open show up as active connections within a refresh or two.
            let clients = try (0..<2).map { _ in try TCPConnection(to: proxy.listen) }
            for client in clients { try client.roundTrip(Array("ping".utf8)) }
            let busy = tmux.waitForScreen(timeout: 5) { $0.contains("2 active") }
            #expect(busy != nil, "screen:\n\(tmux.screen())")

            try tmux.run(["send-keys", "-t", tmux.session, "q"])
            let after = tmux.waitForScreen(timeout: 5) { $0.contains("end-of-check") }
            #expect(after?.contains("top exited 0") == true, "screen:\n\(tmux.screen())")
            // The shell's terminal is back in line mode with echo.
            #expect(after?.contains("icanon echo") == true, "screen:\n\(tmux.screen())")
            // The alternate screen was left: the table is gone from the shell's screen.
            #expect(after?.contains("CONNECT_P99") == false)
            for client in clients { client.close() }
        }

        @Test func topNeedsATerminal() throws {
            let socketPath = SwitchyardProcess.temporaryAdminSocketPath()
            let process = try SwitchyardProcess(arguments: ["admin", "--socket", socketPath, "top"])
            #expect(process.waitForExit(timeout: 30) == 2)
            #expect(process.standardError.hasPrefix("switchyard admin top: needs a terminal"))
        }
    }
}
