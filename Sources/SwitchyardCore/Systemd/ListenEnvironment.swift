/// What systemd's socket-activation variables say (sd_listen_fds(3)): how many descriptors were
/// passed, from fd 3 on, and their names.
///
/// - `LISTEN_PID` must be this process's id: a variable inherited from a parent that was itself
///   activated is meant for that parent, and its descriptors are not ours.
/// - `LISTEN_FDS` is the count; the descriptors are `3 ..< 3 + count`.
/// - `LISTEN_FDNAMES`, when set, has one colon-separated name per descriptor (a unit's
///   `FileDescriptorName=`, by default the socket unit's name). Names cannot contain colons.
public struct ListenEnvironment: Equatable, Sendable {
    /// `SD_LISTEN_FDS_START`.
    public static let firstDescriptor: Int32 = 3
    /// More than this many passed descriptors is refused as a mistake rather than inspected.
    public static let maximumDescriptors = 4096

    /// The names of the variables, which a process unsets once it has read them so that its
    /// children do not inherit them (what `sd_listen_fds(1)` does).
    public static let variableNames = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"]

    /// How many descriptors were passed.
    public var count: Int
    /// One per descriptor; nil when `LISTEN_FDNAMES` is unset or a name is empty.
    public var names: [String?]

    public init(count: Int, names: [String?]) {
        self.count = count
        self.names = names
    }

    /// The descriptor numbers: 3, 4, ...
    public var descriptors: [Int32] {
        (0..<count).map { Self.firstDescriptor + Int32($0) }
    }

    /// What the variables mean for the process `processID`.
    public enum Outcome: Equatable, Sendable {
        /// No socket activation: `LISTEN_FDS` or `LISTEN_PID` unset, or a count of 0.
        case none
        /// The variables name another process (`LISTEN_PID`); its descriptors are left alone.
        case otherProcess(listenPID: Int)
        case passed(ListenEnvironment)
    }

    /// Reads the three variables' values (nil when unset). Throws a one-line message for values
    /// systemd never writes: a count or pid that is not a decimal number, a count above
    /// `maximumDescriptors`, a number of names that is not the count.
    public static func parse(listenFDs: String?, listenPID: String?, listenFDNames: String?, processID: Int) throws(ConfigError) -> Outcome {
        guard let listenFDs, let listenPID else { return .none }
        guard let pid = Self.decimal(listenPID), pid > 0 else {
            throw ConfigError("LISTEN_PID '\(listenPID)' is not a process id")
        }
        guard pid == processID else { return .otherProcess(listenPID: pid) }
        guard let count = Self.decimal(listenFDs) else {
            throw ConfigError("LISTEN_FDS '\(listenFDs)' is not a number of descriptors")
        }
        guard count <= maximumDescriptors else {
            throw ConfigError("LISTEN_FDS \(count) is more than the \(maximumDescriptors) descriptors Switchyard accepts")
        }
        guard count > 0 else { return .none }
        var names = [String?](repeating: nil, count: count)
        if let listenFDNames {
            let parts = listenFDNames.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == count else {
                throw ConfigError("LISTEN_FDNAMES has \(parts.count) name(s) for \(count) descriptor(s): '\(listenFDNames)'")
            }
            names = parts.map { $0.isEmpty ? nil : String($0) }
        }
        return .passed(ListenEnvironment(count: count, names: names))
    }

    /// A non-negative decimal number without sign or spaces, as systemd writes them.
    private static func decimal(_ text: String) -> Int? {
        guard !text.isEmpty, text.utf8.count <= 18, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int(text)
    }
}
