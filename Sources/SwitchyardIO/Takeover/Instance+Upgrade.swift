import CSwitchyard
import Glibc
import SwitchyardCore

// SIGUSR2: a binary upgrade from inside the service. The running process starts its successor,
// the binary now at the path it was started from, with its own arguments plus `--takeover`;
// the successor takes over (Instance+TakeOver.swift) and this process drains and exits 0. Under
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
        let executable = ChildProcess.executablePath()
        var arguments = Array(CommandLine.arguments.dropFirst())
        if !arguments.contains("--takeover") {
            let end = arguments.firstIndex(of: "--") ?? arguments.endIndex
            arguments.insert("--takeover", at: end)
        }
        let child: pid_t
        do {
            child = try ChildProcess.spawn(executable, arguments: arguments)
        } catch {
            logger.error("SIGUSR2: cannot start \(executable): \(error); still serving")
            return
        }
        takeover.successorProcess = child
        logger.notice("SIGUSR2: started \(executable) \(arguments.joined(separator: " ")) as pid \(child) to take over")
    }

    /// Reaps a successor that exited (main thread, each `serve()` turn): one that failed says
    /// why on standard error itself.
    func reapSuccessor() {
        guard let child = takeover.successorProcess else { return }
        guard let status = ChildProcess.exitStatus(child) else { return }
        takeover.successorProcess = nil
        guard !takeover.committed else { return }
        let signal = status & 0x7F
        let how = signal == 0 ? "with status \((status >> 8) & 0xFF)" : "on signal \(signal)"
        logger.warning("the successor pid \(child) exited \(how) without taking over; still serving")
    }
}
