import Yams

/// The YAML configuration file (README, "Configuration file"): decoded with Yams into the
/// `Decodable` types of `ConfigFileKeys.swift`, then merged with `defaults` and validated into a
/// `Configuration`. Every error names the file, line and column and what was expected.
public enum ConfigFile {
    /// Parses `text`, the contents of the file at `file` (used in error messages only).
    public static func parse(_ text: String, file: String) throws(ConfigFileError) -> Configuration {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw ConfigFileError(file: file, line: 1, column: 1, "the file is empty: expected a mapping with 'services'")
            }
            root = node
        } catch let error as ConfigFileError {
            throw error
        } catch let error as YamlError {
            throw Self.syntaxError(error, file: file)
        } catch {
            throw ConfigFileError(file: file, line: 1, column: 1, "cannot read YAML: \(error)")
        }
        let raw: RawConfigFile
        do {
            raw = try YAMLDecoder().decode(RawConfigFile.self, from: root)
        } catch let error as DecodingError {
            throw Self.locate(error, in: root, file: file)
        } catch let error as YamlError {
            throw Self.syntaxError(error, file: file)
        } catch {
            throw ConfigFileError(file: file, line: 1, column: 1, "\(error)")
        }
        let configuration: Configuration
        do {
            configuration = try raw.configuration()
            try configuration.validate()
        } catch {
            let mark = Self.mark(of: error.path, in: root)
            throw ConfigFileError(file: file, line: mark.line, column: mark.column, error.message)
        }
        return configuration
    }

    // MARK: - Positions

    /// The line and column of the node at `path`, or of its deepest existing ancestor.
    /// With `atKey`, a path ending in a key gives the position of the key rather than its value.
    static func mark(of path: [ConfigPathComponent], in root: Node, atKey: Bool = false) -> (line: Int, column: Int) {
        var node = root
        for (position, component) in path.enumerated() {
            var next: Node?
            switch component {
            case let .key(key):
                let pair = node.mapping?.first(where: { $0.key.string == key })
                next = atKey && position == path.count - 1 ? pair?.key : pair?.value
            case let .index(index):
                if let sequence = node.sequence, index >= 0, index < sequence.count { next = sequence[index] }
            }
            guard let next else { break }
            node = next
        }
        guard let mark = node.mark else { return (1, 1) }
        return (mark.line, mark.column)
    }

    static func path(_ codingPath: [any CodingKey]) -> [ConfigPathComponent] {
        codingPath.map { key in key.intValue.map(ConfigPathComponent.index) ?? .key(key.stringValue) }
    }

    /// Turns a decoding error into a message at the position of the value it concerns.
    static func locate(_ error: DecodingError, in root: Node, file: String) -> ConfigFileError {
        let path: [ConfigPathComponent]
        let message: String
        switch error {
        case let .typeMismatch(type, context):
            path = Self.path(context.codingPath)
            message = "\(Self.name(path)): expected \(Self.describe(type))"
        case let .valueNotFound(type, context):
            path = Self.path(context.codingPath)
            message = "\(Self.name(path)): expected \(Self.describe(type)), found nothing"
        case let .keyNotFound(key, context):
            path = Self.path(context.codingPath)
            message = "missing key '\(key.stringValue)'" + (path.isEmpty ? "" : " in \(Self.name(path))")
        case let .dataCorrupted(context):
            path = Self.path(context.codingPath)
            message = context.debugDescription
        @unknown default:
            path = []
            message = "\(error)"
        }
        let mark = Self.mark(of: path, in: root, atKey: message.hasPrefix("unknown key"))
        return ConfigFileError(file: file, line: mark.line, column: mark.column, message)
    }

    static func name(_ path: [ConfigPathComponent]) -> String {
        guard !path.isEmpty else { return "the file" }
        var text = ""
        for component in path {
            switch component {
            case let .key(key): text += text.isEmpty ? key : ".\(key)"
            case let .index(index): text += "[\(index)]"
            }
        }
        return "'\(text)'"
    }

    static func describe(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type: "a whole number"
        case is Bool.Type: "true or false"
        case is String.Type: "a string"
        case is Node.Scalar.Type: "a single value"
        case is Node.Mapping.Type: "a mapping of keys to values"
        case is Node.Sequence.Type: "a list"
        default:
            String(describing: type).contains("Dictionary") ? "a mapping of keys to values"
                : String(describing: type).contains("Array") ? "a list" : "a \(type)"
        }
    }

    static func syntaxError(_ error: YamlError, file: String) -> ConfigFileError {
        switch error {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _),
             let .composer(context, problem, mark, _):
            let prefix = context.map { "\($0.text) " } ?? ""
            return ConfigFileError(file: file, line: mark.line, column: mark.column, "YAML syntax: \(prefix)\(problem)")
        case let .duplicatedKeysInMapping(duplicates, context):
            let names = duplicates.sorted().map { "'\($0)'" }.joined(separator: ", ")
            return ConfigFileError(file: file, line: context.mark.line, column: context.mark.column,
                                   "duplicate key \(names) in one mapping (a service or key is defined twice)")
        case let .reader(problem, _, _, _):
            return ConfigFileError(file: file, line: 1, column: 1, "cannot read the file as UTF-8 text: \(problem)")
        default:
            return ConfigFileError(file: file, line: 1, column: 1, "YAML: \(error)")
        }
    }
}

/// A configuration file error: `FILE:LINE:COLUMN: message`.
public struct ConfigFileError: Error, Equatable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public var message: String

    public init(file: String, line: Int, column: Int, _ message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String { "\(file):\(line):\(column): \(message)" }
}

/// Suggests the valid key nearest to a misspelt one (edit distance, at most 3 edits).
enum NearestKey {
    static func suggestion(for key: String, among candidates: [String]) -> String? {
        let scored = candidates.map { ($0, distance(Array(key.lowercased().utf8), Array($0.utf8))) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= max(1, min(3, key.count / 2)) else { return nil }
        return best.0
    }

    static func distance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = previous
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
