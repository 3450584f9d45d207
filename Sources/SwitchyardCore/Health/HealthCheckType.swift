/// A protocol check by name, `health: {type: ...}`, and its options: which `HealthDialog` a
/// probe runs. Options not of the type are refused by `validate()` (and by the file's decoder,
/// at their key).
public struct HealthCheckType: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        /// `PING` → `+PONG`, after `AUTH` when `auth` is set (HAProxy's `option redis-check`).
        case redis
        /// As `redis`, then `INFO replication` must say `role:master`.
        case redisPrimary = "redis-primary"
        /// A startup message for `user` and `database`: up on an authentication request or
        /// ready-for-query, down on an error response (HAProxy's `option pgsql-check`).
        case postgres
        /// The server greeting: protocol 10, not an error packet (HAProxy's `option mysql-check`).
        case mysql
        /// `method path` with `host`; the status must lie in `status`, the body hold `body`.
        case http
        /// The 220 banner, `EHLO` answered by 250, then `QUIT`.
        case smtp
        // `tcp` (a connect) and `tls` (a handshake, HealthCheckTLS) are read beside these: RawHealthDialog.
    }

    public var kind: Kind
    /// redis, redis-primary: the `AUTH` password; nil sends no `AUTH`.
    public var auth: String?
    /// redis, redis-primary: the ACL user of `AUTH` (needs `auth`); postgres: the user of the
    /// startup message (default `postgres`).
    public var user: String?
    /// postgres: the database of the startup message (default: the user's name).
    public var database: String?
    /// http: the request method (default `GET`).
    public var method: String?
    /// http: the request path (default `/`).
    public var path: String?
    /// http: the `Host` header (default: the check target's `HOST:PORT`).
    public var host: String?
    /// http: the status codes that pass (default `200-399`).
    public var status: ClosedRange<Int>?
    /// http: text the response body must contain; nil: the status alone decides.
    public var body: String?
    /// smtp: the name sent with `EHLO` (default `switchyard.invalid`).
    public var ehlo: String?

    public init(_ kind: Kind) {
        self.kind = kind
    }

    /// Each option's key and the types it belongs to.
    public static let options: [(key: String, kinds: [Kind])] = [
        ("auth", [.redis, .redisPrimary]),
        ("user", [.redis, .redisPrimary, .postgres]),
        ("database", [.postgres]),
        ("method", [.http]), ("path", [.http]), ("host", [.http]), ("status", [.http]), ("body", [.http]),
        ("ehlo", [.smtp]),
    ]

    public static var optionKeys: [String] { options.map(\.key) }

    /// The keys of the options that are set.
    public var givenOptions: [String] {
        let given: [(String, Bool)] = [
            ("auth", auth != nil), ("user", user != nil), ("database", database != nil), ("method", method != nil),
            ("path", path != nil), ("host", host != nil), ("status", status != nil), ("body", body != nil), ("ehlo", ehlo != nil),
        ]
        return given.filter(\.1).map(\.0)
    }

    /// Throws unless `key` is an option of `kind`; the message names the types it belongs to.
    public static func checkOption(_ key: String, of kind: Kind) throws(ConfigError) {
        guard let option = options.first(where: { $0.key == key }), !option.kinds.contains(kind) else { return }
        throw ConfigError("'\(key)' is an option of type \(option.kinds.map(\.rawValue).joined(separator: " and ")), not of \(kind.rawValue)")
    }

    /// Throws a `ConfigError` for an option of another type or a value that cannot go on the wire.
    public func validate() throws(ConfigError) {
        for key in givenOptions { try Self.checkOption(key, of: kind) }
        if user != nil, kind != .postgres, auth == nil {
            throw ConfigError("health check user '\(user!)' is the AUTH user: it needs auth (the password)")
        }
        for (key, value) in [("user", user), ("database", database)] where kind == .postgres {
            if let value, value.isEmpty || value.utf8.contains(0) {
                throw ConfigError("health check \(key) '\(value)' must be non-empty text without NUL bytes")
            }
        }
        if let method, method.isEmpty || !method.utf8.allSatisfy({ (0x41...0x5A).contains($0) }) {
            throw ConfigError("health check method '\(method)' must be an HTTP method in capitals, such as GET or HEAD")
        }
        if let path, !path.hasPrefix("/") || !Self.isHeaderText(path) || path.contains(" ") {
            throw ConfigError("health check path '\(path)' must start with / and hold no spaces or control characters")
        }
        for (key, value) in [("host", host), ("ehlo", ehlo)] {
            if let value, value.isEmpty || !Self.isHeaderText(value) || value.contains(" ") {
                throw ConfigError("health check \(key) '\(value)' must be a name without spaces or control characters")
            }
        }
        if let body, body.isEmpty { throw ConfigError("health check body text is empty") }
        if let auth, auth.isEmpty { throw ConfigError("health check auth is empty") }
    }

    /// Printable ASCII and UTF-8 beyond it: nothing that could end or split a request line.
    private static func isHeaderText(_ text: String) -> Bool {
        text.utf8.allSatisfy { $0 >= 0x20 && $0 != 0x7F }
    }

    /// A new dialog for one probe of `target` (the backend, or its `check-port`/`check-address`).
    public func dialog(checking target: Endpoint) -> any HealthDialog {
        switch kind {
        case .redis: RedisHealthCheck.script(auth: auth, user: user, primary: false)
        case .redisPrimary: RedisHealthCheck.script(auth: auth, user: user, primary: true)
        case .postgres: PostgresHealthDialog(user: user ?? "postgres", database: database)
        case .mysql: MySQLHealthDialog()
        case .http:
            HTTPHealthDialog(method: method ?? "GET", path: path ?? "/", host: host ?? target.description,
                             status: status ?? 200...399, body: body)
        case .smtp: SMTPHealthCheck.script(domain: ehlo ?? "switchyard.invalid")
        }
    }

    /// For the startup log: `http GET /primary`, `postgres user app`, `redis-primary`.
    public var summary: String {
        switch kind {
        case .http: "http \(method ?? "GET") \(path ?? "/")"
        case .postgres: "postgres user \(user ?? "postgres")"
        default: kind.rawValue
        }
    }
}
