/// A `HOST:PORT` as the user wrote it. IPv6 literals are written `[ADDR]:PORT`.
///
/// `host` is kept as given so that admin commands can name a backend exactly as it was added;
/// `address` is set when the host is an IP literal (hostnames are resolved by the I/O layer).
public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: UInt16
    public var address: IPAddress?

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
        self.address = IPAddress(host)
    }

    public init(address: IPAddress, port: UInt16) {
        self.host = address.description
        self.port = port
        self.address = address
    }

    /// Parses `HOST:PORT` or `[IPV6]:PORT`. Port 0 is accepted only when `allowPortZero` is set
    /// (listeners may ask the kernel for a port; backends may not).
    public init(parsing text: String, allowPortZero: Bool = false) throws(ConfigError) {
        let hostPart: Substring
        let portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                throw ConfigError("'\(text)' is not HOST:PORT: missing ']' after the IPv6 address")
            }
            hostPart = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else {
                throw ConfigError("'\(text)' is not HOST:PORT: expected ':PORT' after ']'")
            }
            portPart = rest.dropFirst()
            guard IPAddress.parseV6(hostPart) != nil else {
                throw ConfigError("'\(text)': '\(hostPart)' is not an IPv6 address")
            }
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                throw ConfigError("'\(text)' is not HOST:PORT: missing ':PORT'")
            }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
            if hostPart.contains(":") {
                throw ConfigError("'\(text)': write IPv6 addresses in brackets, as [ADDR]:PORT")
            }
        }
        guard !hostPart.isEmpty else { throw ConfigError("'\(text)' has an empty host") }
        guard hostPart.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || ".-_:".contains($0)) }) else {
            throw ConfigError("'\(text)': '\(hostPart)' is not a valid host")
        }
        guard !portPart.isEmpty, portPart.allSatisfy({ $0.isASCII && $0.isNumber }),
              let port = UInt16(portPart), port != 0 || allowPortZero else {
            throw ConfigError("'\(text)': port '\(portPart)' must be a number from \(allowPortZero ? 0 : 1) to 65535")
        }
        self.init(host: String(hostPart), port: port)
    }

    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

/// A configuration value that could not be accepted; `message` names the bad value.
public struct ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    /// Control characters in `message` (from the text it quotes: a YAML "\n" or "\r" in a
    /// value) are written as escapes, so that an error is always one line of a log or reply.
    public init(_ message: String) {
        guard message.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            self.message = message
            return
        }
        var text = ""
        for scalar in message.unicodeScalars {
            switch scalar.value {
            case 0x0A: text += "\\n"
            case 0x0D: text += "\\r"
            case 0x09: text += "\\t"
            case 0..<0x20, 0x7F: text += "\\x" + String(scalar.value, radix: 16).leftPadded(to: 2)
            default: text.unicodeScalars.append(scalar)
            }
        }
        self.message = text
    }
    public var description: String { message }
}
