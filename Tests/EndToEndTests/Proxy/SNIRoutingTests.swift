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

extension EndToEnd {
    /// `route-by-sni`: one port, TLS backends chosen by the ClientHello's server name.
    @Suite(.timeLimit(.minutes(3))) struct SNIRouting {
        @Test func eachServerNameReachesItsBackendWithItsCertificateAndEveryByteIntact() throws {
            let peers = try TLSPeers()
            let api = try peers.startServer(name: "api.test"), db = try peers.startServer(name: "a.db.test")
            let web = try peers.startServer(name: "web.test")
            defer { for process in [api.process, db.process, web.process] { kill(process.processIdentifier, SIGKILL) } }
            let edge = try Sockets.freeEndpoint(), metrics = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: """
                metrics: \(metrics)
                defaults: {health: off}
                services:
                  tls-edge:
                    listen: ["\(edge)"]
                    route-by-sni:
                      "api.test": api
                      "*.db.test": db
                      default: web
                  api: {backends: ["127.0.0.1:\(api.port)"]}
                  db: {backends: ["127.0.0.1:\(db.port)"]}
                  web: {backends: ["127.0.0.1:\(web.port)"]}
                """, listen: [edge])

            #expect(try peers.connect(edge, serverName: "api.test") == peers.fingerprint(of: "api.test"))
            #expect(try peers.connect(edge, serverName: "API.Test") == peers.fingerprint(of: "api.test"), "names compare case-insensitively")
            #expect(try peers.connect(edge, serverName: "a.db.test") == peers.fingerprint(of: "a.db.test"), "one-label wildcard")
            #expect(try peers.connect(edge, serverName: "b.db.test") == peers.fingerprint(of: "a.db.test"))
            #expect(try peers.connect(edge, serverName: "x.y.db.test") == peers.fingerprint(of: "web.test"), "a wildcard is one label")
            #expect(try peers.connect(edge, serverName: nil) == peers.fingerprint(of: "web.test"), "no SNI goes to default")
            #expect(try peers.connect(edge, serverName: "nobody.test") == peers.fingerprint(of: "web.test"))

            // Counts reach `show services` with the workers' next tick.
            var routes: [String: Int]?
            #expect(eventually(timeout: 3, interval: 0.1) {
                let services = (try? proxy.admin.send("show services json").jsonObject()["services"]) as? [[String: Any]]
                routes = services?.first { $0["name"] as? String == "tls-edge" }?["routes"] as? [String: Int]
                return routes?["api.test"] == 2 && routes?["*.db.test"] == 2 && routes?["no_sni"] == 1 && routes?["no_match"] == 2
            }, "\(String(describing: routes))")

            // 256 MiB through a routed connection: intact, and moved to a pipe once it streams
            // (seen as splice pipes among the proxy's descriptors while it runs).
            let pid = proxy.process.pid
            @Sendable func pipes() -> Int {
                let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
                return fds.filter { ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)")) ?? "").hasPrefix("pipe:") }.count
            }
            let baseline = pipes()
            let sawPipe = StopSignal(), done = StopSignal()
            let watcher = BackgroundTask {
                while !done.isRaised {
                    if pipes() > baseline { sawPipe.raise() }
                    usleep(20_000)
                }
            }
            #expect(try peers.connect(edge, serverName: "api.test", bytes: 256 << 20) == peers.fingerprint(of: "api.test"))
            done.raise()
            _ = watcher.join(timeout: 5)
            #expect(sawPipe.isRaised, "the routed 256 MiB stream never used a splice pipe")
            #expect(eventually(timeout: 3, interval: 0.1) {
                let exposition = (try? httpGet(metrics, "/metrics")) ?? ""
                return metricValue(exposition, "switchyard_sni_routed_connections_total{service=\"tls-edge\",listener=\"\(edge)\",route=\"api.test\"}") == 3
            })
        }

        @Test func garbageAndSilentClientsAreClosedAndCountedWhenThereIsNoDefault() throws {
            let backend = try TestBackend(.echo)
            let edge = try Sockets.freeEndpoint()
            let proxy = try ConfiguredProxy(yaml: """
                defaults: {health: off}
                services:
                  tls-edge:
                    listen: ["\(edge)"]
                    sni-timeout: 500ms
                    route-by-sni: {"api.test": api}
                  api: {backends: ["\(backend.endpoint)"]}
                """, listen: [edge])
            let before = backend.acceptedCount

            let garbage = try TCPConnection(to: edge)
            try garbage.send("GET / HTTP/1.1\r\nHost: api.test\r\n\r\n")
            let garbageEnd = garbage.readToEnd(timeout: 3)
            let silent = try TCPConnection(to: edge)
            let silentEnd = silent.readToEnd(timeout: 5)

            #expect(garbageEnd.end.isClosed && garbageEnd.checksum.byteCount == 0, "\(garbageEnd.end)")
            #expect(silentEnd.end.isClosed, "the silent client was not closed at the timeout: \(silentEnd.end)")
            #expect(silentEnd.elapsed >= 0.4, "closed after \(silentEnd.elapsed) s, before the 500ms sni-timeout")
            #expect(backend.acceptedCount == before, "an unrouted client reached a backend")
            // Workers publish their figures at each tick, so the count may lag the close a little.
            var routes: [String: Int]?
            let counted = eventually(timeout: 3, interval: 0.1) {
                let services = (try? proxy.admin.send("show services json").jsonObject())?["services"] as? [[String: Any]]
                routes = services?.first { $0["name"] as? String == "tls-edge" }?["routes"] as? [String: Int]
                return (routes?["malformed"] ?? 0) >= 2
            }
            #expect(counted, "\(String(describing: routes))")
        }
    }
}
