import CSwitchyard
import Glibc

/// Whether this kernel can take TLS records over from user space (kTLS, the `tls` upper layer
/// protocol of `TCP_ULP`, `CONFIG_TLS`). Switchyard does not use it yet: README's "Kernel TLS"
/// says what it would change and why it is not written without a kernel to test it on. This
/// probe is what such code would start from, and `show stats` reports it (`kernel_tls`).
enum KernelTLS {
    /// `available`, or `unavailable: WHY`.
    static let status: String = probe()

    /// Asks for the `tls` ULP on a fresh, unconnected TCP socket: a kernel without the module
    /// answers `ENOENT`; one with it `ENOTCONN` (the ULP exists but needs an established
    /// connection). Nothing is connected, sent or left open.
    static func probe() -> String {
        let fd = Socket.openStream(family: AF_INET)
        guard fd >= 0 else { return "unavailable: cannot open a socket to probe (\(Errno.describe(-fd)))" }
        defer { closeDescriptor(fd) }
        let name: StaticString = "tls"
        let result = Int32(systemCallResult {
            Int(setsockopt(fd, Int32(IPPROTO_TCP), TCP_ULP, name.utf8Start, socklen_t(name.utf8CodeUnitCount)))
        })
        switch -result {
        case 0, ENOTCONN: return "available"
        case ENOENT: return "unavailable: the kernel has no TLS module (CONFIG_TLS)"
        default: return "unavailable: TCP_ULP tls gave \(Errno.describe(-result))"
        }
    }
}
