import Glibc
@testable import SwitchyardIO
import Testing

@Suite struct AdminClientTimeoutTests {
    @Test func aServerThatNeverRepliesTimesOutWithALine() throws {
        let path = "/tmp/swy-client-timeout-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        defer { unlink(path) }
        let address = try UnixSocket.address(path)
        let listener = try UnixSocket.make(nonBlocking: false)
        defer { Glibc.close(listener) }
        try systemCall("bind") { UnixSocket.withAddress(address) { bind(listener, $0, $1) } }
        try systemCall("listen") { listen(listener, 4) }
        // The kernel completes the connection; nobody ever reads or answers.
        let clock = ContinuousClock()
        let start = clock.now
        #expect {
            _ = try AdminClient.send(command: "show backends json", socketPath: path, timeout: .milliseconds(300))
        } throws: { error in
            "\(error)".contains("no reply from \(path) within 300ms")
        }
        let waited = clock.now - start
        #expect(waited >= .milliseconds(250) && waited < .seconds(3))
    }
}
