import Glibc
import SwitchyardCore

extension ResolvConf {
    /// The most bytes of the file read; a resolv.conf is a few hundred.
    static let maximumFileSize = 64 << 10

    /// Reads and parses `path` (default `/etc/resolv.conf`). A missing file is an empty one
    /// (glibc then asks the local machine); any other failure to read it throws a `ConfigError`
    /// naming the path and the errno text.
    public static func load(path: String = "/etc/resolv.conf") throws(ConfigError) -> ResolvConf {
        let bytes: [UInt8]
        do {
            bytes = try readFileBytes(path, atMost: maximumFileSize - 1) ?? []
        } catch {
            throw ConfigError("cannot read \(path): \(errnoPhrase(error.errno))")
        }
        return ResolvConf(parsing: String(decoding: bytes.prefix(maximumFileSize), as: UTF8.self))
    }
}
