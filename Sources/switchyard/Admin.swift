import ArgumentParser
import Glibc
import SwitchyardCore
import SwitchyardIO

struct Admin: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send one command to a running switchyard's admin socket and print the reply.",
        // The command list is the admin socket's own `help` reply: a new verb needs no edit here.
        discussion: "Commands:\n" + AdminCommand.usage.map { "  " + $0 }.joined(separator: "\n") + """


        Exits 0 when the reply is OK, 1 when it is an error, 2 when the socket cannot be reached \
        or is served by another user than this one or root. 'top' is a live full-screen view of \
        the backends, refreshed every second; q quits.
        """
    )

    @Option(help: ArgumentHelp("Path of the admin socket. The same default as `serve`: /run/switchyard/admin.sock for root, else $XDG_RUNTIME_DIR/switchyard.sock.", valueName: "PATH"))
    var socket: String?

    @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("The command and its arguments.", valueName: "COMMAND"))
    var words: [String] = []

    func validate() throws {
        // The words are captured as they come, flags included: `admin --help` is asked here.
        if let first = words.first, first == "--help" || first == "-h" { throw CleanExit.helpRequest(self) }
        if words.isEmpty { throw ValidationError("a COMMAND is required; 'switchyard admin help' lists them") }
    }

    func run() throws {
        let path: String
        do {
            path = if let socket { socket } else { try AdminSocketPath.current(option: "--socket") }
        } catch {
            writeError("switchyard admin: \(error)\n")
            Glibc.exit(2)
        }
        if words.count == 1 && words[0].lowercased() == "top" {
            AdminTop.run(socketPath: path)
        }
        do {
            let (ok, reply) = try AdminClient.send(command: words.joined(separator: " "), socketPath: path)
            print(reply)
            Glibc.exit(ok ? 0 : 1)
        } catch {
            writeError("switchyard admin: \(error)\n")
            Glibc.exit(2)
        }
    }
}
