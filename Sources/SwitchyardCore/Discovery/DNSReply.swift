/// The answer to one `DNSQuery`, checked against it and reduced to what discovery needs.
public struct DNSReply: Hashable, Sendable {
    public enum Outcome: Hashable, Sendable {
        /// NOERROR. The records may be empty (NODATA: the name exists without that type).
        case answer
        /// NXDOMAIN: the name (or the end of its CNAME chain) does not exist.
        case nameError
        /// TC: the answer did not fit in the datagram; ask again over TCP.
        case truncated
        /// SERVFAIL, REFUSED, FORMERR, NOTIMP or another RCODE: this server could not answer.
        case failure(DNSResponseCode)
    }

    public var outcome: Outcome
    /// The name the records belong to: the query's name, or the end of the CNAME chain that
    /// starts there.
    public var canonicalName: DNSName
    /// A and AAAA answers of `canonicalName`, in answer order (empty unless the query was A or AAAA).
    public var addresses: [IPAddress]
    /// SRV answers of `canonicalName`, in answer order (empty unless the query was SRV).
    public var services: [DNSServiceRecord]
    /// The smallest TTL among the records used (the CNAME chain and the answers), nil when none was used.
    public var minimumTTL: UInt32?
    /// A and AAAA records of the additional section, which servers add for SRV targets.
    public var additionalRecords: [DNSRecord]

    /// Longest CNAME chain followed inside one answer; BIND and Unbound stop at about the same length.
    public static let maximumCanonicalNameChain = 16

    /// Parses `bytes` as the response to `query`.
    ///
    /// Throws when the bytes are not a message, are not this query's response (`isForeign`:
    /// another id, question or opcode, or not a response), or hold a CNAME chain that loops.
    /// A truncated response returns `.truncated` without records.
    public init(answering query: DNSQuery, bytes: [UInt8]) throws(DNSMessageError) {
        let message = try DNSMessage(parsing: bytes)
        guard message.isResponse else { throw .notAResponse }
        guard message.id == query.id else { throw .idMismatch(expected: query.id, received: message.id) }
        guard message.opcode == 0, message.questions.count == 1,
              message.questions[0] == DNSQuestion(name: query.name, type: query.type) else {
            throw .questionMismatch
        }
        canonicalName = query.name
        addresses = []
        services = []
        minimumTTL = nil
        additionalRecords = []
        if message.isTruncated {
            outcome = .truncated
            return
        }
        switch message.responseCode {
        case .noError: outcome = .answer
        case .nameError: outcome = .nameError
        default:
            outcome = .failure(message.responseCode)
            return
        }

        // Follow CNAMEs from the query's name within the answer section (RFC 1034 §3.6.2).
        var seen: Set<DNSName> = [canonicalName]
        var ttl: UInt32?
        chase: while true {
            for record in message.answers where record.name == canonicalName {
                guard case let .canonicalName(target) = record.data else { continue }
                ttl = min(ttl ?? record.ttl, record.ttl)
                guard seen.count <= DNSReply.maximumCanonicalNameChain, seen.insert(target).inserted else {
                    throw .badCanonicalNameChain(name: target)
                }
                canonicalName = target
                continue chase
            }
            break
        }
        for record in message.answers where record.name == canonicalName {
            switch (record.data, query.type) {
            case (.address(.v4), .a), (.address(.v6), .aaaa):
                if case let .address(address) = record.data { addresses.append(address) }
            case let (.service(service), .srv):
                services.append(service)
            default:
                continue
            }
            ttl = min(ttl ?? record.ttl, record.ttl)
        }
        minimumTTL = ttl
        if query.type == .srv {
            additionalRecords = message.additionals.filter {
                if case .address = $0.data { return true }
                return false
            }
        }
    }

    /// The addresses the additional section gives for `target` and their smallest TTL, or nil
    /// when it gives none (the target must then be asked for).
    public func additionalAddresses(of target: DNSName) -> (addresses: [IPAddress], minimumTTL: UInt32)? {
        var addresses: [IPAddress] = []
        var ttl = UInt32.max
        for record in additionalRecords where record.name == target {
            guard case let .address(address) = record.data else { continue }
            addresses.append(address)
            ttl = min(ttl, record.ttl)
        }
        return addresses.isEmpty ? nil : (addresses, ttl)
    }
}
