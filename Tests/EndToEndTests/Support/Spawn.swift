import Foundation
import Glibc

/// posix_spawn(3) for children that need more than Foundation's Process gives: descriptors at
/// fixed numbers (3, 4, ...), a process group of their own, no descriptor watched by Process.
enum Spawn {
    /// Starts `arguments[0]` with `arguments`, as a shell would: standard input from /dev/null,
    /// standard output and error into `outputPath` (created or truncated), an empty signal mask
    /// (the test runner's threads block SIGINT and SIGTERM, and a child would inherit that) and
    /// SIGTERM, SIGINT, SIGHUP and SIGPIPE at their default actions. `descriptors[i]` becomes
    /// descriptor 3 + i of the child (one descriptor may be given twice). With `newProcessGroup`
    /// the child leads a group of its own, whose id is its pid. Returns its pid; the caller reaps it.
    static func start(_ arguments: [String], environment: [String: String] = ProcessInfo.processInfo.environment,
                      outputPath: String, descriptors: [Int32] = [], newProcessGroup: Bool = false) throws -> pid_t {
        // Moved above the targets first, so that no dup2 to 3, 4, ... overwrites one still to place.
        var moved: [Int32] = []
        defer { for fd in moved { close(fd) } }
        for fd in descriptors {
            moved.append(try systemCall("fcntl(F_DUPFD_CLOEXEC)") { fcntl(fd, F_DUPFD_CLOEXEC, 100) })
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        for (index, fd) in moved.enumerated() {
            posix_spawn_file_actions_adddup2(&actions, fd, 3 + Int32(index))
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if newProcessGroup {
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))
        let argv = arguments.map { strdup($0) } + [nil]
        let environ = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + environ).forEach { free($0) } }
        var child: pid_t = 0
        let result = posix_spawn(&child, arguments[0], &actions, &attributes, argv, environ)
        guard result == 0 else { throw SocketError(call: "posix_spawn \(arguments[0])", code: result) }
        return child
    }
}
