import Foundation
import Glibc
import Testing

/// Certificates and a Python `ssl` client for TLS termination tests: RSA and ECDSA certificates
/// made with `openssl req` in a temporary folder, and a client (`ssl.SSLObject` over a
/// non-blocking socket) that verifies the certificate it is shown for the name it asked, sends
/// its bytes while it reads the echo, then half-closes (close_notify, or only its socket's end)
/// and reads to the end. It prints what it saw as JSON.
final class TLSTerminationPeers: Sendable {
    let folder: String

    init() throws {
        folder = try ConfiguredProxy.makeFolder()
        try ConfiguredProxy.write(Self.clientScript, to: folder + "/client.py")
        try ConfiguredProxy.write(Self.stallerScript, to: folder + "/stall.py")
        try ConfiguredProxy.write(Self.resumeScript, to: folder + "/resume.py")
    }

    deinit { try? FileManager.default.removeItem(atPath: folder) }

    enum KeyType: String { case rsa, ecdsa }

    /// A self-signed certificate for `names` (SANs; the first is the subject); returns (cert,
    /// key) paths. `encrypted`: the key is stored under a passphrase.
    @discardableResult
    func certificate(_ file: String, names: [String], key type: KeyType, encrypted: Bool = false) throws -> (cert: String, key: String) {
        let cert = "\(folder)/\(file).crt", key = "\(folder)/\(file).key"
        let algorithm = type == .rsa ? ["-newkey", "rsa:2048"] : ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        let protection = encrypted ? ["-passout", "pass:secret"] : ["-nodes"]
        let made = try SwitchyardProcess.runTool("/usr/bin/openssl", ["req", "-x509"] + algorithm + protection + [
            "-days", "2", "-subj", "/CN=\(names[0])",
            "-addext", "subjectAltName=" + names.map { "DNS:\($0)" }.joined(separator: ","), "-keyout", key, "-out", cert,
        ])
        guard made.status == 0 else { throw HarnessError("openssl req failed: \(made.output)") }
        return (cert, key)
    }

    /// A CA (`ca.crt`) and a client certificate it signed for `name`; returns (ca, cert, key).
    func clientCertificate(_ name: String) throws -> (ca: String, cert: String, key: String) {
        let ca = try certificate("ca", names: ["ca.test"], key: .ecdsa)
        let key = "\(folder)/\(name).key", request = "\(folder)/\(name).csr", cert = "\(folder)/\(name).crt"
        let asked = try SwitchyardProcess.runTool("/usr/bin/openssl", [
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=\(name)",
            "-keyout", key, "-out", request,
        ])
        let signed = try SwitchyardProcess.runTool("/usr/bin/openssl", [
            "x509", "-req", "-in", request, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial", "-days", "2", "-out", cert,
        ])
        guard asked.status == 0, signed.status == 0 else { throw HarnessError("client certificate: \(asked.output) \(signed.output)") }
        return (ca.cert, cert, key)
    }

    struct Outcome {
        let fields: [String: Any]
        var version: String { fields["version"] as? String ?? "" }
        var end: String { fields["end"] as? String ?? "" }
        var sent: String { fields["sent"] as? String ?? "" }
        var received: String { fields["received"] as? String ?? "" }
        var receivedBytes: Int { fields["received_bytes"] as? Int ?? -1 }
    }

    /// Runs the client through `endpoint`: asks for `serverName`, trusts only `trusting` (a
    /// certificate file) and checks the name; `version` `1.2` or `1.3`; `closeNotify`: it ends
    /// its side with close_notify, else with its socket's end only.
    func exchange(_ endpoint: TCPEndpoint, serverName: String, trusting: String, version: String,
                  bytes: Int, closeNotify: Bool) throws -> Outcome {
        let run = try SwitchyardProcess.runTool("/usr/bin/env", [
            "python3", folder + "/client.py", endpoint.host, String(endpoint.port), serverName, trusting, version,
            String(bytes), closeNotify ? "notify" : "eof",
        ], timeout: 120)
        let line = run.output.split(separator: "\n").last.map(String.init) ?? ""
        guard run.status == 0, let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw HarnessError("TLS client (\(serverName), TLS \(version)) failed: \(run.output)")
        }
        return Outcome(fields: object)
    }

    /// Opens `count` TLS connections through `endpoint`, completes each handshake, prints
    /// `ready`, then never reads until killed.
    func startStallers(_ endpoint: TCPEndpoint, count: Int, serverName: String, trusting: String) throws -> Process {
        let output = "\(folder)/stall.out"
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", folder + "/stall.py", endpoint.host, String(endpoint.port), String(count), serverName, trusting]
        process.standardInput = FileHandle.nullDevice
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        process.standardOutput = handle
        process.standardError = handle
        try SwitchyardProcess.runWithDefaultSignalMask(process)
        guard eventually(timeout: 30, interval: 0.1, {
            ((try? String(contentsOfFile: output, encoding: .utf8)) ?? "").contains("ready") || !process.isRunning
        }), process.isRunning else {
            throw HarnessError("stallers did not start: \((try? String(contentsOfFile: output, encoding: .utf8)) ?? "")")
        }
        return process
    }

    /// Connects once for a session, then `count` more times offering the latest session's
    /// ticket, each exchanging a byte with an echo backend; returns how many resumed.
    func resumptions(_ endpoint: TCPEndpoint, count: Int, serverName: String, trusting: String, version: String) throws -> Int {
        let run = try SwitchyardProcess.runTool("/usr/bin/env", [
            "python3", folder + "/resume.py", endpoint.host, String(endpoint.port), String(count), serverName, trusting, version,
        ], timeout: 60)
        guard run.status == 0, let resumed = Int(run.output.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw HarnessError("resume.py: \(run.output)")
        }
        return resumed
    }

    static let resumeScript = """
    import socket, ssl, sys
    host, port, count, name, trust, version = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
    context = ssl.create_default_context(cafile=trust)
    pinned = ssl.TLSVersion.TLSv1_2 if version == "1.2" else ssl.TLSVersion.TLSv1_3
    context.minimum_version = context.maximum_version = pinned
    session, resumed = None, 0
    for attempt in range(count + 1):
        with context.wrap_socket(socket.create_connection((host, port), timeout=10), server_hostname=name, session=session) as tls:
            tls.sendall(b"x")
            assert tls.recv(1) == b"x"  # the echo: TLS 1.3 tickets arrive before it
            resumed += attempt > 0 and tls.session_reused
            session = tls.session
    print(resumed)
    """

    static let stallerScript = """
    import socket, ssl, sys, time
    host, port, count, name, trust = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    context = ssl.create_default_context(cafile=trust)
    held = []
    for _ in range(count):
        raw = socket.create_connection((host, port), timeout=10)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        held.append(context.wrap_socket(raw, server_hostname=name))
    print("ready", flush=True)
    time.sleep(600)
    """

    static let clientScript = """
    import hashlib, json, random, selectors, socket, ssl, sys
    host, port, name, trust, version, count, ending = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]), sys.argv[7]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(trust)
    pinned = ssl.TLSVersion.TLSv1_2 if version == "1.2" else ssl.TLSVersion.TLSv1_3
    context.minimum_version = context.maximum_version = pinned
    payload = random.Random(count).randbytes(count)
    raw = socket.create_connection((host, port), timeout=10)
    raw.setblocking(False)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=name)
    selector = selectors.DefaultSelector()
    selector.register(raw, selectors.EVENT_READ)
    offset, wire, shaken, ended_writing, shut, received, digest, end = 0, b"", False, False, False, 0, hashlib.sha256(), None
    deadline = __import__("time").monotonic() + 60
    while end is None:
        if __import__("time").monotonic() > deadline:
            sys.exit("timed out: sent %d of %d, received %d" % (offset, count, received))
        if not shaken:
            try:
                tls.do_handshake()
                shaken = True
                agreed, shown = tls.version(), hashlib.sha256(tls.getpeercert(True)).hexdigest()
            except ssl.SSLWantReadError:
                pass
        if shaken and offset < count and len(wire) < (1 << 20):
            offset += tls.write(payload[offset:offset + 16384])
        if shaken and offset == count and not ended_writing:
            ended_writing = True
            if ending == "notify":
                try:
                    tls.unwrap()
                except ssl.SSLWantReadError:
                    pass
        wire += outgoing.read()
        if wire:
            try:
                wire = wire[raw.send(wire):]
            except BlockingIOError:
                pass
        if ended_writing and not wire and not shut:
            raw.shutdown(socket.SHUT_WR)
            shut = True
        for _ in selector.select(0.05 if not wire else 0.001):
            data = raw.recv(1 << 16)
            if data:
                incoming.write(data)
            else:
                incoming.write_eof()
        while shaken:
            try:
                data = tls.read(1 << 16)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                end = "close_notify"
                break
            except ssl.SSLEOFError:
                end = "eof"
                break
            if not data:
                end = "close_notify"
                break
            received += len(data)
            digest.update(data)
    print(json.dumps({"version": agreed, "end": end, "sent": hashlib.sha256(payload).hexdigest(),
                      "received": digest.hexdigest(), "received_bytes": received, "certificate": shown}))
    """
}
