/// Why a terminating listener's handshake failed: the `reason` label of
/// `switchyard_tls_handshake_failures_total`.
public enum TLSHandshakeFailure: Int, CaseIterable, Sendable {
    /// The client offered no protocol version, cipher or group the service accepts.
    case noSharedCipher
    /// A client certificate was required and missing, or it (or ours, says the client) was refused.
    case badCertificate
    /// The client certificate does not chain to `client-ca` (or the client does not trust ours).
    case unknownCA
    /// `tls-handshake-timeout` passed first.
    case timeout
    /// Anything else: not TLS, a malformed or out-of-order message, a close in mid-handshake.
    case `protocol`

    public var label: String {
        switch self {
        case .noSharedCipher: "no_shared_cipher"
        case .badCertificate: "bad_certificate"
        case .unknownCA: "unknown_ca"
        case .timeout: "timeout"
        case .protocol: "protocol"
        }
    }
}

/// One listener's handshake counts (a worker's, or summed over the workers for a scrape):
/// completed handshakes by protocol version (and how many resumed a session, and how long they
/// took from accept), failed ones by reason.
///
/// Thread ownership: a worker's copy is touched by its thread only; published copies are values.
public struct TLSHandshakeFigures: Equatable, Sendable {
    /// Completed handshakes by negotiated version (`TLSv1.2`, `TLSv1.3`).
    public private(set) var completed: [String: UInt64] = [:]
    /// Failed handshakes by `TLSHandshakeFailure.rawValue`.
    public private(set) var failed = [UInt64](repeating: 0, count: TLSHandshakeFailure.allCases.count)
    /// Completed handshakes that resumed a session (a ticket).
    public private(set) var resumed: UInt64 = 0
    /// Completed handshakes, accept to the handshake's end.
    public private(set) var duration = LatencyHistogram()

    public init() {}

    public var isEmpty: Bool { completed.isEmpty && failed.allSatisfy { $0 == 0 } }

    public mutating func recordCompleted(version: String, resumed wasResumed: Bool, nanoseconds: Int64) {
        completed[version, default: 0] &+= 1
        if wasResumed { resumed &+= 1 }
        duration.record(nanoseconds: nanoseconds)
    }

    public mutating func recordFailed(_ reason: TLSHandshakeFailure) {
        failed[reason.rawValue] &+= 1
    }

    public func failures(_ reason: TLSHandshakeFailure) -> UInt64 { failed[reason.rawValue] }

    /// Every failure, whatever its reason.
    public var totalFailed: UInt64 { failed.reduce(0, &+) }

    public mutating func merge(_ other: TLSHandshakeFigures) {
        for (version, count) in other.completed { completed[version, default: 0] &+= count }
        for index in failed.indices { failed[index] &+= other.failed[index] }
        resumed &+= other.resumed
        duration.merge(other.duration)
    }
}
