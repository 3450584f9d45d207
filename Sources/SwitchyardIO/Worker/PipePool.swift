import CSwitchyard
import Glibc
import SwitchyardCore

/// A pool of non-blocking pipes for splicing, sized with `F_SETPIPE_SZ`.
///
/// Only empty pipes are returned to the pool (a pipe holding bytes would leak them into another
/// connection); the pool keeps at most `idleLimit` spare pipes and refuses to lend more than
/// `limit`, so pipes never eat the file descriptors connections need.
/// Thread ownership: one worker thread.
final class PipePool {
    struct Pipe {
        var readEnd: Int32
        var writeEnd: Int32
        var capacity: Int
    }

    private var idle: [Pipe] = []
    private let requestedSize: Int
    let limit: Int
    private let idleLimit: Int
    private(set) var lent = 0
    /// The fewest idle pipes seen since the last `trim()`: that many went unused all along.
    private var idleLowWater = 0
    /// Set after the first failure to grow a pipe (unprivileged users run out of pipe pages).
    private var sizingFailed = false

    init(pipeSize: Int, limit: Int, idleLimit: Int = 64) {
        requestedSize = pipeSize
        self.limit = limit
        self.idleLimit = idleLimit
    }

    deinit {
        for pipe in idle {
            closeDescriptor(pipe.readEnd)
            closeDescriptor(pipe.writeEnd)
        }
    }

    /// An empty pipe, or nil when the limit is reached or the system refuses one (EMFILE).
    func take() -> Pipe? {
        guard lent < limit else { return nil }
        if let pipe = idle.popLast() {
            lent += 1
            idleLowWater = min(idleLowWater, idle.count)
            return pipe
        }
        var fds: [Int32] = [-1, -1]
        guard systemCallResult({ Int(swy_pipe2_nonblocking(&fds)) }) == 0 else { return nil }
        var capacity = systemCallResult { Int(swy_get_pipe_size(fds[0])) }
        if !sizingFailed && requestedSize > capacity {
            let result = systemCallResult { Int(swy_set_pipe_size(fds[0], Int32(requestedSize))) }
            if result > 0 { capacity = Int(result) } else { sizingFailed = true }
        }
        lent += 1
        return Pipe(readEnd: fds[0], writeEnd: fds[1], capacity: max(capacity, 4096))
    }

    /// Closes the idle pipes that were not needed since the previous call, so that a burst of
    /// splicing does not hold descriptors and pipe pages for ever. Called on the worker's tick.
    func trim() {
        for _ in 0..<min(idleLowWater, idle.count) {
            let pipe = idle.removeFirst()
            closeDescriptor(pipe.readEnd)
            closeDescriptor(pipe.writeEnd)
        }
        idleLowWater = idle.count
    }

    /// Takes back a pipe; `empty` says whether every byte spliced into it was spliced out.
    func give(_ pipe: Pipe, empty: Bool) {
        lent -= 1
        if empty && idle.count < idleLimit {
            idle.append(pipe)
        } else {
            closeDescriptor(pipe.readEnd)
            closeDescriptor(pipe.writeEnd)
        }
    }
}
