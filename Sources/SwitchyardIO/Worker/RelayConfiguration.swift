import SwitchyardCore

/// Everything a worker needs to know, fixed at startup.
public struct RelayConfiguration: Sendable {
    public var mode: RelayMode = .auto
    public var maxConnections: Int = 1000
    /// Size of one provided buffer (copy relay).
    public var bufferSize: Int = 64 * 1024
    /// Provided buffers per worker (a power of two).
    public var buffersPerWorker: UInt32 = 1024
    /// Requested pipe size (`F_SETPIPE_SZ`) for splicing.
    public var pipeSize: Int = 1 << 20
    /// Pipes one worker may hold at once; directions beyond it keep copying.
    public var pipesPerWorker: Int = 256
    /// In `auto`, consecutive full-buffer reads after which a direction switches to splice.
    public var spliceAfterFullReads: Int = 4
    /// Bytes one worker may park (`parked-memory`); nil: 64 MiB or the pool's size if larger.
    public var parkedMemory: Int?
    /// Entries of the per-source table (`source-table-size`).
    public var sourceTableSize = GlobalSettings.defaultSourceTableSize
    /// `busy-polling`: spin briefly on the completion queue before sleeping (BusyPollingPolicy).
    public var busyPolling = false

    public init() {}
}
