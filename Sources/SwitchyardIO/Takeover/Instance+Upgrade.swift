import CSwitchyard
import Glibc
import SwitchyardCore

// SIGUSR2: a binary upgrade from inside the service. The running process starts its successor,
// the binary now at the path it was started from, with its own arguments plus `--takeover`;
// the successor takes over (Instance+Takeover.swift) and this process drains and exits 0. Under
// systemd the successor is in the service's control group, runs as the same (dynamic) user with
// the same sandbox and environment (NOTIFY_SOCKET), and says MAINPID=, none of which a
// `switchyard serve --takeover` typed in a shell would get. A successor that fails logs why on
// the same standard error and exits non-zero; this process reaps it and carries on.
extension Instance {
    /// Starts the successor (main thread, on SIGUSR2); at most one at a time.
    func startSuccessor() {
        if let running = takeover.successorProcess {
            logger.notice("SIGUSR2: pid \(running) is already starting to take over; ignored")
            return
        }
        let executable = Self.executablePath()
        var arguments = Array(CommandLine.arguments.dropFirst())
        if !arguments.contains("--takeover") {
            let end = arguments.firstIndex(of: "--") ?? arguments.endIndex
            arguments.insert("--takeover", at: end)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // This thread blocks the termination signals (`blockTerminationSignals`); the successor
        // must start with none blocked, as from a shell or a service manager.
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
        // Only standard input, output and error go to the successor: it receives the listeners
        // over the admin socket, and a descriptor this process inherited without close-on-exec
        // (a supervisor's pipe, say, by which it notices this process exiting) must not live on
        // in it.
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        _ = swy_spawn_close_from(&actions, 3)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var child: pid_t = 0
        // The successor inherits the environment (NOTIFY_SOCKET; LISTEN_* were unset at start).
        let result = posix_spawn(&child, executable, &actions, &attributes, argv, environ)
        guard result == 0 else {
            logger.error("SIGUSR2: cannot start \(executable): \(SystemCallError(call: "posix_spawn", errno: result)); still serving")
            return
        }
        takeover.successorProcess = child
        logger.notice("SIGUSR2: started \(executable) \(arguments.joined(separator: " ")) as pid \(child) to take over")
    }

    /// Reaps a successor that exited (main thread, each `serve()` turn): one that failed says
    /// why on standard error itself.
    func reapSuccessor() {
        guard let child = takeover.successorProcess else { return }
        var status: Int32 = 0
        guard waitpid(child, &status, WNOHANG) == child else { return }
        takeover.successorProcess = nil
        guard !takeover.committed else { return }
        let signal = status & 0x7F
        let how = signal == 0 ? "with status \((status >> 8) & 0xFF)" : "on signal \(signal)"
        logger.warning("the successor pid \(child) exited \(how) without taking over; still serving")
    }

    /// The binary at the path this process was started from: argv[0] when it names a path (an
    /// upgrade replaces the file there), else what /proc/self/exe links to (without the
    /// " (deleted)" the kernel adds once that file was replaced).
    static func executablePath() -> String {
        if let first = CommandLine.arguments.first, first.contains("/") { return first }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { return CommandLine.arguments.first ?? "switchyard" }
        let path = String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return path.hasSuffix(" (deleted)") ? String(path.dropLast(" (deleted)".count)) : path
    }
}
