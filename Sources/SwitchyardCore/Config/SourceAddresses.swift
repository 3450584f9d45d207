/// `source: ADDR[,ADDR...]` (issue 13): the local addresses a service's backend connections are
/// made from, used in rotation.
///
/// One source address reaches one backend `HOST:PORT` through at most as many connections as
/// there are ephemeral ports (`net.ipv4.ip_local_port_range`, about 28,000 by default), since
/// every connection needs its own (source address, source port) towards that backend. Each added
/// source address adds as many again. The I/O layer binds with `IP_BIND_ADDRESS_NO_PORT`, so
/// the kernel picks the port at connect time, per destination.
public enum SourceAddresses {
    /// Parses `ADDR[,ADDR...]`: IPv4 or IPv6 literals (IPv6 with or without brackets), no port,
    /// none twice. Throws a `ConfigError` naming the first bad item.
    public static func parse(_ text: String) throws(ConfigError) -> [IPAddress] {
        var addresses: [IPAddress] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            addresses.append(try parseOne(String(item)))
        }
        try checkDistinct(addresses)
        return addresses
    }

    /// Parses one source address.
    public static func parseOne(_ text: String) throws(ConfigError) -> IPAddress {
        var host = Substring(text)
        while host.first == " " { host = host.dropFirst() }
        while host.last == " " { host = host.dropLast() }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        guard !host.isEmpty else { throw ConfigError("an address is empty (write ADDR[,ADDR...])") }
        guard let address = IPAddress(host) else {
            throw ConfigError("'\(text)' is not an IP address (a source is an address of this host, without a port)")
        }
        return address
    }

    /// Throws when an address is listed twice.
    public static func checkDistinct(_ addresses: [IPAddress]) throws(ConfigError) {
        var seen = Set<IPAddress>()
        for address in addresses where !seen.insert(address).inserted {
            throw ConfigError("\(address) is listed twice")
        }
    }

    /// Whether `sources` can reach `address`: no sources at all (the kernel chooses), or at
    /// least one of the same family.
    public static func canReach(_ address: IPAddress, from sources: [IPAddress]) -> Bool {
        sources.isEmpty || sources.contains { $0.isIPv6 == address.isIPv6 }
    }
}

extension ServiceSettings {
    /// `source: ADDR[,ADDR...]`, or a list of addresses in the file.
    static let sourceKeys: [ServiceKey] = [
        .list("source", \.sourceAddresses, item: SourceAddresses.parseOne, text: SourceAddresses.parse),
    ]
}

extension ServiceConfiguration {
    /// `source` rules: every backend given as an IP literal must have a source of its family
    /// (backends found by name are checked when they are connected to, and skipped with a
    /// message when none fits).
    func validateSource(base: [ConfigPathComponent]) throws(ConfigIssue) {
        let source = settings.sourceAddresses
        guard !source.isEmpty else { return }
        do {
            try SourceAddresses.checkDistinct(source)
        } catch {
            throw ConfigIssue(path: base + [.key("source")], "source: \(error.message)")
        }
        for (index, backend) in backends.enumerated() {
            guard let address = backend.endpoint.address, !SourceAddresses.canReach(address, from: source) else { continue }
            let family = address.isIPv6 ? "IPv6" : "IPv4"
            throw ConfigIssue(path: base + [.key("backends"), .index(index)],
                              "backend \(backend.endpoint) is \(family) but source lists only \(family == "IPv6" ? "IPv4" : "IPv6") addresses (\(source.map(\.description).joined(separator: ","))): add an \(family) source address")
        }
    }
}
