import Glibc
import SwitchyardCore

extension ResolvConf {
    /// The most bytes of the file read; a resolv.conf is a few hundred.
    static let maximumFileSize = 64 << 10

    /// Reads and parses `path` (default `/etc/resolv.conf`). A missing file is an empty one
    /// (glibc then asks the local machine); any other failure to read it throws a `ConfigError`
    /// naming the path and the errno text.
    public static func load(path: String = "/etc/resolv.conf") throws(ConfigError) -> ResolvConf {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let code = Glibc.errno
            if code == ENOENT { return ResolvConf(parsing: "") }
            throw ConfigError("cannot read \(path): \(errnoPhrase(code))")
        }
        defer { closeDescriptor(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < maximumFileSize {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                let code = Glibc.errno
                if code == EINTR { continue }
                throw ConfigError("cannot read \(path): \(errnoPhrase(code))")
            }
            if count == 0 { break }
            bytes += chunk[0..<count]
        }
        return ResolvConf(parsing: String(decoding: bytes.prefix(maximumFileSize), as: UTF8.self))
    }
}
