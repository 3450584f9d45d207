import ArgumentParser
import Glibc
import SwitchyardCore
import SwitchyardIO

/// `switchyard check-config FILE`: validates a configuration file as `nginx -t` and
/// `haproxy -c` do, resolving every name, without starting anything.
struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate a configuration file (and resolve its names); exit 0 when it is valid, 1 with the errors when not."
    )

    @Argument(help: ArgumentHelp("The YAML configuration file.", valueName: "FILE"))
    var file: String

    func run() throws {
        let configuration: Configuration
        do {
            configuration = try Instance.readConfiguration(file)
        } catch {
            writeError("\(error.message)\n")
            Glibc.exit(1)
        }
        let problems = Instance.resolutionProblems(configuration) + Instance.tlsProblems(configuration)
        if !problems.isEmpty {
            for problem in problems { writeError("\(file): \(problem)\n") }
            Glibc.exit(1)
        }
        let listeners = configuration.listeners.count
        let backends = configuration.services.reduce(0) { $0 + $1.backends.count }
        print("\(file): valid: \(configuration.services.count) service(s), \(listeners) listener(s), \(backends) backend(s)")
    }
}
