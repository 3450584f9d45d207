import CSwitchyard
import Glibc
import SwitchyardCore

/// The client side of the admin protocol, for `switchyard admin` and tests.
public enum AdminClient {
    /// Sends one command and returns the reply without its terminating empty line, e.g.
    /// `(true, "OK\nremoved 10.0.0.5:80")`. `ok` is whether the status line is `OK`.
    /// Blocks until the reply is complete (a `wait` command can take its whole timeout).
    /// Throws an `AdminSocketError` naming the path and the failed call, or saying that the
    /// server runs as another user than this process's or root (`AdminAccess`). With `timeout`, a
    /// reply (or a write) that takes longer throws too, so a stopped process cannot hang a
    /// caller that must stay responsive (`admin top`).
    public static func send(command: String, socketPath: String, timeout: Duration? = nil) throws(AdminSocketError) -> (ok: Bool, reply: String) {
        guard !command.contains("\n") else {
            throw AdminSocketError("one command at a time: the command must not contain a line break")
        }
        let address = try UnixSocket.address(socketPath)
        let fd: Int32
        do {
            fd = try UnixSocket.make(nonBlocking: false)
        } catch {
            throw AdminSocketError(error.description)
        }
        defer { closeDescriptor(fd) }
        if let timeout {
            let microseconds = max(timeout.nanosecondsClamped / 1000, 1)
            let limit = timeval(tv_sec: Int(microseconds / 1_000_000), tv_usec: Int(microseconds % 1_000_000))
            Socket.setOption(fd, SOL_SOCKET, SO_RCVTIMEO, value: limit)
            Socket.setOption(fd, SOL_SOCKET, SO_SNDTIMEO, value: limit)
        }
        do {
            try systemCall("connect \(socketPath)") { UnixSocket.withAddress(address) { connect(fd, $0, $1) } }
        } catch {
            let hint = error.errno == ENOENT || error.errno == ECONNREFUSED ? " (is switchyard serving with this --admin-socket?)" : ""
            throw AdminSocketError("\(error.description)\(hint)")
        }
        // Nothing is sent to, nor believed from, a server of another user (it could be anyone's).
        try UnixSocket.checkServer(fd, path: socketPath)
        let request = Array((command + "\n").utf8)
        var offset = 0
        while offset < request.count {
            do {
                offset += try systemCall("write \(socketPath)") {
                    request.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
                }
            } catch {
                throw AdminSocketError(error.description)
            }
        }
        var reply: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count: Int
            do {
                count = try systemCall("read \(socketPath)") { chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) } }
            } catch {
                if error.errno == EAGAIN, let timeout {
                    throw AdminSocketError("no reply from \(socketPath) within \(timeout.shortDescription)")
                }
                throw AdminSocketError(error.description)
            }
            if count == 0 {
                throw AdminSocketError("switchyard closed the admin connection before the end of the reply")
            }
            reply += chunk[0..<count]
            // Body lines are never empty, so the first blank line ends the reply.
            if let end = blankLine(in: reply) {
                let text = String(decoding: reply[..<end], as: UTF8.self)
                return (text.hasPrefix("OK"), text)
            }
        }
    }

    /// The index of the `\n` that ends the reply's text, when `\n\n` has arrived.
    private static func blankLine(in bytes: [UInt8]) -> Int? {
        guard bytes.count >= 2 else { return nil }
        for index in 1..<bytes.count where bytes[index] == 0x0A && bytes[index - 1] == 0x0A {
            return index - 1
        }
        return nil
    }
}
