import Foundation
import Glibc

/// One process as /proc/PID/stat describes it (proc(5)), read to find what a test started and to
/// prove that nothing of it is left. Reads only; signals nothing.
struct ProcessEntry: Hashable, CustomStringConvertible {
    let pid: pid_t
    let parent: pid_t
    let group: pid_t
    /// `R`, `S`, `D`, `Z` (exited, not yet reaped), `T`, ...
    let state: Character
    /// Clock ticks after boot at which it started: with the pid, names the process even after the
    /// pid is reused.
    let startTime: UInt64
    /// The command name (`comm`, at most 15 bytes).
    let command: String

    /// Nil when the process is gone (or the file cannot be read).
    init?(pid: pid_t) {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { return nil }
        // Fields after the command: state is field 3, ppid 4, pgrp 5, starttime 22 (1-based).
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let state = fields[0].first, let parent = pid_t(fields[1]),
              let group = pid_t(fields[2]), let startTime = UInt64(fields[19]) else { return nil }
        self.pid = pid
        self.parent = parent
        self.group = group
        self.state = state
        self.startTime = startTime
        command = String(stat[stat.index(after: open)..<close])
    }

    /// Running or sleeping: not a zombie waiting for its parent (or init) to reap it.
    var isLive: Bool { state != "Z" && state != "X" }

    /// Whether this very process (same pid, same start time) is still live.
    var isStillLive: Bool {
        guard let now = ProcessEntry(pid: pid) else { return false }
        return now.startTime == startTime && now.isLive
    }

    var description: String { "\(command)[\(pid)]" }
}

enum ProcessTable {
    /// Every process that can be read now.
    static func all() -> [ProcessEntry] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return names.compactMap { pid_t($0).flatMap(ProcessEntry.init(pid:)) }
    }

    /// The live members of process group `group`.
    static func liveMembers(ofGroup group: pid_t) -> [ProcessEntry] {
        all().filter { $0.group == group && $0.isLive }
    }

    /// The live descendants of `pid` (children, their children, ...), not `pid` itself.
    static func liveDescendants(of pid: pid_t) -> [ProcessEntry] {
        let table = all()
        var found: [ProcessEntry] = []
        var parents: Set<pid_t> = [pid]
        while true {
            let next = table.filter { parents.contains($0.parent) && !found.contains($0) }
            if next.isEmpty { break }
            found += next
            parents = Set(next.map(\.pid))
        }
        return found.filter(\.isLive)
    }
}

/// CPU seconds (user + system) a process has used, from /proc/PID/stat.
enum ProcessCPU {
    static func seconds(of pid: pid_t) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
