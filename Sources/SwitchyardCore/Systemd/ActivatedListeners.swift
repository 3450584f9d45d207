/// A listening TCP socket systemd passed to the process, as `SocketActivation` found it.
public struct ActivatedListener: Equatable, Sendable, CustomStringConvertible {
    /// The descriptor (3 for the first).
    public var descriptor: Int32
    /// Its `LISTEN_FDNAMES` name, if any.
    public var name: String?
    /// The address it is bound to (getsockname(2)), an IP literal and a real port.
    public var bound: Endpoint
    /// Whether the socket has `SO_REUSEPORT` (`ReusePort=yes` in the socket unit).
    public var reusePort: Bool

    public init(descriptor: Int32, name: String?, bound: Endpoint, reusePort: Bool = false) {
        self.descriptor = descriptor
        self.name = name
        self.bound = bound
        self.reusePort = reusePort
    }

    public var description: String {
        "fd \(descriptor)" + (name.map { " (name '\($0)', \(bound))" } ?? " (\(bound))")
    }
}

/// Which activated socket serves which configured listener.
///
/// Rules, in this order:
/// 1. **By name.** A socket whose `LISTEN_FDNAMES` name is a service's name (the socket unit's
///    `FileDescriptorName=SERVICE`) belongs to that service, and must be bound to one of the
///    service's listen addresses: the same IP and port, or the same IP where the configuration
///    says port 0. A name cannot say more than the service, because systemd forbids colons in
///    names (so no `SERVICE:ADDRESS`); a service with several addresses is matched address by
///    address.
/// 2. **By address.** Any other socket (no name, or the socket unit's default name such as
///    `switchyard.socket`) goes to the listener configured with exactly its IP and port. A
///    listener configured with port 0 is only matched by name.
///
/// Configured addresses must be resolved (`Endpoint.address` set) to be matched; `configured`
/// keeps each as the caller gave it. Several sockets may serve one listener: systemd creates one
/// per `ListenStream=` line, so repeating the address with `ReusePort=yes` gives each worker a
/// socket of its own. Every socket left over and every listener without a socket is reported.
public struct ActivationMatch: Equatable, Sendable {
    public struct ConfiguredListener: Equatable, Sendable {
        public var service: String
        public var endpoint: Endpoint

        public init(service: String, endpoint: Endpoint) {
            self.service = service
            self.endpoint = endpoint
        }
    }

    public struct Assignment: Equatable, Sendable {
        public var listener: ConfiguredListener
        /// One socket, or several bound to the same address with `SO_REUSEPORT` (the socket
        /// unit repeats `ListenStream=` with `ReusePort=yes`), in descriptor order.
        public var sockets: [ActivatedListener]
    }

    /// In the order of the configured listeners.
    public private(set) var assignments: [Assignment] = []
    /// Sockets no listener took, in descriptor order.
    public private(set) var unused: [ActivatedListener] = []
    /// Listeners no socket was passed for, in configuration order.
    public private(set) var unactivated: [ConfiguredListener] = []
    /// Sockets named for a service that does not listen on their address.
    public private(set) var conflicts: [String] = []

    public init(sockets: [ActivatedListener], listeners: [ConfiguredListener]) {
        var taken: [Int: [ActivatedListener]] = [:]  // listener index -> sockets
        let services = Set(listeners.map(\.service))
        var unplaced: [ActivatedListener] = []

        for socket in sockets.sorted(by: { $0.descriptor < $1.descriptor }) {
            if let name = socket.name, services.contains(name) {
                let own = listeners.indices.filter { listeners[$0].service == name }
                let exact = own.first { Self.sameAddress(listeners[$0].endpoint, socket.bound) }
                // A port-0 listener takes the first socket on its IP; later ones on the same
                // port join it (a reuseport group), others go to the next port-0 listener.
                let anyPort = own.first { index in
                    guard listeners[index].endpoint.port == 0, Self.sameIP(listeners[index].endpoint, socket.bound) else { return false }
                    return taken[index].map { $0[0].bound.port == socket.bound.port } ?? true
                }
                if let index = exact ?? anyPort {
                    taken[index, default: []].append(socket)
                } else {
                    let addresses = own.map { listeners[$0].endpoint.description }.joined(separator: ", ")
                    conflicts.append("systemd passed \(socket), named for service \(name), which does not listen on \(socket.bound) (it listens on \(addresses))")
                }
            } else if let index = listeners.indices.first(where: {
                listeners[$0].endpoint.port != 0 && Self.sameAddress(listeners[$0].endpoint, socket.bound)
            }) {
                taken[index, default: []].append(socket)
            } else {
                unplaced.append(socket)
            }
        }
        for (index, listener) in listeners.enumerated() {
            if let sockets = taken[index] {
                assignments.append(Assignment(listener: listener, sockets: sockets))
            } else {
                unactivated.append(listener)
            }
        }
        unused = unplaced
    }

    /// A warning for each listener whose `workers` workers would share fewer sockets than
    /// there are workers. Sharing is correct, but the kernel wakes the same ring's accept
    /// first every time, so one worker takes nearly every connection (measured in
    /// `SharedListenerTests`); one `SO_REUSEPORT` socket per worker spreads them.
    public func sharingWarnings(workers: Int) -> [String] {
        assignments.compactMap { assignment in
            let count = assignment.sockets.count
            guard count < workers else { return nil }
            let bound = assignment.sockets[0].bound
            let sockets = count == 1 ? "1 socket" : "\(count) sockets"
            return "service \(assignment.listener.service): systemd passed \(sockets) for \(bound) to \(workers) workers, which share them; one worker per socket takes nearly every connection. To spread them, repeat ListenStream=\(bound) \(workers) times in the socket unit, with ReusePort=yes"
        }
    }

    /// Whether nothing is left over and nothing conflicts (listeners without a socket aside).
    public var socketsAllPlaced: Bool { unused.isEmpty && conflicts.isEmpty }

    /// One line per problem: conflicts, sockets left over and, unless `allowUnactivated`,
    /// listeners systemd passed no socket for. Empty when the match is complete.
    public func problems(allowUnactivated: Bool = false) -> [String] {
        var lines = conflicts
        for socket in unused {
            var line = "systemd passed \(socket), but no service listens on \(socket.bound)"
            if let name = socket.name { line += " and no service is named '\(name)'" }
            line += "; remove it from the socket unit or add it to a service's listen addresses"
            if let hint = Self.dualStackHint(socket, unactivated) { line += hint }
            lines.append(line)
        }
        if !allowUnactivated {
            for listener in unactivated {
                lines.append("service \(listener.service) listens on \(listener.endpoint), but systemd passed no socket for it; add ListenStream=\(listener.endpoint) to the socket unit")
            }
        }
        return lines
    }

    /// `ListenStream=80` binds `[::]:80` for both families, which is not `0.0.0.0:80`.
    private static func dualStackHint(_ socket: ActivatedListener, _ unactivated: [ConfiguredListener]) -> String? {
        guard socket.bound.address == .v6([UInt8](repeating: 0, count: 16)),
              let missing = unactivated.first(where: { $0.endpoint.port == socket.bound.port && $0.endpoint.address == .v4(0, 0, 0, 0) })
        else { return nil }
        return " (ListenStream=\(socket.bound.port) binds \(socket.bound); to match \(missing.endpoint) write ListenStream=\(missing.endpoint))"
    }

    static func sameIP(_ configured: Endpoint, _ bound: Endpoint) -> Bool {
        guard let address = configured.address else { return false }
        return address == bound.address
    }

    static func sameAddress(_ configured: Endpoint, _ bound: Endpoint) -> Bool {
        configured.port == bound.port && sameIP(configured, bound)
    }
}
