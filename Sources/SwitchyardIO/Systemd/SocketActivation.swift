import CSwitchyard
import Glibc
import Logging
import SwitchyardCore

/// Listening sockets passed by systemd (socket activation, sd_listen_fds(3)) without libsystemd.
///
/// How activated sockets map onto the workers, who otherwise each bind their own
/// `SO_REUSEPORT` socket: systemd passes one socket per `ListenStream=` line. With as many
/// sockets for an address as workers (the line repeated, with `ReusePort=yes`), each worker
/// takes one and the kernel spreads connections over them by hash. With fewer, the workers
/// share them through duplicates (`WorkerDescriptorPlan` with `canBindFresh: false`, then
/// `WorkerDescriptors.make`): every ring accepts on the same socket, each connection goes to
/// one of them, but the same ring is woken first every time and takes nearly all
/// (`SharedListenerTests`), so log `ActivationMatch.sharingWarnings`. Fresh `SO_REUSEPORT`
/// sockets next to systemd's are not made: a reuseport group only admits sockets of the same
/// user (systemd binds as root; a `DynamicUser=` service's bind fails with EADDRINUSE), and
/// connections queued on sockets of our own would be lost at each restart, which socket
/// activation exists to prevent.
///
/// Workers must never shutdown(2) an activated socket: that stops the socket itself, for
/// systemd and for every later start. Stop accepting by cancelling the accept
/// (`IORING_OP_ASYNC_CANCEL`) and closing the descriptor.
public enum SocketActivation {
    /// Reads `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES`, unsets them (children must not
    /// inherit them), and inspects each passed descriptor (`inspect`). Returns nothing when
    /// the process was not socket-activated or the variables name another process (logged).
    ///
    /// Call on the main thread before any other thread starts: getenv(3) and unsetenv(3) are
    /// not safe while another thread reads the environment.
    public static func takeListeners(logger: Logger) throws(ConfigError) -> [ActivatedListener] {
        func variable(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
        let fds = variable("LISTEN_FDS")
        let pid = variable("LISTEN_PID")
        let names = variable("LISTEN_FDNAMES")
        for name in ListenEnvironment.variableNames { unsetenv(name) }
        switch try ListenEnvironment.parse(listenFDs: fds, listenPID: pid, listenFDNames: names, processID: Int(getpid())) {
        case .none:
            return []
        case let .otherProcess(listenPID):
            logger.notice("ignoring LISTEN_FDS=\(fds ?? ""): LISTEN_PID=\(listenPID) is another process (this one is \(getpid()))")
            return []
        case let .passed(environment):
            return try inspect(environment.descriptors, names: environment.names)
        }
    }

    /// Checks that every descriptor is a listening TCP socket (fstat(2), then getsockopt(2)
    /// `SO_DOMAIN`, `SO_TYPE`, `SO_PROTOCOL`, `SO_ACCEPTCONN`) and reads its address
    /// (getsockname(2)); marks each close-on-exec and non-blocking, as Switchyard's own
    /// listeners are. `names` has one entry per descriptor (nil for none).
    ///
    /// Throws one line listing every descriptor that is not fit, and then closes all of them:
    /// the process is not going to serve on a partial set.
    public static func inspect(_ descriptors: [Int32], names: [String?]) throws(ConfigError) -> [ActivatedListener] {
        var found: [ActivatedListener] = []
        var problems: [String] = []
        for (index, fd) in descriptors.enumerated() {
            let name = index < names.count ? names[index] : nil
            let label = "fd \(fd)" + (name.map { " (name '\($0)')" } ?? "")
            switch describe(fd) {
            case let .failure(problem):
                problems.append("\(label) \(problem)")
            case let .success(listener):
                var listener = listener
                listener.name = name
                found.append(listener)
            }
        }
        guard problems.isEmpty else {
            for fd in descriptors { closeDescriptor(fd) }
            throw ConfigError("systemd passed descriptors Switchyard cannot listen on: \(problems.joined(separator: "; "))")
        }
        for listener in found {
            Descriptor.setCloseOnExecAndNonBlocking(listener.descriptor)
        }
        return found
    }

    private enum Inspection {
        case success(ActivatedListener)
        case failure(String)
    }

    private static func describe(_ fd: Int32) -> Inspection {
        var status = stat()
        let inspected = systemCallResult { Int(fstat(fd, &status)) }
        guard inspected == 0 else {
            let code = Int32(-inspected)
            return .failure(code == EBADF ? "is not open" : "cannot be inspected: \(SystemCallError(call: "fstat", errno: code))")
        }
        guard status.st_mode & S_IFMT == S_IFSOCK else { return .failure("is not a socket") }
        func option(_ name: Int32) -> Int32? { Socket.option(fd, SOL_SOCKET, name) }
        guard let domain = option(SO_DOMAIN), let type = option(SO_TYPE), let proto = option(SO_PROTOCOL),
              let accepting = option(SO_ACCEPTCONN) else {
            return .failure("cannot be inspected: \(SystemCallError(call: "getsockopt", errno: swy_errno()))")
        }
        switch domain {
        case AF_INET, AF_INET6: break
        case AF_UNIX: return .failure("is a UNIX socket, not TCP (ListenStream= must be an IP address and port)")
        default: return .failure("is a socket of address family \(domain), not TCP")
        }
        guard type == Int32(SOCK_STREAM.rawValue) else {
            return .failure(type == Int32(SOCK_DGRAM.rawValue) ? "is a datagram socket (ListenDatagram=); Switchyard needs ListenStream=" : "is not a stream socket (type \(type))")
        }
        guard proto == Int32(IPPROTO_TCP) else { return .failure("is not a TCP socket (protocol \(proto))") }
        guard accepting == 1 else { return .failure("is a TCP socket that is not listening") }
        var storage = sockaddr_storage()
        let named = Socket.address(of: fd, peer: false, into: &storage)
        guard named == 0, let address = SocketAddress.ipAddress(of: storage) else {
            return .failure("has no IP address: \(SystemCallError(call: "getsockname", errno: swy_errno()))")
        }
        let endpoint = Endpoint(address: address, port: SocketAddress.port(of: storage))
        return .success(ActivatedListener(descriptor: fd, name: nil, bound: endpoint, reusePort: option(SO_REUSEPORT) == 1))
    }
}
