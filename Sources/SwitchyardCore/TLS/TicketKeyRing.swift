/// Session ticket keys (`tls-ticket-rotation`): which keys a terminating listener encrypts new
/// tickets with and which it still accepts, and when a new one is due.
///
/// One ring serves the whole process (every worker and every service: a ticket names the
/// service it was issued for through its session id context, so it never resumes at another),
/// and it outlives reloads and takeovers: the running process hands its keys to the one taking
/// over, so a client's ticket resumes on the new binary. The newest key encrypts; the one
/// before it still decrypts, so a ticket issued just before a rotation resumes for one more
/// period, and none resumes after two.
///
/// The keys themselves are made by the caller (random bytes from the TLS library); this type
/// only keeps, ages and writes them. It never prints a secret.
public struct TicketKeyRing: Equatable, Sendable {
    /// One key: the name a ticket carries in the clear and the secret that encrypts and
    /// authenticates it (an AES-256 key, then an HMAC-SHA256 key).
    public struct Key: Equatable, Sendable {
        public static let nameLength = 16
        public static let secretLength = 64

        public var name: [UInt8]
        public var secret: [UInt8]
        /// When it was made, in seconds since the Unix epoch (wall clock, so its age carries
        /// from one process to the next).
        public var createdAt: Int64

        /// Nil when a length is wrong.
        public init?(name: [UInt8], secret: [UInt8], createdAt: Int64) {
            guard name.count == Self.nameLength, secret.count == Self.secretLength else { return nil }
            self.name = name
            self.secret = secret
            self.createdAt = createdAt
        }

        /// Bytes the TLS library copies in one piece: name, then secret.
        public var bytes: [UInt8] { name + secret }
    }

    /// Keys kept: the one that encrypts and the one before it.
    public static let kept = 2
    /// `tls-ticket-rotation` when not given: HAProxy and nginx users rotate daily or twice a day.
    public static let defaultRotation = Duration.seconds(12 * 3600)
    /// The shortest `tls-ticket-rotation` accepted (and the longest).
    public static let rotationRange = Duration.seconds(1)...Duration.seconds(7 * 24 * 3600)

    /// Newest first.
    public private(set) var keys: [Key] = []

    public init(keys: [Key] = []) {
        self.keys = Array(keys.sorted { $0.createdAt > $1.createdAt }.prefix(Self.kept))
    }

    /// Whether a new key is due at `now`: none yet, the newest is a rotation old, or the clock
    /// went back more than a rotation (a key from the future would never age).
    public func isDue(now: Int64, rotation: Duration) -> Bool {
        guard let newest = keys.first else { return true }
        let period = max(1, rotation.components.seconds)
        return now - newest.createdAt >= period || newest.createdAt - now >= period
    }

    /// `key` becomes the one that encrypts; the oldest beyond `kept` is forgotten.
    public mutating func add(_ key: Key) {
        keys.insert(key, at: 0)
        if keys.count > Self.kept { keys.removeLast(keys.count - Self.kept) }
    }

    /// Forgets keys that stopped encrypting more than a rotation ago (keys handed over by a
    /// process that ran with a longer rotation, or that waited long). The newest stays.
    public mutating func dropExpired(now: Int64, rotation: Duration) {
        let period = max(1, rotation.components.seconds)
        keys = keys.enumerated().filter { index, key in index == 0 || now - key.createdAt < 2 * period }.map(\.element)
    }

    // MARK: The handover line

    /// `tls-ticket-key CREATED NAME SECRET`, the last two in lowercase hex.
    public static func handoverLine(_ key: Key) -> String {
        "tls-ticket-key \(key.createdAt) \(Hex.encode(key.name)) \(Hex.encode(key.secret))"
    }

    /// Reads the words after `tls-ticket-key`. The error never quotes the secret.
    public static func parseHandoverWords(_ words: [Substring]) throws(ConfigError) -> Key {
        guard words.count == 3, let created = Int64(words[0]) else {
            throw ConfigError("expected 'tls-ticket-key CREATED NAME SECRET'")
        }
        guard let name = Hex.decode(words[1]), let secret = Hex.decode(words[2]),
              let key = Key(name: name, secret: secret, createdAt: created) else {
            throw ConfigError("a ticket key must be \(Key.nameLength) and \(Key.secretLength) bytes in hex")
        }
        return key
    }
}
