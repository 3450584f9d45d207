/// What one address family's question (A or AAAA) of a name gave.
public enum DNSFamilyAnswer: Hashable, Sendable {
    /// The server answered: NOERROR (with or without records) or NXDOMAIN.
    case answered(addresses: [IPAddress], minimumTTL: UInt32?, nameError: Bool)
    /// No server gave an answer (timeout, SERVFAIL, REFUSED, a malformed reply...).
    case failed(DNSResolutionFailure)

    public init(_ reply: DNSReply) {
        self = .answered(addresses: reply.addresses, minimumTTL: reply.minimumTTL, nameError: reply.outcome == .nameError)
    }
}

/// The addresses of one name, from the answers to its A and AAAA questions.
///
/// A family whose question failed discards nothing the other family gave: a server that
/// answers A and REFUSES (or fails) AAAA still gave its A records, and the reverse. Only when
/// every family asked failed is the lookup a failure, the first family's reason given.
public enum DNSAddressLookup: Hashable, Sendable {
    /// `addresses` in answer order (the families in the order given), the smallest TTL of the
    /// families that answered, whether one answered NXDOMAIN, and the families that failed
    /// (their addresses are unknown this time) with why.
    case found(addresses: [IPAddress], minimumTTL: UInt32?, nameError: Bool, failedFamilies: [DNSRecordType: DNSResolutionFailure])
    case failed(DNSResolutionFailure)

    /// Combines the families' answers; an empty list finds nothing.
    public init(_ answers: [(type: DNSRecordType, answer: DNSFamilyAnswer)]) {
        var addresses: [IPAddress] = []
        var ttl: UInt32?
        var nameError = false
        var answered = false
        var failures: [DNSRecordType: DNSResolutionFailure] = [:]
        var firstFailure: DNSResolutionFailure?
        for (type, answer) in answers {
            switch answer {
            case let .answered(found, minimumTTL, isNameError):
                answered = true
                addresses += found
                if let minimumTTL { ttl = min(ttl ?? minimumTTL, minimumTTL) }
                nameError = nameError || isNameError
            case let .failed(failure):
                failures[type] = failure
                firstFailure = firstFailure ?? failure
            }
        }
        if !answered, let firstFailure {
            self = .failed(firstFailure)
        } else {
            self = .found(addresses: addresses, minimumTTL: ttl, nameError: nameError, failedFamilies: failures)
        }
    }
}
