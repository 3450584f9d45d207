import CSwitchyard
import Glibc

/// Starting and reaping a child process (the SIGUSR2 successor), and finding this process's
/// own binary.
enum ChildProcess {
    /// Starts `executable` with `arguments`, this process's environment, no signal blocked,
    /// and only descriptors 0, 1 and 2: the successor receives the listeners over the admin
    /// socket, and a descriptor this process inherited without close-on-exec (a supervisor's
    /// pipe, say, by which it notices this process exiting) must not live on in it. Returns
    /// the child's process id.
    static func spawn(_ executable: String, arguments: [String]) throws(SystemCallError) -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // The calling thread blocks the termination signals (`blockTerminationSignals`); the
        // child must start with none blocked, as from a shell or a service manager.
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        _ = swy_spawn_close_from(&actions, 3)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var child: pid_t = 0
        // posix_spawn(3) returns the error number itself rather than setting errno.
        let result = posix_spawn(&child, executable, &actions, &attributes, argv, environ)
        guard result == 0 else { throw SystemCallError(call: "posix_spawn", errno: result) }
        return child
    }

    /// The wait status of `child` if it has exited (and is now reaped), nil while it runs.
    static func exitStatus(_ child: pid_t) -> Int32? {
        var status: Int32 = 0
        let reaped = systemCallResult { Int(waitpid(child, &status, WNOHANG)) }
        return reaped == Int(child) ? status : nil
    }

    /// The binary at the path this process was started from: argv[0] when it names a path (an
    /// upgrade replaces the file there), else what /proc/self/exe links to (without the
    /// " (deleted)" the kernel adds once that file was replaced).
    static func executablePath() -> String {
        if let first = CommandLine.arguments.first, first.contains("/") { return first }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = systemCallResult { readlink("/proc/self/exe", &buffer, buffer.count - 1) }
        guard length > 0 else { return CommandLine.arguments.first ?? "switchyard" }
        let path = String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return path.hasSuffix(" (deleted)") ? String(path.dropLast(" (deleted)".count)) : path
    }
}
