/// One per-service key: its name (the file's key, under a service or `defaults`, and the `serve`
/// flag `--NAME`), the field of `ServiceSettings` it sets, the one parser both read its text
/// with, and its rule. The field's default is the field's initial value in `ServiceSettings`.
///
/// Each feature declares its keys next to its code (`ServiceSettings.timeoutKeys`,
/// `queueKeys`, `proxyProtocolKeys`, `sourceKeys`, `clientControlKeys`, `failoverKeys`); `ServiceSettings.keys`
/// lists the groups. The file (`RawService`) and the command line (`ServiceOptions`) read
/// every key through the same declaration, so they accept the same text with the same errors.
public struct ServiceKey: Sendable {
    /// A value given for a key, as the change it makes to a service's settings.
    public struct Setting: Sendable {
        public let key: String
        let change: @Sendable (inout ServiceSettings) -> Void

        public func apply(to settings: inout ServiceSettings) { change(&settings) }
    }

    public let name: String
    /// Reads the key's text (the flag's value; the file's unless `decode` reads it otherwise).
    public let parse: @Sendable (String) throws(ConfigError) -> Setting
    /// Reads the key from a service's mapping in the file; nil when it is not there.
    let decode: @Sendable (KeyedDecodingContainer<ConfigKey>) throws -> Setting?
    /// The key's rule on the settings it ends in, as a message; nil when they pass.
    let check: @Sendable (ServiceSettings) -> String?
    /// Sets the key's field back to its default.
    let reset: @Sendable (inout ServiceSettings) -> Void

    /// A key whose text is parsed by `parse` into `field`.
    public static func value<Value: Sendable>(
        _ name: String, _ field: WritableKeyPath<ServiceSettings, Value> & Sendable,
        parse: @escaping @Sendable (String) throws(ConfigError) -> Value,
        check: @escaping @Sendable (ServiceSettings) -> String? = { _ in nil }
    ) -> ServiceKey {
        let setting = Self.setting(name, field, parse)
        return ServiceKey(name: name, parse: setting, decode: { container in try container.parsed(name, setting) }, check: check,
                          reset: { $0[keyPath: field] = ServiceSettings()[keyPath: field] })
    }

    /// A key that is a list: in the file a YAML list (each item parsed by `item`, an error
    /// reported at the item) or one text, which like the flag's value is parsed by `text`
    /// (`ADDR[,ADDR...]`).
    public static func list<Item: Sendable>(
        _ name: String, _ field: WritableKeyPath<ServiceSettings, [Item]> & Sendable,
        item: @escaping @Sendable (String) throws(ConfigError) -> Item,
        text: @escaping @Sendable (String) throws(ConfigError) -> [Item],
        check: @escaping @Sendable (ServiceSettings) -> String? = { _ in nil }
    ) -> ServiceKey {
        let setting = Self.setting(name, field, text)
        return ServiceKey(name: name, parse: setting, decode: { container in
            guard container.contains(ConfigKey(name)) else { return nil }
            if (try? container.decode(String.self, forKey: ConfigKey(name))) != nil {
                return try container.parsed(name, setting)
            }
            return try container.parsedList(name, item).map { items in Setting(key: name) { $0[keyPath: field] = items } }
        }, check: check, reset: { $0[keyPath: field] = ServiceSettings()[keyPath: field] })
    }

    /// A key the file gives as a YAML value of type `Value` (such as a boolean) rather than text
    /// to parse; `parse` reads the flag's text.
    public static func decoded<Value: Decodable & Sendable>(
        _ name: String, _ field: WritableKeyPath<ServiceSettings, Value> & Sendable,
        parse: @escaping @Sendable (String) throws(ConfigError) -> Value,
        check: @escaping @Sendable (ServiceSettings) -> String? = { _ in nil }
    ) -> ServiceKey {
        ServiceKey(name: name, parse: Self.setting(name, field, parse), decode: { container in
            try container.value(name, as: Value.self).map { value in Setting(key: name) { $0[keyPath: field] = value } }
        }, check: check, reset: { $0[keyPath: field] = ServiceSettings()[keyPath: field] })
    }

    private static func setting<Value: Sendable>(
        _ name: String, _ field: WritableKeyPath<ServiceSettings, Value> & Sendable,
        _ parse: @escaping @Sendable (String) throws(ConfigError) -> Value
    ) -> @Sendable (String) throws(ConfigError) -> Setting {
        { (text) throws(ConfigError) -> Setting in
            let value = try parse(text)
            return Setting(key: name) { $0[keyPath: field] = value }
        }
    }

    /// The declared key named `name`; a name no feature declares is a programming error.
    public static func named(_ name: String) -> ServiceKey {
        guard let key = ServiceSettings.keys.first(where: { $0.name == name }) else {
            preconditionFailure("no per-service key '\(name)' is declared in ServiceSettings.keys")
        }
        return key
    }
}

extension ServiceSettings {
    /// Every per-service key, in the order the file is read and the settings are checked.
    public static let keys: [ServiceKey] = timeoutKeys + queueKeys + proxyProtocolKeys + sourceKeys + clientControlKeys + failoverKeys + tlsKeys + backendTLSKeys

    /// The settings with `given` applied over the defaults, in the order of `keys`.
    public init(_ given: [ServiceKey.Setting]) {
        self.init()
        let byKey = Dictionary(given.map { ($0.key, $0) }, uniquingKeysWith: { _, last in last })
        for key in Self.keys { byKey[key.name]?.apply(to: &self) }
    }

    /// A duration above 0 for `key`, whose name the error carries.
    static func parsePositiveDuration(_ text: String, key: String) throws(ConfigError) -> Duration {
        let duration: Duration
        do {
            duration = try Duration(parsing: text)
        } catch {
            throw ConfigError("\(key) '\(text)': \(error.message)")
        }
        guard duration > .zero else { throw ConfigError("\(key) '\(text)' must be longer than 0") }
        return duration
    }

    /// `true` or `false`, for a key's flag text.
    static func parseBool(_ text: String) throws(ConfigError) -> Bool {
        switch text {
        case "true": return true
        case "false": return false
        default: throw ConfigError("'\(text)' must be true or false")
        }
    }

    /// One of an enumeration's raw values; the error lists them.
    static func parseChoice<T: RawRepresentable & CaseIterable>(_ text: String, as type: T.Type) throws(ConfigError) -> T where T.RawValue == String {
        guard let value = T(rawValue: text) else {
            throw ConfigError("'\(text)' is not one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return value
    }
}
