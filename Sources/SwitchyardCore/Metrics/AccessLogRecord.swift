/// A client's address and port as a plain value: what an access-log line names as the client.
/// Holds no reference (16 inline bytes), so a worker can fill one from `sockaddr_storage`
/// without allocating; it is turned into text only on the logging thread.
public struct PeerAddress: Sendable, Equatable {
    /// Address bytes in network order: the first 4 for IPv4, all 16 for IPv6.
    public var bytes: InlineArray<16, UInt8>
    public var isIPv6: Bool
    public var port: UInt16

    /// An IPv4 peer, `a.b.c.d:port`.
    public init(ipv4 a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8, port: UInt16) {
        bytes = InlineArray(repeating: 0)
        bytes[0] = a
        bytes[1] = b
        bytes[2] = c
        bytes[3] = d
        isIPv6 = false
        self.port = port
    }

    /// An IPv6 peer from its 16 bytes in network order.
    public init(ipv6 bytes: InlineArray<16, UInt8>, port: UInt16) {
        self.bytes = bytes
        isIPv6 = true
        self.port = port
    }

    /// Nothing known (`0.0.0.0:0`), for records of connections whose peer was not read.
    public static let unknown = PeerAddress(ipv4: 0, 0, 0, 0, port: 0)

    /// The address alone: `10.0.0.1`, `2001:db8::1`, or `::ffff:10.0.0.1` for an IPv4-mapped one.
    public var addressText: String {
        guard isIPv6 else { return "\(bytes[0]).\(bytes[1]).\(bytes[2]).\(bytes[3])" }
        var isMapped = bytes[10] == 0xFF && bytes[11] == 0xFF
        for index in 0..<10 where bytes[index] != 0 { isMapped = false }
        if isMapped { return "::ffff:\(bytes[12]).\(bytes[13]).\(bytes[14]).\(bytes[15])" }
        var array: [UInt8] = []
        for index in 0..<16 { array.append(bytes[index]) }
        return IPAddress.v6(array).description
    }

    /// `ADDR:PORT`, with IPv6 in brackets (`[::1]:5000`).
    public var text: String {
        isIPv6 ? "[\(addressText)]:\(port)" : "\(addressText):\(port)"
    }

    public static func == (lhs: PeerAddress, rhs: PeerAddress) -> Bool {
        guard lhs.isIPv6 == rhs.isIPv6, lhs.port == rhs.port else { return false }
        for index in 0..<16 where lhs.bytes[index] != rhs.bytes[index] { return false }
        return true
    }
}

/// What a terminated TLS session adds to an access-log line: made once per handshake (only
/// when the access log is on), never per I/O operation.
public struct AccessLogTLS: Sendable, Equatable {
    /// `TLSv1.2`, `TLSv1.3`.
    public var version: String
    /// OpenSSL's cipher name, such as `TLS_AES_128_GCM_SHA256` or `ECDHE-ECDSA-AES128-GCM-SHA256`.
    public var cipher: String
    /// The ALPN protocol agreed; nil when none.
    public var alpn: String?
    /// The client certificate's subject (RFC 2253 text); nil when the client sent none.
    public var clientSubject: String?

    public init(version: String, cipher: String, alpn: String? = nil, clientSubject: String? = nil) {
        self.version = version
        self.cipher = cipher
        self.alpn = alpn
        self.clientSubject = clientSubject
    }
}

/// Everything an access-log line says about one finished connection, filled by the worker at
/// close and handed to the logging thread through a bounded queue.
///
/// Numbers and the peer are plain values. The names (`listener`, `service`, `backend`) are
/// `String`s the worker already holds in its configuration or snapshot: copying one retains
/// its storage (names of 15 bytes or fewer, such as `10.0.0.5:6379`, are stored inline and not
/// even retained) and never allocates. Do not build them per connection.
public struct AccessLogRecord: Sendable, Equatable {
    /// When the connection was accepted: wall-clock nanoseconds since the Unix epoch
    /// (`CLOCK_REALTIME`). The line is written at close; like HAProxy's and Envoy's logs it is
    /// stamped with the start, and `duration` gives the end.
    public var acceptedAtNanoseconds: Int64
    public var client: PeerAddress
    /// The listener's `HOST:PORT` as configured.
    public var listener: String
    /// The service the listener belongs to (`default` for the command-line form).
    public var service: String
    /// The backend's `HOST:PORT` as `show backends` names it; nil when none was connected.
    public var backend: String?
    /// How long the successful backend connect took; nil when no connect succeeded.
    public var connectNanoseconds: Int64?
    /// Accept to close.
    public var durationNanoseconds: Int64
    public var bytesFromClient: UInt64
    public var bytesToClient: UInt64
    /// Connects started after a failed one for this client.
    public var retries: UInt32
    public var cause: TerminationCause
    /// The TLS server name the client asked for (routing by SNI, or a terminated session); nil when none.
    public var serverName: String?
    /// The terminated TLS session; nil when the listener does not terminate TLS.
    public var tls: AccessLogTLS?

    public init(
        acceptedAtNanoseconds: Int64, client: PeerAddress, listener: String, service: String,
        backend: String?, connectNanoseconds: Int64?, durationNanoseconds: Int64,
        bytesFromClient: UInt64, bytesToClient: UInt64, retries: UInt32, cause: TerminationCause,
        serverName: String? = nil, tls: AccessLogTLS? = nil
    ) {
        self.tls = tls
        self.acceptedAtNanoseconds = acceptedAtNanoseconds
        self.client = client
        self.listener = listener
        self.service = service
        self.backend = backend
        self.connectNanoseconds = connectNanoseconds
        self.durationNanoseconds = durationNanoseconds
        self.bytesFromClient = bytesFromClient
        self.bytesToClient = bytesToClient
        self.retries = retries
        self.cause = cause
        self.serverName = serverName
    }

    /// A placeholder for preallocated queue slots.
    public static let empty = AccessLogRecord(
        acceptedAtNanoseconds: 0, client: .unknown, listener: "", service: "", backend: nil,
        connectNanoseconds: nil, durationNanoseconds: 0, bytesFromClient: 0, bytesToClient: 0,
        retries: 0, cause: .clientClose)
}
