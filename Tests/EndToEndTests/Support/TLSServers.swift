import Foundation
import Glibc

/// TLS backends for health-check tests: self-signed certificates made with the `openssl` CLI
/// in a temporary folder, each served by an `openssl s_server -www` on 127.0.0.1 (a port it
/// picks, read from its `ACCEPT` line). `-www` answers `GET /` with `HTTP/1.0 200 ok` and a
/// status page. Only the servers started here are ever signalled, by PID.
final class TLSServers {
    let folder: String
    private var servers: [Process] = []

    init() throws {
        folder = try ConfiguredProxy.makeFolder()
    }

    deinit {
        for server in servers where server.isRunning {
            Glibc.kill(server.processIdentifier, SIGKILL)
            server.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// A self-signed certificate (and key) for `name`, valid for `days`; returns the
    /// certificate's path, which also serves as a `ca-file` trusting it.
    @discardableResult
    func certificate(for name: String, days: Int) throws -> String {
        let path = "\(folder)/\(name)-cert.pem"
        let run = try SwitchyardProcess.runTool("/usr/bin/openssl", [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", "/CN=\(name)", "-addext", "subjectAltName=DNS:\(name)", "-days", "\(days)",
            "-keyout", "\(folder)/\(name)-key.pem", "-out", path,
        ])
        guard run.status == 0 else { throw HarnessError("openssl req for \(name): \(run.output)") }
        return path
    }

    /// Serves `name`'s certificate (made first) and returns where.
    func serve(_ name: String) throws -> TCPEndpoint {
        let output = "\(folder)/server-\(servers.count).out"
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = [
            "s_server", "-accept", "127.0.0.1:0", "-cert", "\(folder)/\(name)-cert.pem",
            "-key", "\(folder)/\(name)-key.pem", "-www",
        ]
        process.standardInput = FileHandle.nullDevice
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        process.standardOutput = handle
        process.standardError = handle
        try SwitchyardProcess.runWithDefaultSignalMask(process)
        servers.append(process)
        let prefix = "ACCEPT 127.0.0.1:"
        var port: UInt16?
        _ = eventually(timeout: 10) {
            let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            port = text.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { UInt16($0.dropFirst(prefix.count)) }
            return port != nil || !process.isRunning
        }
        guard let port else { throw HarnessError("openssl s_server for \(name) did not listen") }
        return TCPEndpoint(host: "127.0.0.1", port: port)
    }
}
