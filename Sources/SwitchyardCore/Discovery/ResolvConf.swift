/// The parts of `/etc/resolv.conf` (resolv.conf(5)) a stub resolver needs, read the way glibc
/// reads them: the text only, so it can be tested without the file.
///
/// - `nameserver ADDRESS` lines, IPv4 or IPv6, each on port 53; glibc uses the first three
///   (`MAXNS`), so the rest are ignored (and listed in `ignored`).
/// - `options timeout:N attempts:N`, capped as glibc caps them (30 and 5).
/// - Lines starting with `#` or `;` are comments; other keywords (`search`, `domain`,
///   `sortlist`...) do not matter for the fully qualified names discovery asks for.
public struct ResolvConf: Hashable, Sendable {
    /// glibc's `MAXNS`.
    public static let maximumNameservers = 3
    /// glibc's answer when the file names no server: the local machine (`res_init.c`).
    public static let fallbackNameservers = [Endpoint(address: .v4(127, 0, 0, 1), port: 53)]

    /// The servers in file order, at most three, each on port 53.
    public var nameservers: [Endpoint] = []
    /// `options timeout:N`, when given.
    public var timeout: Duration?
    /// `options attempts:N`, when given.
    public var attempts: Int?
    /// One line per `nameserver` entry not used, saying why (for a log line at start).
    public var ignored: [String] = []

    public init(parsing text: String) {
        for rawLine in text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            let line = rawLine.drop { $0 == " " || $0 == "\t" }
            guard let first = line.first, first != "#", first != ";" else { continue }
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            switch words.first {
            case "nameserver":
                addNameserver(words.dropFirst().first)
            case "options":
                for option in words.dropFirst() { apply(option: option) }
            default:
                continue
            }
        }
    }

    /// The servers to ask: those named, or the local machine when none is.
    public var resolvers: [Endpoint] {
        nameservers.isEmpty ? ResolvConf.fallbackNameservers : nameservers
    }

    private mutating func addNameserver(_ word: Substring?) {
        guard let word else {
            ignored.append("nameserver line without an address")
            return
        }
        if word.contains("%") {
            // A scoped IPv6 address (fe80::1%eth0): its interface cannot be carried in an IPAddress.
            ignored.append("nameserver \(word): scoped IPv6 addresses are not supported")
            return
        }
        guard let address = IPAddress(word) else {
            ignored.append("nameserver \(word): not an IPv4 or IPv6 address")
            return
        }
        guard nameservers.count < ResolvConf.maximumNameservers else {
            ignored.append("nameserver \(word): only the first \(ResolvConf.maximumNameservers) are used")
            return
        }
        nameservers.append(Endpoint(address: address, port: 53))
    }

    private mutating func apply(option: Substring) {
        let pair = option.split(separator: ":", maxSplits: 1)
        guard pair.count == 2, pair[1].allSatisfy({ $0.isASCII && $0.isNumber }), pair[1].count <= 6,
              let value = Int(pair[1]) else { return }
        switch pair[0] {
        case "timeout": timeout = .seconds(min(max(value, 1), 30))
        case "attempts": attempts = min(max(value, 1), 5)
        default: break
        }
    }
}
