/// The keys of a file's `health:` mapping that say what a check does beyond connecting
/// (issue 22): `steps`, `type` with its options, and `check-send-proxy`. `RawHealth` (below) holds one of these; errors point at the key or step concerned.
///
/// ```yaml
/// health:
///   steps:
///     - send: "PING\r\n"                       # text with \r \n \t \0 \\ \xHH escapes
///     - send-hex: "2a310d0a"                   # or bytes as hex digits
///     - expect: {string: "+PONG", match: prefix}  # string, regex or hex; contains (default), prefix or match
///     - expect: close                          # the backend closes the connection
/// ```
struct RawHealthDialog {
    static let keys = ["steps", "type"] + HealthCheckType.optionKeys + ["check-send-proxy"]

    var steps: [HealthStep]?
    var type: HealthCheckType?
    var checkSendProxy: Bool?
    /// `type: tls` (a TLS handshake is the check) or `type: tcp` (a connect is); nil: neither.
    var connectionType: String?

    init() {}

    init(_ container: KeyedDecodingContainer<ConfigKey>) throws {
        if container.contains(ConfigKey("steps")) {
            let steps = try container.decode([RawHealthStep].self, forKey: ConfigKey("steps")).map(\.step)
            do {
                try HealthCheckConfig.validate(steps)
            } catch {
                throw DecodingError.dataCorruptedError(forKey: ConfigKey("steps"), in: container, debugDescription: "steps: \(error.message)")
            }
            self.steps = steps
        }
        let typeText: String? = try container.value("type")
        if let typeText, ["tcp", "tls"].contains(typeText) {
            connectionType = typeText
            if let key = HealthCheckType.optionKeys.first(where: { container.contains(ConfigKey($0)) }) {
                throw DecodingError.dataCorruptedError(
                    forKey: ConfigKey(key), in: container, debugDescription: "'\(key)' is not an option of type \(typeText)")
            }
        } else if let typeText, HealthCheckType.Kind(rawValue: typeText) == nil {
            let names = ["tcp", "tls"] + HealthCheckType.Kind.allCases.map(\.rawValue)
            throw DecodingError.dataCorruptedError(
                forKey: ConfigKey("type"), in: container, debugDescription: "'\(typeText)' is not one of \(names.joined(separator: ", "))")
        } else if let kind = try container.choice("type", HealthCheckType.Kind.self) {
            var type = HealthCheckType(kind)
            for key in HealthCheckType.optionKeys where container.contains(ConfigKey(key)) {
                do {
                    try HealthCheckType.checkOption(key, of: kind)
                } catch {
                    throw DecodingError.dataCorruptedError(forKey: ConfigKey(key), in: container, debugDescription: error.message)
                }
            }
            type.auth = try container.value("auth")
            type.user = try container.value("user")
            type.database = try container.value("database")
            type.method = try container.value("method")
            type.path = try container.value("path")
            type.host = try container.value("host")
            type.status = try container.parsed("status", HTTPHealthDialog.parseStatusRange)
            type.body = try container.value("body")
            type.ehlo = try container.value("ehlo")
            do {
                try type.validate()
            } catch {
                throw DecodingError.dataCorruptedError(forKey: ConfigKey("type"), in: container, debugDescription: error.message)
            }
            self.type = type
        } else if let key = HealthCheckType.optionKeys.first(where: { container.contains(ConfigKey($0)) }) {
            let kinds = HealthCheckType.options.first { $0.key == key }!.kinds.map(\.rawValue).joined(separator: " or ")
            throw DecodingError.dataCorruptedError(
                forKey: ConfigKey(key), in: container, debugDescription: "'\(key)' is an option of type \(kinds): set type too")
        }
        checkSendProxy = try container.flag("check-send-proxy")
    }

    /// Whether these keys say what is checked (`steps` or `type`), so that a `defaults` check
    /// of another kind is not merged into them.
    var saysWhatIsChecked: Bool { steps != nil || type != nil || connectionType != nil }

    func merged(over defaults: RawHealthDialog, serviceSaysWhatIsChecked: Bool) -> RawHealthDialog {
        var result = self
        if !serviceSaysWhatIsChecked {
            result.steps = defaults.steps
            result.type = defaults.type
            result.connectionType = defaults.connectionType
        }
        result.checkSendProxy = checkSendProxy ?? defaults.checkSendProxy
        return result
    }

    func apply(to config: inout HealthCheckConfig) {
        config.steps = steps
        config.type = type
        config.tls.handshakeOnly = connectionType == "tls"
        if let checkSendProxy { config.checkSendProxy = checkSendProxy }
    }
}

/// One item of `steps:`: a mapping with exactly one of `send`, `send-hex` or `expect`.
struct RawHealthStep: Decodable {
    static let keys = ["send", "send-hex", "expect"]

    var step: HealthStep

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: ConfigKey.self)
        try container.rejectUnknownKeys(Self.keys, in: "a health check step")
        guard container.allKeys.count == 1 else {
            throw DecodingError.dataCorrupted(DecodingError.Context(
                codingPath: container.codingPath,
                debugDescription: "a step is a mapping with one key: send, send-hex or expect, as in {send: \"PING\\r\\n\"}"))
        }
        let key = container.allKeys[0]
        if key.stringValue != "expect" {
            // `decode`, not `parsed`: a key without a value (`- send:`) is an error at the key.
            let text = try container.decode(String.self, forKey: key)
            do {
                step = .send(try key.stringValue == "send" ? HealthCheckConfig.decodeEscapes(text) : HealthCheckConfig.decodeHex(text))
            } catch {
                throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: "\(key.stringValue): \(error.message)")
            }
        } else if let word = try? container.decode(String.self, forKey: ConfigKey("expect")) {
            guard word == "close" else {
                throw DecodingError.dataCorruptedError(
                    forKey: ConfigKey("expect"), in: container,
                    debugDescription: "expect: '\(word)' must be close or a mapping with string, regex or hex, as in {string: \"+PONG\"}")
            }
            step = .expect(HealthExpectation(.close))
        } else {
            step = .expect(try container.decode(RawHealthExpectation.self, forKey: ConfigKey("expect")).expectation)
        }
        if case let .send(bytes) = step, bytes.isEmpty {
            throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: "\(key.stringValue): the payload is empty")
        }
    }
}

/// `expect: {string|regex|hex: ..., match: contains|prefix|match}`.
struct RawHealthExpectation: Decodable {
    static let keys = ["string", "regex", "hex", "match"]

    var expectation: HealthExpectation

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: ConfigKey.self)
        try container.rejectUnknownKeys(Self.keys, in: "expect")
        let patterns = ["string", "regex", "hex"].filter { container.contains(ConfigKey($0)) }
        guard patterns.count == 1 else {
            throw DecodingError.dataCorrupted(DecodingError.Context(
                codingPath: container.codingPath,
                debugDescription: "expect needs exactly one of string, regex or hex\(patterns.isEmpty ? "" : " (found \(patterns.joined(separator: " and ")))")"))
        }
        // `decode`, not `parsed`: a key without a value (`{string}`) is an error at the key.
        let key = ConfigKey(patterns[0])
        let text = try container.decode(String.self, forKey: key)
        let pattern: HealthExpectation.Pattern
        do {
            switch patterns[0] {
            case "string": pattern = .bytes(try HealthCheckConfig.decodeEscapes(text))
            case "hex": pattern = .bytes(try HealthCheckConfig.decodeHex(text))
            default: pattern = .regex(text)
            }
        } catch {
            throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: "\(patterns[0]): \(error.message)")
        }
        expectation = HealthExpectation(pattern, match: try container.choice("match", HealthExpectation.Match.self) ?? .contains)
        do {
            try expectation.validate()
        } catch {
            throw DecodingError.dataCorruptedError(forKey: ConfigKey(patterns[0]), in: container, debugDescription: "\(patterns[0]): \(error.message)")
        }
    }
}

/// `health:` as a mapping, or `off`.
struct RawHealth: Decodable {
    static let keys = ["interval", "timeout", "rise", "fall", "send", "expect", "expect-match"]
        + ["check-tls", "server-name", "ca-file"]  // TLS in checks (issue 22).
        + RawHealthDialog.keys  // Check sequences, protocol checks (type), check-send-proxy (issue 22).

    var off = false
    var interval: Duration?
    var timeout: Duration?
    var rise: Int?
    var fall: Int?
    var send: [UInt8]?
    var expect: [UInt8]?
    var expectMatch: HealthCheckConfig.ExpectMatch?
    // TLS in checks (issue 22).
    var checkTLS: Bool?
    var serverName: String?
    var caFile: String?
    var dialog = RawHealthDialog()  // issue 22

    init(from decoder: any Decoder) throws {
        if let single = try? decoder.singleValueContainer(), let text = try? single.decode(String.self) {
            guard text == "off" || text == "false" else {
                throw DecodingError.dataCorruptedError(
                    in: single, debugDescription: "health: expected a mapping (\(Self.keys.joined(separator: ", "))) or off, found '\(text)'")
            }
            off = true
            return
        }
        let container = try decoder.container(keyedBy: ConfigKey.self)
        try container.rejectUnknownKeys(Self.keys, in: "health")
        interval = try container.duration("interval") ?? nil
        timeout = try container.duration("timeout") ?? nil
        rise = try container.value("rise")
        fall = try container.value("fall")
        send = try container.parsed("send", HealthCheckConfig.decodeEscapes)
        expect = try container.parsed("expect", HealthCheckConfig.decodeEscapes)
        expectMatch = try container.choice("expect-match", HealthCheckConfig.ExpectMatch.self)
        // TLS in checks (issue 22).
        checkTLS = try container.flag("check-tls")
        serverName = try container.parsed("server-name", HealthCheckTLS.parseServerName)
        caFile = try container.parsed("ca-file", HealthCheckTLS.parseCAFile)
        dialog = try RawHealthDialog(container)
    }

    func merged(over defaults: RawHealth) -> RawHealth {
        guard !off, !defaults.off else { return self }
        var result = self
        result.interval = interval ?? defaults.interval
        result.timeout = timeout ?? defaults.timeout
        result.rise = rise ?? defaults.rise
        result.fall = fall ?? defaults.fall
        // What is checked comes from one place: a service's steps or type replace the defaults'
        // send/expect, and its send/expect replace the defaults' steps or type (issue 22).
        let mySendExpect = send != nil || expect != nil
        if !dialog.saysWhatIsChecked {
            result.send = send ?? defaults.send
            result.expect = expect ?? defaults.expect
            result.expectMatch = expectMatch ?? defaults.expectMatch
        }
        result.dialog = dialog.merged(over: defaults.dialog, serviceSaysWhatIsChecked: mySendExpect || dialog.saysWhatIsChecked)
        // TLS in checks (issue 22).
        result.checkTLS = checkTLS ?? defaults.checkTLS
        result.serverName = serverName ?? defaults.serverName
        result.caFile = caFile ?? defaults.caFile
        return result
    }

    var configuration: HealthCheckConfig {
        var config = HealthCheckConfig()
        if let interval { config.interval = interval }
        if let timeout { config.timeout = timeout }
        if let rise { config.rise = rise }
        if let fall { config.fall = fall }
        config.send = send
        config.expect = expect
        if let expectMatch { config.expectMatch = expectMatch }
        // TLS in checks (issue 22); `type: tls` (handshakeOnly) comes with the dialog's keys.
        config.tls = HealthCheckTLS(handshakeOnly: false, checkTLS: checkTLS ?? false, serverName: serverName, caFile: caFile)
        dialog.apply(to: &config)
        return config
    }
}
