/// One backend as given on the command line or to `add`: `HOST:PORT[,weight=N]`.
public struct BackendSpec: Hashable, Sendable, CustomStringConvertible {
    public static let maximumWeight = 256

    public var endpoint: Endpoint
    public var weight: Int
    /// Whether the weight was written explicitly (round robin warns that it ignores it).
    public var weightGiven: Bool

    public init(endpoint: Endpoint, weight: Int = 1, weightGiven: Bool = false) {
        self.endpoint = endpoint
        self.weight = weight
        self.weightGiven = weightGiven
    }

    /// Parses `HOST:PORT[,weight=N]` with N from 0 to 256 (0: configured but never picked).
    public init(parsing text: String) throws(ConfigError) {
        let fields = text.split(separator: ",", omittingEmptySubsequences: false)
        let endpoint = try Endpoint(parsing: String(fields[0]))
        var weight = 1
        var weightGiven = false
        for field in fields.dropFirst() {
            let pair = field.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard pair.count == 2, pair[0] == "weight" else {
                throw ConfigError("backend '\(text)': unknown option '\(field)' (expected weight=N)")
            }
            weight = try BackendSpec.parseWeight(String(pair[1]), context: "backend '\(text)'")
            weightGiven = true
        }
        self.init(endpoint: endpoint, weight: weight, weightGiven: weightGiven)
    }

    /// Parses a weight from 0 to `maximumWeight`.
    public static func parseWeight(_ text: String, context: String) throws(ConfigError) -> Int {
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(text),
              (0...maximumWeight).contains(value) else {
            throw ConfigError("\(context): weight '\(text)' must be a whole number from 0 to \(maximumWeight)")
        }
        return value
    }

    public var description: String {
        weightGiven ? "\(endpoint),weight=\(weight)" : endpoint.description
    }
}
