/// One certificate file as `show certificates` lists it: what it names, who issued it, when it
/// expires and which terminating services present it.
public struct CertificateRow: Sendable, Equatable {
    public var path: String
    /// The DNS names it is chosen for (its subjectAltName, else its common name).
    public var names: [String]
    public var subject: String
    public var issuer: String
    /// Seconds since the Unix epoch; nil when the library could not read it.
    public var notAfter: Int64?
    /// Seconds left at the time of the listing (negative once expired).
    public var secondsLeft: Int64?
    /// Sorted.
    public var services: [String]

    public init(path: String, names: [String], subject: String, issuer: String, notAfter: Int64?, secondsLeft: Int64?, services: [String]) {
        self.path = path
        self.names = names
        self.subject = subject
        self.issuer = issuer
        self.notAfter = notAfter
        self.secondsLeft = secondsLeft
        self.services = services
    }

    /// Rows of the same file (one per service using it) merged into one, sorted by path.
    public static func merged(_ rows: [CertificateRow]) -> [CertificateRow] {
        var byPath: [String: CertificateRow] = [:]
        for row in rows {
            if var seen = byPath[row.path] {
                seen.services = Array(Set(seen.services + row.services)).sorted()
                byPath[row.path] = seen
            } else {
                var first = row
                first.services.sort()
                byPath[row.path] = first
            }
        }
        return byPath.values.sorted { $0.path < $1.path }
    }
}

extension AdminController {
    /// `show certificates [json]`: the rows `certificates` gives, soonest to expire first.
    func showCertificates(json: Bool) -> AdminReply {
        let rows = CertificateRow.merged(certificates()).sorted { ($0.notAfter ?? .max, $0.path) < ($1.notAfter ?? .max, $1.path) }
        if json {
            let objects = rows.map { row in
                JSONText.object([
                    ("path", JSONText.string(row.path)),
                    ("names", JSONText.array(row.names.map(JSONText.string))),
                    ("subject", JSONText.string(row.subject)),
                    ("issuer", JSONText.string(row.issuer)),
                    ("not_after", row.notAfter.map { JSONText.string(CertificateExpiry.timestamp($0)) } ?? "null"),
                    ("expires_in_seconds", row.secondsLeft.map { "\($0)" } ?? "null"),
                    ("services", JSONText.array(row.services.map(JSONText.string))),
                ])
            }
            return .success([JSONText.object([("certificates", JSONText.array(objects))])])
        }
        if rows.isEmpty { return .success(["no certificates (no service terminates TLS)"]) }
        let header = ["NOT AFTER", "EXPIRES", "NAMES", "ISSUER", "SERVICES", "PATH"]
        let table = rows.map { row in
            [row.notAfter.map(CertificateExpiry.timestamp) ?? "-",
             row.secondsLeft.map { CertificateExpiry.describe(notAfter: $0, now: 0) } ?? "-",
             row.names.joined(separator: ","), row.issuer, row.services.joined(separator: ","), row.path]
        }
        return .success(Self.aligned([header] + table))
    }
}
