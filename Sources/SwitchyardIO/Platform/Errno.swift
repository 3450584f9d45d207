import CSwitchyard
import Glibc

/// Names for errno values, so that no log line carries a bare number.
public enum Errno {
    /// `ECONNREFUSED (Connection refused)`-style text for a positive errno.
    public static func describe(_ code: Int32) -> String {
        let text = String(cString: strerror(code))
        if let name = name(code) { return "\(text) (\(name))" }
        return "\(text) (errno \(code))"
    }

    /// The symbolic name of the errno values a proxy meets; nil for others.
    public static func name(_ code: Int32) -> String? {
        switch code {
        case EPERM: "EPERM"
        case ENOENT: "ENOENT"
        case EINTR: "EINTR"
        case EBADF: "EBADF"
        case EAGAIN: "EAGAIN"
        case ENOMEM: "ENOMEM"
        case EACCES: "EACCES"
        case EINVAL: "EINVAL"
        case ENFILE: "ENFILE"
        case EMFILE: "EMFILE"
        case EPIPE: "EPIPE"
        case ENOSYS: "ENOSYS"
        case ENOBUFS: "ENOBUFS"
        case EADDRINUSE: "EADDRINUSE"
        case EADDRNOTAVAIL: "EADDRNOTAVAIL"
        case ENETUNREACH: "ENETUNREACH"
        case ECONNABORTED: "ECONNABORTED"
        case ECONNRESET: "ECONNRESET"
        case ENOTCONN: "ENOTCONN"
        case ETIMEDOUT: "ETIMEDOUT"
        case ECONNREFUSED: "ECONNREFUSED"
        case EHOSTUNREACH: "EHOSTUNREACH"
        case EALREADY: "EALREADY"
        case EINPROGRESS: "EINPROGRESS"
        case ECANCELED: "ECANCELED"
        case ETIME: "ETIME"
        default: nil
        }
    }

    /// Text for a completion result, which is `-errno` when negative.
    public static func describeResult(_ result: Int32) -> String {
        result < 0 ? describe(-result) : "\(result)"
    }
}

/// strerror(3) text for `code`, e.g. `Connection refused`.
func errnoText(_ code: Int32) -> String {
    String(cString: strerror(code))
}

/// strerror(3) text starting lower case, for the middle of a sentence (`connection refused`).
func errnoPhrase(_ code: Int32) -> String {
    let text = errnoText(code)
    guard let first = text.first else { return text }
    return first.lowercased() + text.dropFirst()
}
