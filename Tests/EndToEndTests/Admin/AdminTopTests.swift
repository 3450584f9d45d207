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
            /// Spawned with `Spawn` (posix_spawn), not Foundation's Process: the first client forks
            /// the tmux server, which inherits the descriptor Process watches to learn that its
            /// child ended, so Process would wait for the server too.
            @discardableResult
            func run(_ arguments: [String]) throws -> (Int32, String) {
                let outputPath = "\(NSTemporaryDirectory())\(socket)-\(UInt32.random(in: 0...UInt32.max)).out"
                defer { unlink(outputPath) }
                let pid = try Spawn.start(["/usr/bin/tmux", "-L", socket] + arguments, outputPath: outputPath)
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
