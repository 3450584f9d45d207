import Foundation
import Glibc
import Testing

/// A Python `ssl` client that keeps one TLS session in memory across commands, so a test can
/// offer a ticket issued long before (across a reload, a takeover, key rotations). Commands on
/// its stdin, one answer line each on its stdout:
///
/// - `save PORT NAME`: a fresh handshake; its session (with the ticket it received) is kept.
/// - `offer PORT NAME`: a handshake offering the kept session; the kept one stays.
///
/// Each connection sends a byte and reads the echo (TLS 1.3 tickets arrive before it), and the
/// answer is `new` or `resumed`, or `error TEXT`. Only the process started here is killed.
final class TicketHolder {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var buffered: [UInt8] = []

    init(peers: TLSTerminationPeers, trusting: String) throws {
        try ConfiguredProxy.write(Self.script, to: peers.folder + "/holder.py")
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", peers.folder + "/holder.py", trusting]
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try SwitchyardProcess.runWithDefaultSignalMask(process)
    }

    deinit {
        if process.isRunning {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// Sends `command` and returns its answer line (waiting at most 30 s).
    func run(_ command: String) throws -> String {
        input.fileHandleForWriting.write(Data((command + "\n").utf8))
        let descriptor = output.fileHandleForReading.fileDescriptor
        let deadline = Date().addingTimeInterval(30)
        while true {
            if let newline = buffered.firstIndex(of: UInt8(ascii: "\n")) {
                defer { buffered.removeFirst(newline + 1) }
                return String(decoding: buffered[..<newline], as: UTF8.self)
            }
            guard Date() < deadline else { throw HarnessError("ticket holder: no answer to '\(command)'") }
            var ready = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&ready, 1, 200) >= 0 else { continue }
            guard ready.revents != 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let count = read(descriptor, &chunk, chunk.count)
            guard count > 0 else { throw HarnessError("ticket holder exited: \(String(decoding: buffered, as: UTF8.self))") }
            buffered += chunk[..<count]
        }
    }

    static let script = """
    import socket, ssl, sys
    context = ssl.create_default_context(cafile=sys.argv[1])
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_3
    kept = None
    for line in sys.stdin:
        command, port, name = line.split()
        try:
            offered = kept if command == "offer" else None
            with context.wrap_socket(socket.create_connection(("127.0.0.1", int(port)), timeout=10),
                                     server_hostname=name, session=offered) as tls:
                tls.sendall(b"x")
                assert tls.recv(1) == b"x"
                if command == "save":
                    kept = tls.session
                print("resumed" if tls.session_reused else "new", flush=True)
        except Exception as error:
            print("error", repr(error).replace("\\n", " "), flush=True)
    """
}

extension EndToEnd {
    /// Session ticket keys (issue 23): one set for the process, kept across reload and takeover,
    /// rotated by `tls-ticket-rotation`, and never resuming a ticket at another service.
    @Suite(.serialized) struct TLSTicketKeyTests {
        /// Two terminating services with the same certificate (`one` and `two`), echo backends.
        static func yaml(_ listens: [TCPEndpoint], certificate: (cert: String, key: String), backend: TCPEndpoint,
                         rotation: String? = nil) -> String {
            var text = "workers: 2\n"
            if let rotation { text += "tls-ticket-rotation: \(rotation)\n" }
            text += "services:\n"
            for (index, listen) in listens.enumerated() {
                text += """
                  \(index == 0 ? "one" : "two"):
                    listen: [\(listen)]
                    backends: [\(backend)]
                    health: off
                    tls:
                      certificates: [{cert: \(certificate.cert), key: \(certificate.key)}]

                """
            }
            return text
        }

        @Test func aTicketIssuedBeforeAReloadAndATakeoverStillResumesButNeverAtAnotherService() throws {
            let peers = try TLSTerminationPeers()
            let certificate = try peers.certificate("keys", names: ["keys.test"], key: .ecdsa)
            let backend = try TestBackend(.echo)
            let one = try Sockets.freeEndpoint(), two = try Sockets.freeEndpoint()
            let config = Self.yaml([one, two], certificate: certificate, backend: backend.endpoint)
            let old = try ConfiguredProxy(yaml: config, listen: [one, two], folder: peers.folder)
            let holder = try TicketHolder(peers: peers, trusting: certificate.cert)
            let port = String(one.port)

            #expect(try holder.run("save \(port) keys.test") == "new")
            #expect(try holder.run("offer \(port) keys.test") == "resumed")
            // The same certificate, the same process's keys, another service: a full handshake.
            #expect(try holder.run("offer \(two.port) keys.test") == "new")

            // A reload makes new TLS contexts; the keys stay.
            #expect(try old.admin.send("reload").isOK)
            #expect(try holder.run("offer \(port) keys.test") == "resumed")

            // A takeover hands the keys to the new process.
            let newConfig = peers.folder + "/new.yaml"
            try ConfiguredProxy.write("admin-socket: \(old.admin.path)\n" + config, to: newConfig)
            let new = try SwitchyardProcess(arguments: ["serve", "--config", newConfig, "--takeover"], listenEndpoints: [one, two])
            defer { new.kill() }
            let committed = eventually(timeout: 15) { (try? old.admin.stats()["pid"] as? Int) == Int(new.pid) }
            try #require(committed, "no takeover within 15 s; new: \(new.standardError)\nold: \(old.process.standardError)")
            #expect(new.standardError.contains("kept 1 session ticket key(s)"), "\(new.standardError)")
            #expect(old.process.waitForExit(timeout: 15) == 0)
            #expect(try holder.run("offer \(port) keys.test") == "resumed")
            #expect(try holder.run("offer \(two.port) keys.test") == "new")
            // The secrets went over the admin socket only: neither process logged one.
            let keyLines = (old.process.standardError + new.standardError).split(separator: "\n").filter { $0.contains("tls-ticket-key") }
            #expect(keyLines.isEmpty, "\(keyLines)")
        }

        @Test func aTicketResumesForOneRotationAfterItsKeyStoppedEncryptingAndNotAfterTwo() throws {
            let peers = try TLSTerminationPeers()
            let certificate = try peers.certificate("rotate", names: ["rotate.test"], key: .ecdsa)
            let backend = try TestBackend(.echo)
            let listen = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: Self.yaml([listen], certificate: certificate, backend: backend.endpoint, rotation: "2s"),
                                            listen: [listen], folder: peers.folder)
            let holder = try TicketHolder(peers: peers, trusting: certificate.cert)
            let port = String(listen.port)
            func keysMade() -> Int {
                proxy.process.standardError.components(separatedBy: "new session ticket key").count - 1
            }

            // A ticket whose key is known: no rotation happened while it was issued.
            var first = 0
            for _ in 0..<5 {
                first = keysMade()
                #expect(try holder.run("save \(port) rotate.test") == "new")
                if keysMade() == first { break }
            }
            try #require(first >= 1, "\(proxy.process.standardError)")

            // One newer key: the ticket's key only decrypts now, and still resumes.
            #expect(eventually(timeout: 10) { keysMade() >= first + 1 })
            let before = keysMade()
            let answer = try holder.run("offer \(port) rotate.test")
            if before == first + 1 && keysMade() == first + 1 {
                #expect(answer == "resumed", "\(proxy.process.standardError)")
            }

            // Two newer keys: the ticket's key is gone; a full handshake, and the client still connects.
            #expect(eventually(timeout: 10) { keysMade() >= first + 2 })
            #expect(try holder.run("offer \(port) rotate.test") == "new")
        }
    }
}
