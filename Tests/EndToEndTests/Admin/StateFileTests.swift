import Foundation
import Glibc
import Testing

extension EndToEnd {
    /// The state file is written through a temporary file beside it (`PATH.tmp.PID`).
    @Suite struct StateFile {
        /// The permission bits of `path` itself (not of what a symlink there points at), nil if absent.
        private func mode(of path: String) -> mode_t? {
            var status = stat()
            return lstat(path, &status) == 0 ? status.st_mode : nil
        }

        @Test func theTemporaryFileNeverFollowsAPlantedSymlinkAndTheStateFileIsPrivate() throws {
            let a = try TestBackend(.echo), b = try TestBackend(.echo)
            let listen = try Sockets.freeEndpoint()
            let folder = try ConfiguredProxy.makeFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let statePath = folder + "/state"
            let proxy = try ConfiguredProxy(yaml: """
                state-file: \(statePath)
                services:
                  s:
                    listen: ["\(listen)"]
                    health: off
                    backends: ["\(a.endpoint)", "\(b.endpoint)"]
                """, listen: [listen], folder: folder)
            let temporary = "\(statePath).tmp.\(proxy.process.pid)"

            // Someone who can write in the folder points the temporary name at a file of theirs.
            let victim = folder + "/victim"
            try ConfiguredProxy.write("precious\n", to: victim)
            #expect(symlink(victim, temporary) == 0)
            #expect(try proxy.admin.send("drain s/\(a.endpoint)").isOK)

            #expect(try String(contentsOfFile: victim, encoding: .utf8) == "precious\n", "the symlink's target was written")
            let written = try #require(mode(of: statePath))
            #expect(written & S_IFMT == S_IFREG, "the state file is not a regular file (a symlink was renamed over it?)")
            #expect(written & 0o777 == 0o600, "state file mode \(String(written & 0o777, radix: 8))")
            #expect(try String(contentsOfFile: statePath, encoding: .utf8).contains("drain s/\(a.endpoint)"))
            #expect(mode(of: temporary) == nil, "the temporary file was left behind")

            // A temporary file left by a crash, readable by all: replaced, not reused.
            try ConfiguredProxy.write("stale\n", to: temporary)
            #expect(chmod(temporary, 0o644) == 0)
            #expect(try proxy.admin.send("weight s/\(b.endpoint) 7").isOK)
            let rewritten = try #require(mode(of: statePath))
            #expect(rewritten & 0o777 == 0o600, "state file mode \(String(rewritten & 0o777, radix: 8))")
            let saved = try String(contentsOfFile: statePath, encoding: .utf8)
            #expect(saved.contains("drain s/\(a.endpoint)") && saved.contains("weight s/\(b.endpoint) 7"), "\(saved)")
            #expect(!saved.contains("stale"))
        }
    }
}
