import Foundation
import Testing
import SwitchyardCore

/// A command line the proxy must reject, and the value its error line has to name.
struct InvalidInvocation: Sendable, CustomTestStringConvertible {
    let testDescription: String
    /// Text the single stderr line must contain (case-insensitive).
    let namedValue: String
    /// Builds the arguments from a free listen address and a syntactically valid backend.
    let makeArguments: @Sendable (_ listen: String, _ backend: String) -> [String]

    static let all: [InvalidInvocation] = [
        InvalidInvocation(testDescription: "no backends", namedValue: "backend") { listen, _ in
            ["serve", "--listen", listen]
        },
        InvalidInvocation(testDescription: "port out of range", namedValue: "99999") { _, backend in
            ["serve", "--listen", "127.0.0.1:99999", backend]
        },
        InvalidInvocation(testDescription: "unknown relay mode", namedValue: "teleport") { listen, backend in
            ["serve", "--listen", listen, "--relay", "teleport", backend]
        },
        InvalidInvocation(testDescription: "malformed duration", namedValue: "5x") { listen, backend in
            ["serve", "--listen", listen, "--connect-timeout", "5x", backend]
        },
        InvalidInvocation(testDescription: "no listen address", namedValue: "--listen") { _, backend in
            ["serve", backend]
        },
        InvalidInvocation(testDescription: "zero workers", namedValue: "--workers 0") { listen, backend in
            ["serve", "--listen", listen, "--workers", "0", backend]
        },
        InvalidInvocation(testDescription: "backend listed twice", namedValue: "twice") { listen, backend in
            ["serve", "--listen", listen, backend, backend]
        },
        InvalidInvocation(testDescription: "weight out of range", namedValue: "weight '300'") { listen, backend in
            ["serve", "--listen", listen, "\(backend),weight=300"]
        },
        InvalidInvocation(testDescription: "unknown balance", namedValue: "fastest") { listen, backend in
            ["serve", "--listen", listen, "--balance", "fastest", backend]
        },
        InvalidInvocation(testDescription: "buffers not a power of two", namedValue: "--buffers 1000") { listen, backend in
            ["serve", "--listen", listen, "--buffers", "1000", backend]
        },
        InvalidInvocation(testDescription: "parked memory out of range", namedValue: "parked-memory") { listen, backend in
            ["serve", "--listen", listen, "--parked-memory", "0", backend]
        },
        InvalidInvocation(testDescription: "fall out of range", namedValue: "fall 0") { listen, backend in
            ["serve", "--listen", listen, "--fall", "0", backend]
        },
        InvalidInvocation(testDescription: "bad escape in health payload", namedValue: "\\q") { listen, backend in
            ["serve", "--listen", listen, "--health-send", "PING\\q", backend]
        },
        InvalidInvocation(testDescription: "unknown option", namedValue: "--frobnicate") { listen, backend in
            ["serve", "--listen", listen, "--frobnicate", backend]
        },
        InvalidInvocation(testDescription: "config file mixed with backends", namedValue: "--config /nonexistent.yaml and backends") { _, backend in
            ["serve", "--config", "/nonexistent.yaml", backend]
        },
        InvalidInvocation(testDescription: "config file mixed with --balance", namedValue: "--balance cannot be mixed") { _, _ in
            ["serve", "--config", "/nonexistent.yaml", "--balance", "weighted"]
        },
        // Source addresses (issue 13).
        InvalidInvocation(testDescription: "source with a port", namedValue: "'127.0.0.2:80' is not an IP address") { listen, backend in
            ["serve", "--listen", listen, "--source", "127.0.0.2:80", backend]
        },
        InvalidInvocation(testDescription: "IPv6 backend with only IPv4 sources", namedValue: "is IPv6 but source lists only IPv4") { listen, _ in
            ["serve", "--listen", listen, "--source", "127.0.0.2", "[::1]:5432"]
        },
        InvalidInvocation(testDescription: "config file mixed with --source", namedValue: "--source cannot be mixed") { _, _ in
            ["serve", "--config", "/nonexistent.yaml", "--source", "127.0.0.2"]
        },
        InvalidInvocation(testDescription: "check-port out of range", namedValue: "check-port '0'") { listen, backend in
            ["serve", "--listen", listen, "\(backend),check-port=0"]
        },
        InvalidInvocation(testDescription: "config file that does not exist", namedValue: "/nonexistent.yaml: no such file") { _, _ in
            ["serve", "--config", "/nonexistent.yaml"]
        },
        InvalidInvocation(testDescription: "admin socket mode not octal", namedValue: "'0689' is not an octal file mode") { listen, backend in
            ["serve", "--listen", listen, "--admin-socket-mode", "0689", backend]
        },
        InvalidInvocation(testDescription: "admin socket mode locking the owner out", namedValue: "mode 0066 must let the owner read and write") { listen, backend in
            ["serve", "--listen", listen, "--admin-socket-mode", "0066", backend]
        },
        // A per-service flag's rule is its file key's, with the same message (ServiceKey).
        InvalidInvocation(testDescription: "idle timeout of zero", namedValue: "idle-timeout must be longer than 0") { listen, backend in
            ["serve", "--listen", listen, "--idle-timeout", "0s", backend]
        },
        InvalidInvocation(testDescription: "slow start over an hour", namedValue: "slow-start '2h' must be at most 1h") { listen, backend in
            ["serve", "--listen", listen, "--slow-start", "2h", backend]
        },
        // Per-client controls.
        InvalidInvocation(testDescription: "rate without /s", namedValue: "'10'") { listen, backend in
            ["serve", "--listen", listen, "--connection-rate-per-source", "10", backend]
        },
        InvalidInvocation(testDescription: "burst without a rate", namedValue: "connection-burst-per-source needs connection-rate-per-source") { listen, backend in
            ["serve", "--listen", listen, "--connection-burst-per-source", "5", backend]
        },
        InvalidInvocation(testDescription: "deny with a host bit set", namedValue: "10.0.0.0/8") { listen, backend in
            ["serve", "--listen", listen, "--deny", "10.0.0.1/8", backend]
        },
    ]
}

extension EndToEnd {
    @Suite struct ArgumentValidation {
        @Test(arguments: InvalidInvocation.all)
        func invalidArgumentsExitNonZeroWithOneStderrLineNamingTheBadValue(_ invocation: InvalidInvocation) throws {
            let listen = try Sockets.freeEndpoint().description
            let backend = try Sockets.freeEndpoint().description
            let proxy = try SwitchyardProcess(arguments: invocation.makeArguments(listen, backend))

            let status = proxy.waitForExit(timeout: 30)

            let stderr = proxy.standardError
            #expect(status != nil, "still running 30 s after bad arguments")
            #expect(status != 0, "exited 0 for bad arguments")
            let lines = stderr.split(whereSeparator: \.isNewline).filter {
                !$0.allSatisfy(\.isWhitespace)
            }
            #expect(lines.count == 1, "expected exactly one stderr line, got:\n\(stderr)")
            #expect(
                lines.first?.lowercased().contains(invocation.namedValue.lowercased()) == true,
                "stderr does not name '\(invocation.namedValue)':\n\(stderr)")
        }

        @Test func adminHelpListsEveryCommand() throws {
            let run = try AdminSocket.runClient(["--help"])
            #expect(run.exitStatus == 0, "\(run)")
            // The help is wrapped to the terminal's width: compare with single spaces.
            let text = run.standardOutput.split(whereSeparator: \.isWhitespace).joined(separator: " ")
            // Every command of the socket's own `help` reply, as it lists it.
            let commands = AdminCommand.usage.compactMap { line -> String? in
                guard let gap = line.range(of: "  ") else { return nil }
                return String(line[..<gap.lowerBound])
            }
            #expect(commands.count >= 14)
            for command in commands + ["USAGE: switchyard admin"] {
                #expect(text.contains(command), "\(command): \(run)")
            }
        }
    }
}
