/// The keys of the configuration file, as `Decodable` types. Keys are the command-line flags'
/// names (kebab-case). Unknown keys are errors that name the nearest valid key; values are
/// parsed with the same parsers as the command line, so both accept exactly the same text.

/// A key of the file, by its text.
struct ConfigKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(_ text: String) { stringValue = text }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) {
        stringValue = "\(intValue)"
        self.intValue = intValue
    }
}

extension KeyedDecodingContainer where Key == ConfigKey {
    /// Refuses keys not in `allowed`, naming the nearest valid one.
    func rejectUnknownKeys(_ allowed: [String], in what: String) throws {
        for key in allKeys where !allowed.contains(key.stringValue) {
            let hint = NearestKey.suggestion(for: key.stringValue, among: allowed).map { "; did you mean '\($0)'?" }
                ?? "; valid keys: \(allowed.joined(separator: ", "))"
            throw DecodingError.dataCorruptedError(
                forKey: key, in: self, debugDescription: "unknown key '\(key.stringValue)' in \(what)\(hint)")
        }
    }

    func value<T: Decodable>(_ key: String, as type: T.Type = T.self) throws -> T? {
        try decodeIfPresent(T.self, forKey: ConfigKey(key))
    }

    /// A value parsed from its text by `parse`, whose `ConfigError` is reported at the key.
    func parsed<T>(_ key: String, _ parse: (String) throws(ConfigError) -> T) throws -> T? {
        guard let text = try decodeIfPresent(String.self, forKey: ConfigKey(key)) else { return nil }
        do {
            return try parse(text)
        } catch {
            throw DecodingError.dataCorruptedError(forKey: ConfigKey(key), in: self, debugDescription: "\(key): \(error.message)")
        }
    }

    /// A list of values each parsed from its text by `parse`; an error is reported at the item.
    func parsedList<T>(_ key: String, _ parse: (String) throws(ConfigError) -> T) throws -> [T]? {
        guard contains(ConfigKey(key)) else { return nil }
        var list = try nestedUnkeyedContainer(forKey: ConfigKey(key))
        var values: [T] = []
        while !list.isAtEnd {
            let text = try list.decode(String.self)
            do {
                values.append(try parse(text))
            } catch {
                throw DecodingError.dataCorrupted(DecodingError.Context(
                    codingPath: list.codingPath + [ConfigKey(intValue: list.currentIndex - 1)!],
                    debugDescription: "\(key): \(error.message)"))
            }
        }
        return values
    }

    /// A duration such as `500ms` or `2s`; with `allowOff`, `off` gives `.some(nil)`.
    func duration(_ key: String, allowOff: Bool = false) throws -> Duration?? {
        try parsed(key) { (text) throws(ConfigError) -> Duration? in
            if allowOff && text == "off" { return nil }
            return try Duration(parsing: text)
        }
    }

    /// `true` or `false`.
    func flag(_ key: String) throws -> Bool? {
        try parsed(key, ServiceSettings.parseBool)
    }

    /// One of an enumeration's raw values; the error lists them.
    func choice<T: RawRepresentable & CaseIterable>(_ key: String, _ type: T.Type) throws -> T? where T.RawValue == String {
        try parsed(key) { (text) throws(ConfigError) in try ServiceSettings.parseChoice(text, as: T.self) }
    }
}

/// The whole file: the global settings (`GlobalSettings.fileKeys`), `defaults` and `services`.
struct RawConfigFile: Decodable {
    static let keys = GlobalSettings.fileKeys + ["defaults", "services"]

    var global: GlobalSettings
    var defaults: RawService?
    /// In file order.
    var services: [(name: String, service: RawService)] = []

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: ConfigKey.self)
        try container.rejectUnknownKeys(Self.keys, in: "the top level")
        global = try GlobalSettings(fileKeysOf: container)
        defaults = try container.value("defaults")
        if defaults?.listen != nil {
            throw DecodingError.dataCorrupted(DecodingError.Context(
                codingPath: container.codingPath + [ConfigKey("defaults"), ConfigKey("listen")],
                debugDescription: "'listen' cannot be a default: each service needs listen addresses of its own"))
        }
        guard container.contains(ConfigKey("services")) else {
            throw DecodingError.keyNotFound(ConfigKey("services"), DecodingError.Context(
                codingPath: container.codingPath, debugDescription: "no services"))
        }
        let services = try container.nestedContainer(keyedBy: ConfigKey.self, forKey: ConfigKey("services"))
        for key in services.allKeys {
            guard ServiceConfiguration.isValidName(key.stringValue) else {
                throw DecodingError.dataCorruptedError(
                    forKey: key, in: services,
                    debugDescription: "service name '\(key.stringValue)' may hold only letters, digits, '_', '.' and '-'")
            }
            self.services.append((key.stringValue, try services.decode(RawService.self, forKey: key)))
        }
    }

    /// The configuration the file describes, with defaults applied (validated by the caller).
    func configuration() throws(ConfigIssue) -> Configuration {
        var built: [ServiceConfiguration] = []
        for (name, raw) in services {
            built.append(try raw.merged(over: defaults).service(named: name))
        }
        return Configuration(global: global, services: built)
    }
}
