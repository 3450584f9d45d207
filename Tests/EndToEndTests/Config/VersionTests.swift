import Foundation
import Testing

extension EndToEnd {
    @Suite struct VersionTests {
        /// Runs `executable arguments` to its end (bounded) and returns its status and stdout.
        static func run(_ executable: URL, _ arguments: [String], in directory: URL? = nil) throws -> (Int32, String) {
            let process = Process()
            process.executableURL = executable
            process.arguments = arguments
            if let directory { process.currentDirectoryURL = directory }
            let output = Pipe()
            process.standardOutput = output
            process.standardError = FileHandle.nullDevice
            try process.run()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: data, as: UTF8.self))
        }

        @Test func versionPrintsTheVersionAndTheBuildsCommit() throws {
            let binary = try SwitchyardProcess.binaryURL()
            let (status, output) = try Self.run(binary, ["--version"])
            #expect(status == 0)
            let match = try #require(output.wholeMatch(of: /switchyard (\d+\.\d+\.\d+) \(commit ([0-9a-f]{12}(-dirty)?|unknown)\)\n/))
            #expect(match.1 == "0.1.0")
            // Built from this checkout: the commit is the one git reports for it (unless the
            // binary under test came from elsewhere through SWITCHYARD_BIN).
            guard ProcessInfo.processInfo.environment["SWITCHYARD_BIN"] == nil else { return }
            let root = SwitchyardProcess.repositoryRoot
            let (gitStatus, head) = try Self.run(URL(fileURLWithPath: "/usr/bin/git"), ["-C", root.path, "rev-parse", "--short=12", "HEAD"])
            if gitStatus == 0 {
                #expect(match.2.hasPrefix(head.trimmingCharacters(in: .whitespacesAndNewlines)))
            } else {
                #expect(match.2 == "unknown")
            }
        }
    }
}
