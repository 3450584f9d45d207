/// What a completion is for. Stored in the low 8 bits of `UserData`.
public enum RingOperationKind: UInt8, CaseIterable, Sendable {
    /// Multishot accept on listener number `slot`.
    case accept = 1
    /// Backend connect.
    case connect
    /// Copy relay: receive into a provided buffer, send from it.
    case receiveFromClient
    case receiveFromBackend
    case sendToBackend
    case sendToClient
    /// Splice relay: readiness of a source to read and of a destination to write.
    case clientReadable
    case backendReadable
    case backendWritable
    case clientWritable
    /// Cancellation of a connection's pending operations while closing.
    case cancel
    /// The worker's eventfd: the control side or the main thread asked it to look around.
    case wake
    /// The worker's periodic tick (idle timeouts, counters, shutdown grace).
    case tick
    /// The pause before accepting again after the process ran out of descriptors.
    case acceptBackoff
    /// Cancellation of listener number `slot`'s multishot accept: how a worker stops accepting
    /// on a socket that another process (systemd, or the one taking over) may share, since
    /// shutdown(2) would stop the socket for every holder.
    case acceptCancel
    /// The end of a pause in accepting that a listener's `max-connection-rate` asked for.
    case acceptPause
    /// The next scan for stalled directions to park while receives wait for buffers.
    case parkingScan
}

/// The 64-bit `user_data` of a submission: slot (32 bits), generation (24 bits), kind (8 bits).
///
/// A completion whose generation differs from its slot's current one belongs to a connection
/// that has since been closed and reused; it is stale and must be dropped.
public struct UserData: Hashable, Sendable, CustomStringConvertible {
    public static let generationMask: UInt32 = 0x00FF_FFFF

    public var slot: UInt32
    public var generation: UInt32
    public var kind: RingOperationKind

    public init(slot: UInt32, generation: UInt32, kind: RingOperationKind) {
        precondition(generation <= Self.generationMask, "generation is 24 bits")
        self.slot = slot
        self.generation = generation
        self.kind = kind
    }

    /// Decodes a packed value; nil if the kind byte is not a known operation.
    @inline(__always)
    public init?(packed: UInt64) {
        guard let kind = RingOperationKind(rawValue: UInt8(truncatingIfNeeded: packed)) else { return nil }
        self.kind = kind
        self.generation = UInt32(truncatingIfNeeded: packed >> 8) & Self.generationMask
        self.slot = UInt32(truncatingIfNeeded: packed >> 32)
    }

    @inline(__always)
    public var packed: UInt64 {
        UInt64(slot) << 32 | UInt64(generation) << 8 | UInt64(kind.rawValue)
    }

    /// The generation that follows `generation`, wrapping within 24 bits.
    @inline(__always)
    public static func nextGeneration(after generation: UInt32) -> UInt32 {
        (generation &+ 1) & generationMask
    }

    public var description: String { "\(kind)#\(slot).\(generation)" }
}
