import CSwitchyard
import Glibc
import SwitchyardCore

/// Turns a `WorkerDescriptorPlan` into descriptors: one array per listener entry, one
/// descriptor per worker (`ListenerEntry.descriptors`).
public enum WorkerDescriptors {
    /// `received` are the sockets of one listen address, bound to `address`; they stay owned by
    /// the caller until this returns, and then belong to the entries that name them. A received
    /// socket the plan does not name (there is none: every plan uses all) would stay the
    /// caller's. On failure every duplicate and fresh socket made here is closed and the
    /// received ones are left open.
    public static func make(_ plan: [[WorkerDescriptorSource]], received: [Int32], address: Endpoint) throws(SystemCallError) -> [[Int32]] {
        var made: [Int32] = []
        var entries: [[Int32]] = []
        do throws(SystemCallError) {
            for sources in plan {
                var descriptors: [Int32] = []
                for source in sources {
                    switch source {
                    case let .received(index):
                        descriptors.append(received[index])
                    case let .duplicate(index):
                        let copy = try duplicate(received[index])
                        made.append(copy)
                        descriptors.append(copy)
                    case .fresh:
                        let (fd, _) = try Socket.listen(on: address)
                        made.append(fd)
                        descriptors.append(fd)
                    }
                }
                entries.append(descriptors)
            }
        } catch {
            for fd in made { closeDescriptor(fd) }
            throw error
        }
        return entries
    }

    /// A new descriptor, close-on-exec, for the socket behind `fd` (F_DUPFD_CLOEXEC).
    public static func duplicate(_ fd: Int32) throws(SystemCallError) -> Int32 {
        try systemCall("fcntl(F_DUPFD_CLOEXEC) of fd \(fd)") { fcntl(fd, F_DUPFD_CLOEXEC, 3) }
    }
}
