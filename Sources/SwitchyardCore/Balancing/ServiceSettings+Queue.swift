/// The keys of the queue (`ConnectionQueue`) and of slow start (issue 13): `queue-size`,
/// `queue-timeout` and the service's `slow-start` (a backend's own is a `BackendSpec` option).
extension ServiceSettings {
    public static let maximumQueueSize = 1_000_000

    static let queueKeys: [ServiceKey] = [
        .value("queue-size", \.queueSize, parse: parseQueueSize),
        .value("queue-timeout", \.queueTimeout, parse: parseQueueTimeout),
        // `off` or 0: none.
        .value("slow-start", \.slowStart, parse: { (text) throws(ConfigError) -> Duration? in
            let window = try BackendSpec.parseSlowStart(text, context: "service")
            return window == .zero ? nil : window
        }),
    ]

    /// `queue-size`: 0 (no queue: a client finding every backend full is closed) to 1,000,000.
    public static func parseQueueSize(_ text: String) throws(ConfigError) -> Int {
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(text),
              (0...maximumQueueSize).contains(value) else {
            throw ConfigError("queue-size '\(text)' must be a whole number from 0 to \(maximumQueueSize)")
        }
        return value
    }

    /// `queue-timeout`: a duration above 0.
    public static func parseQueueTimeout(_ text: String) throws(ConfigError) -> Duration {
        try parsePositiveDuration(text, key: "queue-timeout")
    }

    /// The slow-start window of `backend`: its own, else the service's; nil when none.
    public func slowStart(of backend: BackendSpec) -> Duration? {
        let window = backend.slowStart ?? slowStart
        return window.flatMap { $0 > .zero ? $0 : nil }
    }
}
