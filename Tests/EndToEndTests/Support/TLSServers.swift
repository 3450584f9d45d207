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

/// A TLS echo backend for tests of TLS to backends (`backend-tls`): Python's `ssl` on
/// 127.0.0.1 (a port it picks) with `cert` and `key`, which refuses a handshake whose SNI is
/// not one of `names` (none given: any name, or none, is taken) with `unrecognized_name`, and
/// with `clientCA` requires a client certificate that chains to it. Each connection echoes every
/// byte until the client's end (close_notify, or its socket's end), then sends close_notify and
/// closes. Its log has one line per event: `sni NAME`, `refused REASON`, `connected
/// with-client-certificate` or `connected without-client-certificate`, `closed BYTES` (an
/// orderly end) or `cut BYTES REASON`, and `resumed` after `connected` for a resumed session; with `proxyHeader`, each connection starts with a PROXY
/// v1 header in plaintext, logged as `proxy HEADER`, before the handshake. Only the process
/// started here is ever signalled, by PID.
final class TLSEchoBackend {
    let endpoint: TCPEndpoint
    let logPath: String
    private let process: Process

    init(folder: String, name: String, cert: String, key: String, names: [String], clientCA: String? = nil,
         proxyHeader: Bool = false) throws {
        let script = "\(folder)/tls-echo.py"
        if !FileManager.default.fileExists(atPath: script) { try ConfiguredProxy.write(Self.script, to: script) }
        logPath = "\(folder)/\(name).log"
        let output = "\(folder)/\(name).out"
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let process = Process()
        self.process = process
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, cert, key, names.joined(separator: ","), clientCA ?? "-", logPath,
                             proxyHeader ? "proxy" : "-"]
        process.standardInput = FileHandle.nullDevice
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        process.standardOutput = handle
        process.standardError = handle
        try SwitchyardProcess.runWithDefaultSignalMask(process)
        let prefix = "listening "
        var port: UInt16?
        _ = eventually(timeout: 10) {
            let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            port = text.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { UInt16($0.dropFirst(prefix.count)) }
            return port != nil || !process.isRunning
        }
        guard let port else {
            Glibc.kill(process.processIdentifier, SIGKILL)
            throw HarnessError("the TLS echo backend \(name) did not listen: \((try? String(contentsOfFile: output, encoding: .utf8)) ?? "")")
        }
        endpoint = TCPEndpoint(host: "127.0.0.1", port: port)
    }

    deinit {
        if process.isRunning {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// The log's lines so far.
    var log: [String] {
        ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    static let script = """
    import socket, ssl, sys, threading
    cert, key, names, client_ca, log, proxy = sys.argv[1:7]
    allowed = set(name for name in names.split(",") if name)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if client_ca != "-":
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    lock = threading.Lock()
    def record(line):
        with lock, open(log, "a") as file:
            file.write(line + "\\n")
    def sni(connection, name, _):
        record("sni %s" % name)
        if allowed and name not in allowed:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
    context.sni_callback = sni
    listener = socket.create_server(("127.0.0.1", 0))
    print("listening %d" % listener.getsockname()[1], flush=True)
    def serve(raw):
        raw.settimeout(60)
        if proxy == "proxy":
            header = b""
            while not header.endswith(b"\\r\\n") and len(header) < 108:
                byte = raw.recv(1)
                if not byte:
                    break
                header += byte
            record("proxy %s" % header.decode(errors="replace").strip())
        try:
            tls = context.wrap_socket(raw, server_side=True)
        except Exception as error:
            record("refused %s" % error)
            raw.close()
            return
        record("connected %s" % ("with-client-certificate" if tls.getpeercert() else "without-client-certificate"))
        if tls.session_reused:
            record("resumed")
        total = 0
        try:
            while True:
                data = tls.recv(1 << 16)
                if not data:
                    break
                total += len(data)
                tls.sendall(data)
            tls.unwrap()
            record("closed %d" % total)
        except Exception as error:
            record("cut %d %s" % (total, error))
        raw.close()
    while True:
        raw, _ = listener.accept()
        threading.Thread(target=serve, args=(raw,), daemon=True).start()
    """
}
