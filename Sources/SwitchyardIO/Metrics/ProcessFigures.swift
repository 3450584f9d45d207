import CSwitchyard
import Glibc

/// The standard Prometheus `process_*` figures of this process, read from /proc (proc(5)) as the
/// Go and Java clients do.
public struct ProcessFigures: Sendable, Equatable {
    /// User plus system CPU time (`process_cpu_seconds_total`).
    public var cpuSeconds: Double
    /// Resident set size (`process_resident_memory_bytes`).
    public var residentMemoryBytes: UInt64
    /// Virtual memory size (`process_virtual_memory_bytes`).
    public var virtualMemoryBytes: UInt64
    /// Descriptors open now (`process_open_fds`).
    public var openFileDescriptors: Int
    /// The soft `RLIMIT_NOFILE` (`process_max_fds`).
    public var maxFileDescriptors: Int
    /// When the process started, seconds since the Unix epoch (`process_start_time_seconds`).
    public var startTimeSeconds: Double

    public init(
        cpuSeconds: Double, residentMemoryBytes: UInt64, virtualMemoryBytes: UInt64,
        openFileDescriptors: Int, maxFileDescriptors: Int, startTimeSeconds: Double
    ) {
        self.cpuSeconds = cpuSeconds
        self.residentMemoryBytes = residentMemoryBytes
        self.virtualMemoryBytes = virtualMemoryBytes
        self.openFileDescriptors = openFileDescriptors
        self.maxFileDescriptors = maxFileDescriptors
        self.startTimeSeconds = startTimeSeconds
    }

    /// Reads the figures of the calling process; nil when /proc cannot be read (then a scrape
    /// leaves the `process_*` metrics out rather than failing).
    public static func current() -> ProcessFigures? {
        guard let stat = readSmallFile("/proc/self/stat"), let boot = bootTime else { return nil }
        // The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
        guard let close = stat.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = stat[(close + 1)...].split(separator: UInt8(ascii: " ")).map { String(decoding: $0, as: UTF8.self) }
        // fields[0] is field 3 (state); field N is fields[N - 3].
        func field(_ number: Int) -> UInt64? {
            number - 3 < fields.count ? UInt64(fields[number - 3].trimmingNewline) : nil
        }
        guard let userTicks = field(14), let systemTicks = field(15), let startTicks = field(22),
              let virtualBytes = field(23), let residentPages = field(24) else { return nil }
        let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
        let pageSize = UInt64(sysconf(Int32(_SC_PAGESIZE)))
        var limit = rlimit()
        let maxDescriptors = systemCallResult({ Int(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)) }) == 0 ? Int(clamping: limit.rlim_cur) : -1
        return ProcessFigures(
            cpuSeconds: Double(userTicks + systemTicks) / ticksPerSecond,
            residentMemoryBytes: residentPages * pageSize,
            virtualMemoryBytes: virtualBytes,
            openFileDescriptors: openDescriptorCount() ?? 0,
            maxFileDescriptors: maxDescriptors,
            startTimeSeconds: boot + Double(startTicks) / ticksPerSecond)
    }

    /// `btime` from /proc/stat: boot time in seconds since the epoch.
    /// The boot time does not change: read once (reading and splitting /proc/stat, one line per
    /// CPU and interrupt, was a sixth of a status page poll's cost).
    private static let bootTime: Double? = bootTimeSeconds()

    private static func bootTimeSeconds() -> Double? {
        guard let text = readSmallFile("/proc/stat").map({ String(decoding: $0, as: UTF8.self) }) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6))
        }
        return nil
    }

    /// Entries of /proc/self/fd, not counting the descriptor that reads the directory.
    private static func openDescriptorCount() -> Int? {
        guard let directory = opendir("/proc/self/fd") else { return nil }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { $0.first ?? 0 }
            if name != UInt8(ascii: ".") { count += 1 }
        }
        return count - 1
    }

    /// The whole content of a small /proc file (at most 64 KiB).
    static func readSmallFile(_ path: String) -> [UInt8]? {
        try? readFileBytes(path, atMost: 65535)
    }
}

private extension String {
    var trimmingNewline: Substring { self.split(separator: "\n").first ?? Substring(self) }
}
