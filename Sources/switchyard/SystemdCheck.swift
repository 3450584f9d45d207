import ArgumentParser
import Glibc
import Logging
import SwitchyardCore
import SwitchyardIO

/// `switchyard systemd-check [--config FILE]` (hidden): what systemd passed this process and
/// how it matches a configuration, without serving. Run it as a socket unit's service, or under
/// `systemd-socket-activate`, to see which activated socket would serve which listener.
struct SystemdCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "systemd-check",
        abstract: "Show the sockets systemd passed (LISTEN_FDS) and match them to a configuration's listeners; exit 1 on any mismatch.",
        shouldDisplay: false
    )

    @Option(help: ArgumentHelp("The YAML configuration file whose listen addresses the sockets are matched to.", valueName: "FILE"))
    var config: String?

    @Option(help: "Worker threads to plan for (default: the file's workers, else 1); fewer sockets than workers for an address is warned about.")
    var workers: Int?

    @Flag(help: "Also allow listeners systemd passed no socket for (they would be bound by switchyard itself).")
    var allowUnactivated = false

    @Flag(help: "Send READY=1 with a STATUS= line to NOTIFY_SOCKET once done.")
    var notifyReady = false

    func run() throws {
        let logger = Logger(label: "switchyard")
        let sockets: [ActivatedListener]
        do {
            sockets = try SocketActivation.takeListeners(logger: logger)
        } catch {
            fail(error.message)
        }
        for socket in sockets {
            print("activated \(socket) reuseport \(socket.reusePort ? "yes" : "no")")
        }
        let left = ListenEnvironment.variableNames.filter { getenv($0) != nil }
        print(left.isEmpty ? "LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES: unset" : "still set: \(left.joined(separator: ", "))")

        var problems: [String] = []
        if let config {
            let configuration: Configuration
            do {
                configuration = try Instance.readConfiguration(config)
            } catch {
                fail(error.message)
            }
            var listeners: [ActivationMatch.ConfiguredListener] = []
            for (service, endpoint) in configuration.listeners {
                do {
                    listeners.append(.init(service: service, endpoint: try resolve(endpoint)))
                } catch {
                    fail("service \(service): \(error.message)")
                }
            }
            let match = ActivationMatch(sockets: sockets, listeners: listeners)
            for assignment in match.assignments {
                let descriptors = assignment.sockets.map { "fd \($0.descriptor)" }.joined(separator: ", ")
                print("service \(assignment.listener.service) \(assignment.listener.endpoint) <- \(descriptors)")
            }
            for warning in match.sharingWarnings(workers: workers ?? configuration.global.workers ?? 1) {
                writeError("warning: \(warning)\n")
            }
            problems = match.problems(allowUnactivated: allowUnactivated)
        }
        for problem in problems { writeError("\(problem)\n") }
        if notifyReady {
            let status = "systemd-check: \(sockets.count) socket(s), \(problems.count) problem(s)"
            SystemdNotifier.fromEnvironment(logger: logger).ready(status: status)
        }
        if !problems.isEmpty { Glibc.exit(1) }
    }
}
