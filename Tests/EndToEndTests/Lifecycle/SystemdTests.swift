import Foundation
import Glibc
import Testing

// Socket activation and readiness through the real binary: `systemd-socket-activate` (Debian's
// systemd package; no systemd needs to run as PID 1) binds the listeners, waits for a first
// client, then execs `switchyard systemd-check` with LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES and
// the descriptors from fd 3, as systemd would. The unit files in Scripts/ are checked with
// `systemd-analyze verify`.

private let socketActivate = "/usr/bin/systemd-socket-activate"
private let systemdAnalyze = "/usr/bin/systemd-analyze"

/// The binary under test (`SWITCHYARD_BIN` or `.build/debug/switchyard`).
private func builtBinary() throws -> String {
    try SwitchyardProcess.binaryURL().path
}

private struct Finished {
    var status: Int32
    var standardOutput: String
    var standardError: String
}

/// Runs `executable` to completion (at most `timeout` seconds, then SIGKILL), with exactly
/// `environment`; `whileRunning` runs once it started (to connect the first client).
private func runToCompletion(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                             timeout: Double = 20, whileRunning: () throws -> Void = {}) throws -> Finished {
    let folder = try ConfiguredProxy.makeFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let outputPath = folder + "/stdout"
    let errorPath = folder + "/stderr"
    _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
    _ = FileManager.default.createFile(atPath: errorPath, contents: nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.environment = environment
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
    process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errorPath))
    try process.run()
    defer { if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() } }
    try whileRunning()
    guard eventually(timeout: timeout, interval: 0.01, { !process.isRunning }) else {
        throw HarnessError("\(executable) \(arguments.joined(separator: " ")) did not exit within \(timeout) s")
    }
    process.waitUntilExit()
    return Finished(status: process.terminationStatus,
                    standardOutput: (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "",
                    standardError: (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "")
}

/// Connects to `endpoint` once it accepts, retrying for a few seconds (systemd-socket-activate
/// binds a moment after it starts); the connection is what makes it exec the service.
private func connectWhenListening(_ endpoint: TCPEndpoint) throws -> Int32 {
    var last: Error?
    for _ in 0..<500 {
        do {
            let fd = try Sockets.makeTCPSocket(for: endpoint.host)
            do {
                try endpoint.withSocketAddress { address, length in _ = try systemCall("connect") { connect(fd, address, length) } }
                return fd
            } catch {
                close(fd)
                throw error
            }
        } catch {
            last = error
            usleep(10_000)
        }
    }
    throw HarnessError("\(endpoint) never accepted: \(last.map { "\($0)" } ?? "")")
}

/// An abstract-namespace datagram socket standing in for systemd's NOTIFY_SOCKET.
private final class NotifySocket {
    let fd: Int32
    let name: String

    init() throws {
        name = "swy-e2e-notify-\(getpid())-\(UUID().uuidString.prefix(8))"
        fd = try systemCall("socket") { socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = [UInt8(0)] + Array(name.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count)
        let socketFD = fd
        try systemCall("bind @\(name)") {
            withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socketFD, $0, length) } }
        }
        try Sockets.setOption(fd, SOL_SOCKET, SO_RCVTIMEO, Sockets.timeval(seconds: 5))
    }

    deinit { close(fd) }

    var environmentValue: String { "@" + name }

    func next() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(fd, &buffer, buffer.count, 0)
        return count < 0 ? nil : String(decoding: buffer[..<count], as: UTF8.self)
    }
}

private func writeConfig(_ yaml: String) throws -> (folder: String, path: String) {
    let folder = try ConfiguredProxy.makeFolder()
    let path = folder + "/switchyard.yaml"
    try ConfiguredProxy.write(yaml, to: path)
    return (folder, path)
}

@Test(.enabled(if: FileManager.default.isExecutableFile(atPath: socketActivate), "needs \(socketActivate) (Debian package systemd)"))
func socketActivatedListenersAreNamedMatchedToTheConfigurationAndReported() throws {
    let binary = try builtBinary()
    let web = try Sockets.freeEndpoint()
    let v6 = try Sockets.freeEndpoint(host: Sockets.ipv6Loopback)
    let (folder, config) = try writeConfig("""
        services:
          web:
            listen: ["\(web)"]
            backends: ["127.0.0.1:9"]
          api:
            listen: ["\(v6)"]
            backends: ["127.0.0.1:9"]
        """)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let notify = try NotifySocket()
    var client: Int32 = -1
    let result = try runToCompletion(socketActivate, [
        "--listen=\(web)", "--listen=\(v6)", "--fdname=web:switchyard.socket",
        "--setenv=NOTIFY_SOCKET=\(notify.environmentValue)",
        binary, "systemd-check", "--config", config, "--notify-ready",
    ], whileRunning: { client = try connectWhenListening(web) })
    defer { if client >= 0 { close(client) } }

    #expect(result.status == 0, "\(result.standardError)")
    let lines = result.standardOutput.split(separator: "\n").map(String.init)
    #expect(lines == [
        "activated fd 3 (name 'web', \(web)) reuseport no",
        "activated fd 4 (name 'switchyard.socket', \(v6)) reuseport no",
        "LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES: unset",
        "service api \(v6) <- fd 4",
        "service web \(web) <- fd 3",
    ])
    #expect(notify.next() == "READY=1\nSTATUS=systemd-check: 2 socket(s), 0 problem(s)\n")
}

@Test(.enabled(if: FileManager.default.isExecutableFile(atPath: socketActivate), "needs \(socketActivate) (Debian package systemd)"))
func aSocketNoServiceListensOnAndAListenerWithoutSocketAreEachNamed() throws {
    let binary = try builtBinary()
    let stray = try Sockets.freeEndpoint()
    let missing = try Sockets.freeEndpoint()
    let (folder, config) = try writeConfig("""
        workers: 2
        services:
          web:
            listen: ["\(missing)"]
            backends: ["127.0.0.1:9"]
        """)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    var client: Int32 = -1
    let result = try runToCompletion(socketActivate, [
        "--listen=\(stray)", binary, "systemd-check", "--config", config,
    ], whileRunning: { client = try connectWhenListening(stray) })
    defer { if client >= 0 { close(client) } }

    #expect(result.status == 1)
    #expect(result.standardOutput.contains("activated fd 3 (\(stray)) reuseport no"))
    #expect(result.standardError.contains("systemd passed fd 3 (\(stray)), but no service listens on \(stray); remove it from the socket unit or add it to a service's listen addresses"))
    #expect(result.standardError.contains("service web listens on \(missing), but systemd passed no socket for it; add ListenStream=\(missing) to the socket unit"))
}

@Test func listenVariablesMeantForAnotherProcessAreIgnoredAndUnset() throws {
    let binary = try builtBinary()
    let result = try runToCompletion(binary, ["systemd-check"], environment: ["LISTEN_FDS": "2", "LISTEN_PID": "1", "LISTEN_FDNAMES": "a:b"])
    #expect(result.status == 0)
    #expect(result.standardOutput == "LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES: unset\n")
    #expect(result.standardError.contains("ignoring LISTEN_FDS=2: LISTEN_PID=1 is another process"))
}

@Test func malformedListenVariablesStopWithOneLine() throws {
    let binary = try builtBinary()
    let result = try runToCompletion(binary, ["systemd-check"], environment: ["LISTEN_FDS": "2", "LISTEN_PID": "x"])
    #expect(result.status == 1)
    #expect(result.standardError == "switchyard: error: LISTEN_PID 'x' is not a process id\n")
}

// MARK: - Unit files

private func scriptsFolder() -> URL {
    SwitchyardProcess.repositoryRoot.appendingPathComponent("Scripts")
}

/// `KEY=VALUE` lines of a unit file (comments and sections skipped), repeated keys kept in order.
private func unitSettings(_ name: String) throws -> [(key: String, value: String)] {
    let text = try String(contentsOf: scriptsFolder().appendingPathComponent(name), encoding: .utf8)
    return text.split(separator: "\n").compactMap { line in
        guard !line.hasPrefix("#"), !line.hasPrefix("["), let equals = line.firstIndex(of: "=") else { return nil }
        return (String(line[..<equals]), String(line[line.index(after: equals)...]))
    }
}

@Test func theServiceUnitNotifiesReloadsSynchronouslyAndIsHardened() throws {
    let settings = try unitSettings("switchyard.service")
    func value(_ key: String) -> String? { settings.first { $0.key == key }?.value }
    #expect(value("Type") == "notify")
    #expect(value("NotifyAccess") == "all")
    let start = try #require(value("ExecStart"))
    #expect(start.hasPrefix("/usr/local/bin/switchyard serve --config /etc/switchyard/switchyard.yaml"))
    #expect(start.contains("--admin-socket /run/switchyard/admin.sock"))
    #expect(start.contains("--state-file /var/lib/switchyard/state"))
    #expect(value("ExecReload") == "/usr/local/bin/switchyard admin --socket /run/switchyard/admin.sock reload")
    #expect(value("RuntimeDirectory") == "switchyard")
    #expect(value("StateDirectory") == "switchyard")
    #expect(value("DynamicUser") == "yes")
    #expect(value("NoNewPrivileges") == "yes")
    #expect(value("ProtectSystem") == "strict")
    #expect(value("LimitNOFILE") == "1048576")
    #expect(value("CapabilityBoundingSet") == "CAP_NET_BIND_SERVICE")
    #expect(value("AmbientCapabilities") == "CAP_NET_BIND_SERVICE")
    #expect(value("SystemCallFilter") == "@system-service")
}

@Test func theSocketUnitGivesEachWorkerAReusePortSocketForItsService() throws {
    let settings = try unitSettings("switchyard.socket")
    #expect(settings.filter { $0.key == "ListenStream" }.map(\.value) == ["0.0.0.0:80", "0.0.0.0:80"])
    #expect(settings.contains { $0 == ("ReusePort", "yes") })
    #expect(settings.contains { $0 == ("BindIPv6Only", "ipv6-only") })
    #expect(settings.contains { $0 == ("Service", "switchyard.service") })
}

@Test(.enabled(if: FileManager.default.isExecutableFile(atPath: systemdAnalyze), "needs \(systemdAnalyze) (Debian package systemd); unit files not verified"))
func unitFilesPassSystemdAnalyzeVerify() throws {
    // verify checks that ExecStart's binary exists, so the copies point at the one just built.
    let binary = try builtBinary()
    let folder = try ConfiguredProxy.makeFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    for name in ["switchyard.service", "switchyard.socket"] {
        let text = try String(contentsOf: scriptsFolder().appendingPathComponent(name), encoding: .utf8)
        try text.replacingOccurrences(of: "/usr/local/bin/switchyard", with: binary)
            .write(toFile: folder + "/" + name, atomically: true, encoding: .utf8)
    }
    let result = try runToCompletion(systemdAnalyze, ["verify", folder + "/switchyard.socket", folder + "/switchyard.service"],
                                     environment: ["PATH": "/usr/bin:/bin", "SYSTEMD_LOG_LEVEL": "info"])
    #expect(result.status == 0, "\(result.standardError)")
    // Unknown or misspelt keys are only warnings: any line about these files is a failure.
    let complaints = result.standardError.split(separator: "\n").filter { $0.contains("switchyard.s") }
    #expect(complaints.isEmpty, "\(complaints.joined(separator: "\n"))")
}
