import Foundation
import Glibc
@testable import SwitchyardIO

/// A temporary folder of certificates made with the `openssl` CLI, and `openssl s_server`s
/// serving them on 127.0.0.1. Only the servers this folder started are ever signalled, by PID.
final class TLSTestFolder {
    let path: String
    private var servers: [Process] = []

    init() throws {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("swy-tls-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit {
        for server in servers { Self.stop(server) }
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Makes a self-signed certificate for DNS name `name` valid for `days`, as
    /// `NAME-cert.pem` and `NAME-key.pem`; returns the certificate's path (which also serves
    /// as a CA file that trusts it).
    @discardableResult
    func makeCertificate(for name: String, days: Int = 30) throws -> String {
        let certificate = "\(path)/\(name)-cert.pem"
        try Self.run("/usr/bin/openssl", [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", "/CN=\(name)", "-addext", "subjectAltName=DNS:\(name)", "-days", "\(days)",
            "-keyout", "\(path)/\(name)-key.pem", "-out", certificate,
        ])
        return certificate
    }

    /// Starts `openssl s_server` with `name`'s certificate on 127.0.0.1 and a port it picks;
    /// `-www` answers `GET /` with `HTTP/1.0 200 ok`. Returns the port once it listens.
    func startServer(for name: String, mode: String = "-www") throws -> UInt16 {
        try startServer(executable: "/usr/bin/openssl", arguments: [
            "s_server", "-accept", "127.0.0.1:0", "-cert", "\(path)/\(name)-cert.pem", "-key", "\(path)/\(name)-key.pem",
            mode, "-naccept", "1000",
        ])
    }

    /// Starts a server that prints `ACCEPT 127.0.0.1:PORT` once listening; returns the port.
    private func startServer(executable: String, arguments: [String]) throws -> UInt16 {
        let output = "\(path)/server-\(servers.count).out"
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        process.standardOutput = handle
        process.standardError = handle
        try runWithDefaultSignalMask(process)
        servers.append(process)
        // It prints `ACCEPT 127.0.0.1:PORT` once listening.
        var port: UInt16?
        _ = timeUntil(.seconds(10)) {
            let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            port = text.split(separator: "\n").first { $0.hasPrefix("ACCEPT 127.0.0.1:") }
                .flatMap { UInt16($0.dropFirst("ACCEPT 127.0.0.1:".count)) }
            return port != nil || !process.isRunning
        }
        guard let port else {
            throw SystemCallError(call: "\(executable) did not listen: \((try? String(contentsOfFile: output, encoding: .utf8)) ?? "")", errno: ETIMEDOUT)
        }
        return port
    }

    static func run(_ executable: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw SystemCallError(call: "\(executable) \(arguments.joined(separator: " ")) exited \(process.terminationStatus)", errno: EIO)
        }
    }

    private static func stop(_ process: Process) {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        if timeUntil(.seconds(5), { !process.isRunning }) == nil {
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
    }
}

extension TLSTestFolder {
    /// A Python `ssl` server with `name`'s certificate on 127.0.0.1 that speaks first: once the
    /// handshake is done it sends the line `banner` (ASCII, no quotes or backslashes) and holds
    /// the connection open for a second. Returns its port.
    func startBannerServer(for name: String, banner: String) throws -> UInt16 {
        let script = """
            import socket, ssl, sys, threading, time
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            # TLS 1.2 (the other tests' servers speak 1.3): its Finished and the banner leave
            # back to back, and the checker may read both at once.
            context.maximum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain('\(path)/\(name)-cert.pem', '\(path)/\(name)-key.pem')
            listener = socket.socket()
            listener.bind(('127.0.0.1', 0))
            listener.listen(16)
            print('ACCEPT 127.0.0.1:%d' % listener.getsockname()[1], flush=True)
            def serve(connection):
                try:
                    tls = context.wrap_socket(connection, server_side=True)
                    tls.sendall(b'\(banner)\\r\\n')
                    time.sleep(1)
                    tls.close()
                except Exception:
                    connection.close()
            while True:
                connection, _ = listener.accept()
                threading.Thread(target=serve, args=(connection,), daemon=True).start()
            """
        return try startServer(executable: "/usr/bin/python3", arguments: ["-c", script])
    }
}
