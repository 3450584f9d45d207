import CSwitchyard
import Glibc

/// A terminal put into raw input mode for a full-screen view (`switchyard admin top`), with
/// plain ANSI escapes only, so it works over ssh and in tmux.
///
/// `init` switches to the alternate screen, hides the cursor and turns off line editing, echo
/// and signal keys (Ctrl-C arrives as byte 3, so the view can quit cleanly); output processing
/// stays on, so `\n` still returns the carriage. `restore()`, also run on deinit, puts back the
/// settings saved at start. SIGINT, SIGTERM, SIGHUP and SIGQUIT from outside (`kill`, a dropped
/// ssh session) restore the terminal too, then end the process with 128 + the signal.
///
/// Thread safety: one per process, used from the thread that made it.
public final class RawTerminal {
    public let input: Int32
    public let output: Int32
    private var restored = false

    /// Takes over `input` and `output` (standard input and output by default). Throws when
    /// either is not a terminal.
    public init(input: Int32 = 0, output: Int32 = 1) throws(TerminalError) {
        guard isatty(input) == 1, isatty(output) == 1 else {
            throw TerminalError("needs a terminal: standard input and output must be a tty (for scripts, use 'show backends json')")
        }
        var saved = termios()
        guard tcgetattr(input, &saved) == 0 else {
            throw TerminalError("cannot read the terminal settings: \(Errno.describe(errno))")
        }
        var raw = saved
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO | ISIG | IEXTEN)
        raw.c_iflag &= ~tcflag_t(IXON | ICRNL)
        withUnsafeMutableBytes(of: &raw.c_cc) { cc in
            cc[Int(VMIN)] = 0
            cc[Int(VTIME)] = 0
        }
        guard tcsetattr(input, TCSAFLUSH, &raw) == 0 else {
            throw TerminalError("cannot set the terminal to raw mode: \(Errno.describe(errno))")
        }
        self.input = input
        self.output = output
        TerminalRestore.install(saved: saved, input: input, output: output)
        write(Self.enterScreen)
    }

    deinit { restore() }

    /// Alternate screen on, cursor hidden.
    static let enterScreen = "\u{1B}[?1049h\u{1B}[?25l"
    /// Cursor shown, alternate screen off (the shell's screen comes back as it was).
    static let leaveScreen = "\u{1B}[?25h\u{1B}[?1049l"

    /// Puts the terminal back as it was. Safe to call twice.
    public func restore() {
        guard !restored else { return }
        restored = true
        TerminalRestore.restoreNow()
        TerminalRestore.uninstall()
    }

    /// Rows and columns of the terminal; 24 × 80 when it does not say.
    public func size() -> (rows: Int, columns: Int) {
        var rows: UInt16 = 0
        var columns: UInt16 = 0
        guard swy_window_size(output, &rows, &columns) == 0, rows > 0, columns > 0 else { return (24, 80) }
        return (Int(rows), Int(columns))
    }

    /// Waits up to `timeout` for one byte of input; nil when none came. End of input (the
    /// terminal went away) is reported as Ctrl-D (4).
    public func readByte(timeout: Duration) -> UInt8? {
        var poller = pollfd(fd: input, events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(clamping: max(timeout.nanosecondsClamped / 1_000_000, 0))
        let ready = poll(&poller, 1, milliseconds)
        guard ready > 0 else { return nil }
        var byte: UInt8 = 0
        let count = read(input, &byte, 1)
        if count == 1 { return byte }
        if count == 0 || (poller.revents & Int16(POLLHUP | POLLERR)) != 0 { return 4 }
        return nil
    }

    /// Writes `text` whole.
    public func write(_ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeMutableBytes { Glibc.write(output, $0.baseAddress! + offset, $0.count - offset) }
            if count > 0 {
                offset += count
            } else if count < 0 && errno == EINTR {
                continue
            } else {
                return
            }
        }
    }
}

/// Why the terminal could not be used, as one line.
public struct TerminalError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// The saved settings where a signal handler can reach them. A signal handler may only use
/// async-signal-safe calls (signal-safety(7)): tcsetattr, write and _exit are.
private enum TerminalRestore {
    /// On the heap, not a global `termios`: Swift gives a global of an imported struct its size
    /// (57 bytes here) while copies move its stride (60), which AddressSanitizer reports as a
    /// global-buffer-overflow. An allocation has the stride.
    nonisolated(unsafe) static let saved: UnsafeMutablePointer<termios> = {
        let pointer = UnsafeMutablePointer<termios>.allocate(capacity: 1)
        pointer.initialize(to: termios())
        return pointer
    }()
    nonisolated(unsafe) static var input: Int32 = -1
    nonisolated(unsafe) static var output: Int32 = -1
    static let signals = [SIGINT, SIGTERM, SIGHUP, SIGQUIT]

    static func install(saved settings: termios, input fd: Int32, output out: Int32) {
        saved.pointee = settings
        input = fd
        output = out
        var set = sigset_t()
        sigemptyset(&set)
        for number in signals {
            signal(number) { received in
                TerminalRestore.restoreNow()
                _exit(128 + received)
            }
            sigaddset(&set, number)
        }
        // A parent may have started us with these blocked (the mask is inherited across exec).
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    static func uninstall() {
        for number in signals { signal(number, SIG_DFL) }
        input = -1
    }

    /// Async-signal-safe: no allocation, no locks.
    static func restoreNow() {
        guard input >= 0 else { return }
        _ = tcsetattr(input, TCSAFLUSH, saved)
        let leave: StaticString = "\u{1B}[?25h\u{1B}[?1049l"
        _ = Glibc.write(output, leave.utf8Start, leave.utf8CodeUnitCount)
    }
}
