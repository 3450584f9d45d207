import CSwitchyard
import Glibc
import SwitchyardCore

// Many connections to one backend (issue 13): binding backend sockets to the service's `source`
// addresses before they connect, and counting ephemeral port exhaustion.
//
// Thread ownership: the worker's thread, like the rest of `Worker`. Nothing here allocates or
// locks; warnings are rate-limited by `warnOccasionally`.
extension Worker {
    /// Prepares a new, unconnected backend socket `fd` towards `address`: with no `source`
    /// addresses it does nothing; otherwise it binds `fd` to the next source address of
    /// `address`'s family (each worker rotates through them on its own), with
    /// `IP_BIND_ADDRESS_NO_PORT` so that the kernel chooses the port at connect time, per
    /// destination (ip(7)), rather than reserving one at bind time for every destination.
    ///
    /// Returns true when `fd` may connect. Returns false when it may not (no source address of
    /// that family, or bind failed): then `fd` is closed, the failure counted and logged
    /// (rate-limited), and the client sent on to another backend. Such a failure is local, so
    /// it is not reported to the health checker.
    func bindSourceAddress(_ fd: Int32, connection: Connection, backend: BackendState, address: IPAddress,
                           settings: ServiceSettings) -> Bool {
        let sources = settings.sourceAddresses
        guard !sources.isEmpty, let picker = connection.service else { return true }
        guard let chosen = SourceBinding.next(of: sources, reaching: address, turn: &picker.nextSource) else {
            warnOccasionally("source-family", "backend \(backend.spec.endpoint) is \(address.isIPv6 ? "IPv6" : "IPv4") but source has no \(address.isIPv6 ? "IPv6" : "IPv4") address; skipping it")
            return abandonSourceBind(fd, connection: connection)
        }
        let code = SourceBinding.bind(fd, to: chosen)
        guard code != 0 else { return true }
        if code == EADDRINUSE {
            // Only without IP_BIND_ADDRESS_NO_PORT would bind need a port; count it the same way.
            connection.listener?.figures.sourcePortExhausted &+= 1
        }
        warnOccasionally("source-bind", "cannot bind a backend socket to source \(chosen): \(Errno.describe(code)); trying another backend")
        return abandonSourceBind(fd, connection: connection)
    }

    /// Closes `fd`, gives the backend's slot back (to a queued client, if one waits for it) and
    /// sends the client on, as an unresolved address does.
    private func abandonSourceBind(_ fd: Int32, connection: Connection) -> Bool {
        closeDescriptor(fd)
        releaseBackendSlot(connection)
        connection.backend.id = -1
        connection.listener?.figures.connectFailures &+= 1
        perform(connection.machine.connectFailed(canRetry: true), on: connection)
        return false
    }

    /// Whether a failed backend connect's `result` says no local port was free (`-EADDRNOTAVAIL`:
    /// every ephemeral port towards that backend from that source address is in use). Such a
    /// connect is counted (`switchyard_source_port_exhausted_total`) and logged (rate-limited),
    /// and is not the backend's failure: the caller must not report it to the health checker,
    /// or a shortage of local ports would take every backend down. The caller tries another
    /// backend, each at most once per client, so this never spins.
    func recordSourcePortExhaustion(_ connection: Connection, result: Int32) -> Bool {
        guard result == -EADDRNOTAVAIL else { return false }
        connection.listener?.figures.sourcePortExhausted &+= 1
        warnOccasionally("source-ports", "no free local port to connect to backend \(connection.backend.endpoint?.description ?? "?") (EADDRNOTAVAIL): the ephemeral ports are exhausted (net.ipv4.ip_local_port_range; more source addresses help); trying another backend")
        return true
    }
}

/// Choosing and binding a source address; shared by the workers and the health checker.
enum SourceBinding {
    /// The next of `sources` with `address`'s family, in turn (`turn` advances on every call);
    /// nil when none has that family.
    static func next(of sources: [IPAddress], reaching address: IPAddress, turn: inout Int) -> IPAddress? {
        var matching = 0
        for source in sources where source.isIPv6 == address.isIPv6 { matching += 1 }
        guard matching > 0 else { return nil }
        var wanted = turn % matching
        turn = (turn &+ 1) & Int.max
        for source in sources where source.isIPv6 == address.isIPv6 {
            if wanted == 0 { return source }
            wanted -= 1
        }
        return nil
    }

    /// Binds the unconnected socket `fd` to `source` with `IP_BIND_ADDRESS_NO_PORT`, so that the
    /// port is chosen at connect time, per destination. Returns 0, or the errno of bind(2).
    static func bind(_ fd: Int32, to source: IPAddress) -> Int32 {
        Socket.setOption(fd, Int32(IPPROTO_IP), swy_IP_BIND_ADDRESS_NO_PORT, 1)
        var storage = sockaddr_storage()
        let length = SocketAddress.fill(&storage, address: source, port: 0)
        let result = systemCallResult {
            withUnsafePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { Int(Glibc.bind(fd, $0, length)) }
            }
        }
        return Int32(-result)
    }
}
