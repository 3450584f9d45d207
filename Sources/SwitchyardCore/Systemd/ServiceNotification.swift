/// One message of systemd's notification protocol (sd_notify(3)): `VARIABLE=VALUE` assignments,
/// one per line, sent as one datagram to the socket named by `NOTIFY_SOCKET`.
///
/// Only the assignments Switchyard sends are built here; `text` is what goes on the wire.
public struct ServiceNotification: Equatable, Sendable {
    public struct Field: Equatable, Sendable {
        public var name: String
        public var value: String
    }

    public private(set) var fields: [Field] = []

    public init() {}

    /// Adds `NAME=VALUE`. A line break in `value` would start another assignment, so line
    /// breaks (and other control characters) become spaces.
    public mutating func append(_ name: String, _ value: String) {
        let clean = String(value.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? " " : Character($0) })
        fields.append(Field(name: name, value: clean))
    }

    /// The datagram's text: the assignments, each ended by a newline.
    public var text: String {
        fields.map { "\($0.name)=\($0.value)\n" }.joined()
    }

    /// `READY=1`: startup (or a reload) is finished; with `status`, a `STATUS=` line too.
    public static func ready(status: String? = nil) -> ServiceNotification {
        var message = ServiceNotification()
        message.append("READY", "1")
        if let status { message.append("STATUS", status) }
        return message
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=`, the CLOCK_MONOTONIC time of the reload's start in
    /// microseconds (systemd 253 and later require it with `Type=notify-reload`). Send `ready`
    /// once the reload has finished, whether or not it changed anything.
    public static func reloading(monotonicMicroseconds: UInt64, status: String? = nil) -> ServiceNotification {
        var message = ServiceNotification()
        message.append("RELOADING", "1")
        message.append("MONOTONIC_USEC", String(monotonicMicroseconds))
        if let status { message.append("STATUS", status) }
        return message
    }

    /// `STOPPING=1`: shutdown has begun (no longer accepting; open connections finish).
    public static func stopping(status: String? = nil) -> ServiceNotification {
        var message = ServiceNotification()
        message.append("STOPPING", "1")
        if let status { message.append("STATUS", status) }
        return message
    }

    /// `STATUS=`: a one-line text `systemctl status` shows.
    public static func status(_ text: String) -> ServiceNotification {
        var message = ServiceNotification()
        message.append("STATUS", text)
        return message
    }

    /// `MAINPID=`: the service's main process is now `processID` (after a takeover the new
    /// process says so, with `READY=1`; systemd accepts it from a process other than the main
    /// one only with `NotifyAccess=all`).
    public static func mainProcess(_ processID: Int, ready: Bool = true, status: String? = nil) -> ServiceNotification {
        var message = ServiceNotification()
        message.append("MAINPID", String(processID))
        if ready { message.append("READY", "1") }
        if let status { message.append("STATUS", status) }
        return message
    }
}

/// Where `NOTIFY_SOCKET` says notifications go: a path (`/run/systemd/notify`) or, written with a
/// leading `@`, a name in the abstract namespace (unix(7)).
public enum NotifySocketAddress: Equatable, Sendable, CustomStringConvertible {
    /// An absolute path of a datagram socket.
    case path(String)
    /// An abstract name: the bytes after the `@`, which become `sun_path` after a NUL byte.
    case abstract([UInt8])

    /// `sun_path` holds 108 bytes: a path needs its terminating NUL, an abstract name its leading one.
    public static let maximumLength = 107

    /// Parses the variable's value. Throws for an empty value, a relative path, a name too long
    /// for `sun_path`, and other forms (systemd 254's `vsock:`), each in one line naming it.
    public init(parsing value: String) throws(ConfigError) {
        let bytes = Array(value.utf8)
        guard let first = bytes.first else {
            throw ConfigError("NOTIFY_SOCKET is empty")
        }
        if first == UInt8(ascii: "@") {
            let name = Array(bytes.dropFirst())
            guard !name.isEmpty else { throw ConfigError("NOTIFY_SOCKET '@' names no abstract socket") }
            guard name.count <= Self.maximumLength else {
                throw ConfigError("NOTIFY_SOCKET abstract name is \(name.count) bytes; at most \(Self.maximumLength) fit in sun_path")
            }
            self = .abstract(name)
        } else if first == UInt8(ascii: "/") {
            guard bytes.count <= Self.maximumLength, !bytes.contains(0) else {
                throw ConfigError("NOTIFY_SOCKET path is \(bytes.count) bytes; at most \(Self.maximumLength) fit in sun_path")
            }
            self = .path(value)
        } else {
            throw ConfigError("NOTIFY_SOCKET '\(value)' is neither an absolute path nor an @abstract name (other forms, such as vsock:, are not supported)")
        }
    }

    /// The bytes of `sun_path` that name the socket: for an abstract name a NUL then the name
    /// (no terminator: the address length ends it), for a path the path without its NUL.
    public var socketPathBytes: [UInt8] {
        switch self {
        case let .abstract(name): [0] + name
        case let .path(path): Array(path.utf8)
        }
    }

    public var description: String {
        switch self {
        case let .abstract(name): "@" + String(decoding: name, as: UTF8.self)
        case let .path(path): path
        }
    }
}
