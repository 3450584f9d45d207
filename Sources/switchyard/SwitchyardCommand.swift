import ArgumentParser
import Glibc
import Logging
import SwitchyardCore
import SwitchyardIO

@main
struct Switchyard: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchyard",
        abstract: "A layer-4 TCP load balancer whose data path is io_uring.",
        version: "switchyard \(BuildInfo.current)",
        subcommands: [Serve.self, Admin.self, CheckConfig.self, SystemdCheck.self],
        defaultSubcommand: Serve.self
    )

    /// Parses and runs; a bad argument is one line on standard error and a non-zero exit.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Glibc.exit(0)
            }
            let message = Switchyard.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            writeError("switchyard: error: \(message)\n")
            Glibc.exit(code.rawValue == 0 ? 1 : code.rawValue)
        }
    }
}

/// Prints one error line and exits non-zero (startup failures after parsing).
func fail(_ message: String) -> Never {
    writeError("switchyard: error: \(message)\n")
    Glibc.exit(1)
}

/// Writes `text` to standard error unbuffered.
func writeError(_ text: String) {
    var bytes = Array(text.utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
}
