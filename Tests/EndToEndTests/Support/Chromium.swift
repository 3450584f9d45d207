import Foundation
import Glibc

/// Debian's `chromium`, headless, driven through its DevTools protocol (CDP) over
/// `--remote-debugging-pipe`: chromium reads commands from descriptor 3 and writes replies and
/// events to descriptor 4, each one JSON message ended by a NUL byte. Both descriptors are the
/// child's end of one socket pair (so a write to a chromium that died is EPIPE for this process,
/// never SIGPIPE); no WebSocket, no port.
///
/// Chromium runs as root here, so it needs `--no-sandbox`; its profile lives in a temporary
/// folder of its own. It is started in a new process group (its pid is the group's id) and every
/// helper it forks (zygotes, renderers, the GPU and network services) stays in that group, so
/// `stop()` can prove that nothing is left. Only that group is ever signalled, and only while one
/// of its members is known to exist. Every wait is bounded.
///
/// One thread at a time: the driver is not Sendable.
final class Chromium {
    static let executable = "/usr/bin/chromium"

    /// The browser process; also its process group.
    let pid: pid_t
    /// The profile folder (`--user-data-dir`), holding `chromium.log` (chromium's own output).
    let profile: String
    /// The page's viewport in CSS pixels (screenshots are this size, at one device pixel each).
    let width: Int, height: Int
    /// Whether pages run their own scripts (`evaluate` works either way).
    let javaScript: Bool
    private let socket: Int32
    private var nextCommand = 0
    private var received: [UInt8] = []
    private var scannedUpTo = 0
    private var pendingEvents: [[String: Any]] = []
    /// The flat-protocol session of the page target `open` attached to.
    private var session: String?
    private var stopped = false

    /// Starts a headless chromium whose page is `width` x `height` CSS pixels and waits (up to
    /// `timeout` seconds) until it answers `Browser.getVersion`. With `javaScript` false, pages
    /// do not run their own scripts, as in a browser with JavaScript turned off.
    static func launch(width: Int = 1280, height: Int = 900, javaScript: Bool = true, timeout: Double = 30) throws -> Chromium {
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw HarnessError("\(executable) is missing: Scripts/test installs it (apt-get install -y chromium)")
        }
        return try Chromium(width: width, height: height, javaScript: javaScript, timeout: timeout)
    }

    private init(width: Int, height: Int, javaScript: Bool, timeout: Double) throws {
        self.width = width
        self.height = height
        self.javaScript = javaScript
        profile = try ConfiguredProxy.makeFolder()
        var pair: [Int32] = [-1, -1]
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        do {
            _ = try systemCall("socketpair") { socketpair(AF_UNIX, type, 0, &pair) }
        } catch {
            try? FileManager.default.removeItem(atPath: profile)
            throw error
        }
        socket = pair[0]
        defer { close(pair[1]) }
        let arguments = [
            Self.executable, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
            "--user-data-dir=\(profile)", "--window-size=\(width),\(height)", "--hide-scrollbars",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
            "--disable-background-networking", "--disable-component-update", "--mute-audio", "about:blank",
        ]
        do {
            pid = try Spawn.start(arguments, outputPath: profile + "/chromium.log", descriptors: [pair[1], pair[1]],
                                  newProcessGroup: true)
        } catch {
            close(socket)
            try? FileManager.default.removeItem(atPath: profile)
            throw error
        }
        do {
            _ = try command("Browser.getVersion", timeout: timeout)
        } catch {
            let log = self.log
            stop()
            throw HarnessError("chromium did not answer on its DevTools pipe within \(timeout) s: \(error)\n\(log)")
        }
    }

    deinit { stop() }

    /// Chromium's own output (stdout and stderr) so far.
    var log: String { (try? String(contentsOfFile: profile + "/chromium.log", encoding: .utf8)) ?? "" }

    /// Opens `url` in a new page (the first call creates the page; later calls navigate it) and
    /// waits up to `timeout` seconds for its load event. Throws when the navigation fails (a
    /// refused connection, a bad address) or the page does not load in time.
    func open(_ url: String, timeout: Double = 20) throws {
        let session = try pageSession()
        pendingEvents.removeAll { $0["sessionId"] as? String == session }
        let navigation = try command("Page.navigate", ["url": url], session: session, timeout: timeout)
        if let failure = navigation["errorText"] as? String {
            throw HarnessError("chromium could not open \(url): \(failure)")
        }
        _ = try nextEvent("Page.loadEventFired", session: session, timeout: timeout)
    }

    /// Evaluates `expression` in the page and returns its value as JSON decodes it (String,
    /// NSNumber, [Any], [String: Any], NSNull), or nil for `undefined`. A promise is awaited.
    /// Throws with the exception's text when the script throws.
    @discardableResult
    func evaluate(_ expression: String, timeout: Double = 10) throws -> Any? {
        let reply = try command("Runtime.evaluate", [
            "expression": expression, "returnByValue": true, "awaitPromise": true,
            "timeout": Int(timeout * 1000),
        ], session: try pageSession(), timeout: timeout + 5)
        if let exception = reply["exceptionDetails"] as? [String: Any] {
            let detail = (exception["exception"] as? [String: Any])?["description"] as? String
            throw HarnessError("script threw: \(detail ?? exception["text"] as? String ?? "\(exception)") in \(expression)")
        }
        return (reply["result"] as? [String: Any])?["value"]
    }

    /// Polls the JavaScript `predicate` every 100 ms until it is `true`; returns false if it is
    /// not within `timeout` seconds. An exception while evaluating counts as not yet.
    func waitUntil(_ predicate: String, timeout: Double) -> Bool {
        eventually(timeout: timeout, interval: 0.1) {
            (try? evaluate("Boolean(\(predicate))", timeout: 5)) as? Bool == true
        }
    }

    /// Writes a PNG of the page's viewport to `path`.
    func screenshot(to path: String, timeout: Double = 20) throws {
        let reply = try command("Page.captureScreenshot", ["format": "png"], session: try pageSession(), timeout: timeout)
        guard let encoded = reply["data"] as? String, let png = Data(base64Encoded: encoded) else {
            throw HarnessError("Page.captureScreenshot returned no image")
        }
        try png.write(to: URL(fileURLWithPath: path))
    }

    /// Writes a PNG of the page to the test artifacts (`TestArtifacts`) as `name` and returns its path.
    @discardableResult
    func screenshot(named name: String) throws -> String {
        let path = try TestArtifacts.path(name)
        try screenshot(to: path)
        return path
    }

    /// Closes the browser (`Browser.close`, then SIGKILL to its process group if it has not
    /// exited within 5 s), kills any helper of the group still live, reaps the browser and removes
    /// its profile. Returns once no member of the group is live, or after 10 s; safe to call twice.
    func stop() {
        guard !stopped else { return }
        stopped = true
        _ = try? command("Browser.close", timeout: 2)
        let exited = eventually(timeout: 5, interval: 0.02) { ProcessEntry(pid: pid)?.isLive != true }
        // Not reaped yet, the browser (live or a zombie) keeps its pid, and so the group's id,
        // from being reused: signalling the group cannot reach anyone else's process.
        if !exited || !ProcessTable.liveMembers(ofGroup: pid).isEmpty {
            kill(-pid, SIGKILL)
        }
        _ = eventually(timeout: 10, interval: 0.02) { ProcessTable.liveMembers(ofGroup: pid).isEmpty }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        close(socket)
        try? FileManager.default.removeItem(atPath: profile)
    }

    // MARK: The protocol

    /// The session of the page target, created and attached on first use.
    private func pageSession() throws -> String {
        if let session { return session }
        let target = try command("Target.createTarget", ["url": "about:blank"])
        guard let targetId = target["targetId"] as? String else { throw HarnessError("Target.createTarget: \(target)") }
        let attached = try command("Target.attachToTarget", ["targetId": targetId, "flatten": true])
        guard let id = attached["sessionId"] as? String else { throw HarnessError("Target.attachToTarget: \(attached)") }
        _ = try command("Page.enable", session: id)
        // The window's size includes the (headless) browser's own frame: set the page's.
        _ = try command("Emulation.setDeviceMetricsOverride", [
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false,
        ], session: id)
        if !javaScript {
            _ = try command("Emulation.setScriptExecutionDisabled", ["value": true], session: id)
        }
        session = id
        return id
    }

    /// Sends one command and returns its `result`; throws its `error`, or when no reply comes
    /// within `timeout` seconds. Events read meanwhile are kept for `nextEvent`.
    @discardableResult
    private func command(_ method: String, _ parameters: [String: Any] = [:], session: String? = nil,
                         timeout: Double = 10) throws -> [String: Any] {
        guard !stopped || method == "Browser.close" else { throw HarnessError("chromium was stopped") }
        nextCommand += 1
        let id = nextCommand
        var message: [String: Any] = ["id": id, "method": method, "params": parameters]
        if let session { message["sessionId"] = session }
        let bytes = try JSONSerialization.data(withJSONObject: message) + [0]
        try bytes.withUnsafeBytes { try Sockets.sendAll(socket, $0) }
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let reply = try nextMessage(until: deadline, waitingFor: method)
            guard reply["id"] as? Int == id else {
                if reply["method"] != nil { pendingEvents.append(reply) }
                continue
            }
            if let error = reply["error"] as? [String: Any] {
                throw HarnessError("\(method): \(error["message"] as? String ?? "\(error)")")
            }
            return reply["result"] as? [String: Any] ?? [:]
        }
    }

    /// The next event `method` of `session` (kept or newly read), waiting up to `timeout` seconds.
    private func nextEvent(_ method: String, session: String, timeout: Double) throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let index = pendingEvents.firstIndex(where: { $0["method"] as? String == method && $0["sessionId"] as? String == session }) {
                return pendingEvents.remove(at: index)
            }
            pendingEvents.append(try nextMessage(until: deadline, waitingFor: method))
        }
    }

    /// Reads until one whole NUL-terminated message is buffered and decodes it.
    private func nextMessage(until deadline: Date, waitingFor what: String) throws -> [String: Any] {
        while true {
            if let end = received[scannedUpTo...].firstIndex(of: 0) {
                let message = Array(received[..<end])
                received.removeSubrange(...end)
                scannedUpTo = 0
                guard let object = try JSONSerialization.jsonObject(with: Data(message)) as? [String: Any] else {
                    throw HarnessError("chromium sent a message that is not a JSON object")
                }
                return object
            }
            scannedUpTo = received.count
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { throw HarnessError("no reply from chromium for \(what) in time") }
            var poller = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(min(left, 1) * 1000) + 1)
            if ready < 0 && errno != EINTR { throw SocketError(call: "poll", code: errno) }
            guard ready > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 1 << 20)
            let count = chunk.withUnsafeMutableBytes { read(socket, $0.baseAddress, $0.count) }
            if count < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            guard count > 0 else {
                throw HarnessError("chromium closed its DevTools pipe (exited?) while waiting for \(what)")
            }
            received += chunk[..<count]
        }
    }
}
