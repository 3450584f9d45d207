import Foundation
import Testing

/// TLS backends and clients for the SNI tests: Python's `ssl`, with certificates the test makes
/// with `openssl req`. Switchyard sits between them and never decrypts.
final class TLSPeers: Sendable {
    let folder: String

    init() throws {
        folder = try ConfiguredProxy.makeFolder()
        try ConfiguredProxy.write(Self.serverScript, to: folder + "/server.py")
        try ConfiguredProxy.write(Self.clientScript, to: folder + "/client.py")
    }

    deinit { try? FileManager.default.removeItem(atPath: folder) }

    /// Makes a self-signed certificate for `name`; returns (cert, key) paths.
    func certificate(for name: String) throws -> (String, String) {
        let cert = "\(folder)/\(name).crt", key = "\(folder)/\(name).key"
        let made = try SwitchyardProcess.runTool("/usr/bin/openssl", [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-subj", "/CN=\(name)", "-addext", "subjectAltName=DNS:\(name)", "-keyout", key, "-out", cert,
        ])
        guard made.status == 0 else { throw HarnessError("openssl req failed: \(made.output)") }
        return (cert, key)
    }

    /// Starts a TLS echo server for `name` on a free port; returns its port and process.
    func startServer(name: String) throws -> (port: UInt16, process: Process) {
        let (cert, key) = try certificate(for: name)
        let port = try Sockets.freeEndpoint().port
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", folder + "/server.py", String(port), cert, key]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try SwitchyardProcess.runWithDefaultSignalMask(process)
        guard eventually(timeout: 10, { (try? TCPConnection(to: TCPEndpoint(host: "127.0.0.1", port: port), timeout: 1)) != nil }) else {
            throw HarnessError("TLS server for \(name) did not start")
        }
        return (port, process)
    }

    /// A TLS client through `endpoint` asking for `serverName` (nil: no SNI): it echoes `bytes`
    /// bytes checked by SHA-256 and answers with the SHA-256 of the certificate it was shown.
    func connect(_ endpoint: TCPEndpoint, serverName: String?, bytes: Int = 65536) throws -> String {
        let run = try SwitchyardProcess.runTool("/usr/bin/env", [
            "python3", folder + "/client.py", endpoint.host, String(endpoint.port), serverName ?? "-", String(bytes),
        ], timeout: 120)
        guard run.status == 0 else { throw HarnessError("TLS client (\(serverName ?? "no SNI")) failed: \(run.output)") }
        return run.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The SHA-256 of a certificate's DER form, as the client prints it.
    func fingerprint(of name: String) throws -> String {
        let run = try SwitchyardProcess.runTool("/usr/bin/env", [
            "python3", "-c",
            "import ssl,hashlib,sys; print(hashlib.sha256(ssl.PEM_cert_to_DER_cert(open(sys.argv[1]).read())).hexdigest())",
            "\(folder)/\(name).crt",
        ])
        return run.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static let serverScript = """
    import socket, ssl, sys, threading
    port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    def serve(raw):
        try:
            with context.wrap_socket(raw, server_side=True) as tls:
                while True:
                    data = tls.recv(1 << 16)
                    if not data:
                        break
                    tls.sendall(data)
        except Exception:
            pass
    while True:
        raw, _ = listener.accept()
        threading.Thread(target=serve, args=(raw,), daemon=True).start()
    """

    static let clientScript = """
    import hashlib, os, socket, ssl, sys
    host, port, name, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection((host, port), timeout=60)
    tls = context.wrap_socket(raw, server_hostname=None if name == "-" else name)
    shown = hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()
    payload = os.urandom(count)
    # One thread: an SSL object must not be read and written from two threads at once. At most
    # 4 MiB stay unechoed, which the sockets on the way hold without blocking.
    echoed = hashlib.sha256()
    sent = received = 0
    while received < count:
        if sent < count:
            chunk = payload[sent:sent + (1 << 16)]
            tls.sendall(chunk)
            sent += len(chunk)
        while received < count and (sent == count or received < sent - (4 << 20)):
            data = tls.recv(1 << 16)
            if not data:
                break
            echoed.update(data)
            received += len(data)
        else:
            continue
        if received < count and not data:
            break
    if received != count or echoed.digest() != hashlib.sha256(payload).digest():
        print(f"echo mismatch: {received} of {count} bytes")
        sys.exit(1)
    print(shown)
    """
}
