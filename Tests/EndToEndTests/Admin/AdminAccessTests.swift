import Foundation
import Glibc
import Testing

extension EndToEnd {
    /// Who may reach the admin socket and what they may do there (README, "Admin socket",
    /// "Access"): the default path is never one another user can create first, both ends check
    /// the other's uid, and access is granted on purpose only.
    @Suite(.enabled(if: geteuid() == 0, "runs peers as uid 65534 and mounts a private /run: needs root"))
    struct AdminAccess {
        /// The uid (and gid) the other user's processes run as.
        static let otherUser = "65534"

        /// `setpriv` arguments that run a program as `otherUser` with no supplementary groups.
        static func asOtherUser(_ program: String, _ arguments: [String]) -> (String, [String]) {
            ("/usr/bin/setpriv", ["--reuid", otherUser, "--regid", otherUser, "--clear-groups", "--", program] + arguments)
        }

        /// A launcher that runs the binary in a mount namespace of its own, with an empty tmpfs
        /// on /run (after `setup`, shell commands) and without XDG_RUNTIME_DIR: root's default
        /// admin socket without touching the machine's /run. The test reaches it through
        /// /proc/PID/root and `nsenter`.
        static func privateRun(setup: String = "true") -> (path: String, arguments: [String]) {
            ("/usr/bin/unshare", ["--mount", "--propagation", "private", "/bin/sh", "-c",
                                  "mount -t tmpfs -o mode=755 tmpfs /run && \(setup) && unset XDG_RUNTIME_DIR && exec \"$0\" \"$@\""])
        }

        /// A directory anyone may create files in (mode 0777), removed with its contents on deinit.
        final class SharedFolder {
            let path: String
            init() throws {
                path = try ConfiguredProxy.makeFolder()
                chmod(path, 0o777)
            }
            deinit { try? FileManager.default.removeItem(atPath: path) }
        }

        /// A UNIX socket listener run as `otherUser` that answers every connection with an
        /// `OK` reply, as if it were a switchyard: a squatter at an admin socket's path.
        final class SquattedSocket {
            let path: String
            private let process: Process

            init(path: String) throws {
                self.path = path
                let script = """
                import socket, sys
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.bind(sys.argv[1])
                s.listen(8)
                while True:
                    c, _ = s.accept()
                    c.settimeout(1)
                    try:
                        c.recv(4096)
                        c.sendall(b"OK\\nsquatted\\n\\n")
                    except OSError:
                        pass
                    c.close()
                """
                let (program, arguments) = AdminAccess.asOtherUser("/usr/bin/python3", ["-c", script, path])
                process = Process()
                process.executableURL = URL(fileURLWithPath: program)
                process.arguments = arguments
                process.standardInput = FileHandle.nullDevice
                try process.run()
                guard eventually(timeout: 10, { (try? AdminConnection(path: path, timeout: 1)) != nil }) else {
                    stop()
                    throw HarnessError("the squatting listener did not start at \(path)")
                }
            }

            func stop() {
                // setpriv execs python: the pid is the listener's own.
                if process.isRunning {
                    Glibc.kill(process.processIdentifier, SIGKILL)
                    process.waitUntilExit()
                }
            }

            deinit { stop() }
        }

        @Test func rootsDefaultSocketIsInAPrivateDirectoryUnderRunThatServeMakesAndAdminFinds() throws {
            let backend = try TestBackend(.identify(name: "a"))
            let listen = try Sockets.freeEndpoint()
            let proxy = try SwitchyardProcess(
                arguments: ["serve", "--listen", listen.description, "--no-health-check", backend.endpoint.description],
                listenEndpoints: [listen], launcher: Self.privateRun())
            try proxy.waitUntilReady(timeout: 10)
            let run = "/proc/\(proxy.pid)/root/run/switchyard"
            var status = stat()
            try #require(lstat(run, &status) == 0, "no /run/switchyard; stderr: \(proxy.standardError)")
            #expect(status.st_mode & S_IFMT == S_IFDIR)
            #expect(status.st_mode & 0o7777 == 0o700, "mode \(String(status.st_mode & 0o7777, radix: 8))")
            #expect(status.st_uid == 0)
            #expect(eventually(timeout: 5) { proxy.standardError.contains("admin socket: /run/switchyard/admin.sock") }, "\(proxy.standardError)")

            // `switchyard admin` without --socket, in the proxy's view of /run, finds it.
            let binary = try SwitchyardProcess.binaryURL().path
            let client = try SwitchyardProcess.runTool(
                "/usr/bin/nsenter", ["-t", "\(proxy.pid)", "-m", "--", "/usr/bin/env", "-u", "XDG_RUNTIME_DIR", binary, "admin", "show", "stats", "json"])
            #expect(client.status == 0, "\(client.output)")
            #expect(client.output.contains("\"pid\":\(proxy.pid)"), "\(client.output)")
        }

        @Test func serveRefusesARunDirectoryOthersCanReachAndSaysHowToFixIt() throws {
            let backend = try TestBackend(.identify(name: "a"))
            let listen = try Sockets.freeEndpoint()
            let proxy = try SwitchyardProcess(
                arguments: ["serve", "--listen", listen.description, "--no-health-check", backend.endpoint.description],
                listenEndpoints: [listen], launcher: Self.privateRun(setup: "mkdir -m 755 /run/switchyard"))
            #expect(proxy.waitForExit(timeout: 30) == 1)
            #expect(proxy.standardError == "switchyard: error: /run/switchyard has mode 0755: group or others may access it; run 'chmod 700 /run/switchyard' or pass --admin-socket PATH\n")
        }

        @Test func aUserWithoutARuntimeDirectoryIsToldToNameTheSocket() throws {
            let binary = try SwitchyardProcess.binaryURL().path
            let (program, arguments) = Self.asOtherUser("/usr/bin/env", ["-u", "XDG_RUNTIME_DIR", binary, "admin", "show", "stats"])
            let client = try SwitchyardProcess.runTool(program, arguments)
            #expect(client.status == 2)
            #expect(client.output == "switchyard admin: no default admin socket for uid 65534: XDG_RUNTIME_DIR is not set; pass --socket PATH (a path in a directory only this user can write to)\n")
        }

        @Test func adminAndTakeoverRefuseASocketServedByAnotherUser() throws {
            let folder = try SharedFolder()
            let path = folder.path + "/admin.sock"
            let squatter = try SquattedSocket(path: path)
            defer { squatter.stop() }
            let refusal = "refusing to talk to \(path): the process serving it (pid "

            let client = try AdminSocket(path: path).runClient(["drain", "10.0.0.1:80"])
            #expect(client.exitStatus == 2, "\(client)")
            #expect(client.standardOutput.isEmpty, "\(client)")
            #expect(client.standardError.hasPrefix("switchyard admin: \(refusal)"), "\(client)")
            #expect(client.standardError.hasSuffix(") runs as uid 65534, neither this user (uid 0) nor root; another user may have created that socket\n"), "\(client)")

            let backend = try TestBackend(.identify(name: "a"))
            let listen = try Sockets.freeEndpoint()
            let config = folder.path + "/switchyard.yaml"
            try ConfiguredProxy.write("admin-socket: \(path)\nservices:\n  main:\n    listen: [\"\(listen)\"]\n    health: off\n    backends: [\"\(backend.endpoint)\"]\n", to: config)
            let taker = try SwitchyardProcess(arguments: ["serve", "--config", config, "--takeover"])
            #expect(taker.waitForExit(timeout: 30) == 1)
            #expect(taker.standardError.hasPrefix("switchyard: error: takeover failed: \(refusal)"), "\(taker.standardError)")
            #expect(taker.standardError.contains("runs as uid 65534"), "\(taker.standardError)")

            // Nor does serve start on it as if it were its own.
            let server = try SwitchyardProcess(arguments: ["serve", "--config", config])
            #expect(server.waitForExit(timeout: 30) == 1)
            #expect(server.standardError.hasPrefix("switchyard: error: the admin socket path \(path) is served by pid "), "\(server.standardError)")
            #expect(server.standardError.hasSuffix(" of uid 65534, another user; choose a path in a directory only this user can write to (--admin-socket)\n"), "\(server.standardError)")
        }

        /// The socket granted to everyone (0666), or to a group (0660, by name) the other user's
        /// process has as its own.
        @Test(arguments: [(["--admin-socket-mode", "0666"], 0o666 as UInt32, 0 as UInt32),
                          (["--admin-socket-mode", "0660", "--admin-socket-group", "nogroup"], 0o660, 65534)])
        func aPeerOfAnotherUserGrantedTheSocketMayShowButNotChange(options: [String], mode: UInt32, group: UInt32) throws {
            let a = try TestBackend(.identify(name: "a"))
            let proxy = try AdminProxy(options: options, backends: [a.endpoint.description])
            var status = stat()
            try #require(lstat(proxy.admin.path, &status) == 0)
            #expect(status.st_mode & 0o777 == mode)
            #expect(status.st_gid == group)

            let binary = try SwitchyardProcess.binaryURL().path
            func runAsOtherUser(_ words: [String]) throws -> (status: Int32, output: String) {
                let (program, arguments) = Self.asOtherUser(binary, ["admin", "--socket", proxy.admin.path] + words)
                return try SwitchyardProcess.runTool(program, arguments)
            }
            let shown = try runAsOtherUser(["show", "backends"])
            #expect(shown.status == 0, "\(shown.output)")
            #expect(shown.output.hasPrefix("OK\n") && shown.output.contains(a.endpoint.description), "\(shown.output)")
            for words in [["drain", a.endpoint.description], ["weight", a.endpoint.description, "0"], ["reload"], ["takeover"]] {
                let refused = try runAsOtherUser(words)
                #expect(refused.status == 1, "\(words): \(refused.output)")
                #expect(refused.output == "ERROR: uid 65534 may only use show and help on this admin socket; other commands are for uid 0 (the server's) or root\n", "\(words)")
            }
            #expect(try proxy.admin.backends()[a.endpoint.description]?["state"] as? String == "ready")
            // Root (the server's own user) still may.
            #expect(try proxy.admin.send("drain \(a.endpoint)").isOK)
        }

        @Test func withoutAGrantAnotherUserCannotConnectAtAll() throws {
            let a = try TestBackend(.identify(name: "a"))
            let proxy = try AdminProxy(backends: [a.endpoint.description])
            let binary = try SwitchyardProcess.binaryURL().path
            let (program, arguments) = Self.asOtherUser(binary, ["admin", "--socket", proxy.admin.path, "show", "stats"])
            let client = try SwitchyardProcess.runTool(program, arguments)
            #expect(client.status == 2)
            #expect(client.output == "switchyard admin: connect \(proxy.admin.path): Permission denied (EACCES)\n")
        }

        @Test func theReadOnlySocketAnswersShowAndHelpAndRefusesEverythingElseEvenToRoot() throws {
            let a = try TestBackend(.identify(name: "a"))
            let readOnlyPath = SwitchyardProcess.temporaryAdminSocketPath()
            defer { unlink(readOnlyPath) }
            let proxy = try AdminProxy(options: ["--admin-socket-readonly", readOnlyPath], backends: [a.endpoint.description])
            let readOnly = AdminSocket(path: readOnlyPath)
            let backends = try readOnly.send("show backends")
            #expect(backends.isOK && backends.body.contains { $0.contains(a.endpoint.description) }, "\(backends)")
            #expect(try readOnly.send("help").isOK)
            for command in ["drain \(a.endpoint)", "maint \(a.endpoint)", "remove \(a.endpoint)", "reload", "takeover", "wait \(a.endpoint) 1s"] {
                #expect(try readOnly.send(command).status == "ERROR: read-only admin socket", "\(command)")
            }
            #expect(try proxy.admin.backends()[a.endpoint.description]?["state"] as? String == "ready")
            #expect(try proxy.admin.send("drain \(a.endpoint)").isOK)
            #expect(try readOnly.backends()[a.endpoint.description]?["state"] as? String == "drain")
            // It goes with the process.
            proxy.process.terminate()
            #expect(proxy.process.waitForExit(timeout: 30) == 0)
            #expect(access(readOnlyPath, F_OK) != 0)
        }
    }
}
