import CSwitchyard
import Glibc

/// The whole text of the file at `path`, or nil if there is no such file.
/// Throws for any other failure (permissions, not UTF-8, a directory).
func readTextFile(_ path: String, limit: Int = 16 << 20) throws(SystemCallError) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 {
        let code = swy_errno()
        if code == ENOENT { return nil }
        throw SystemCallError(call: "open \(path)", errno: code)
    }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 {
            let code = swy_errno()
            if code == EINTR { continue }
            throw SystemCallError(call: "read \(path)", errno: code)
        }
        if count == 0 { break }
        bytes += chunk[0..<count]
        if bytes.count > limit { throw SystemCallError(call: "read \(path): larger than \(limit >> 20) MiB", errno: EFBIG) }
    }
    guard let text = String(validating: bytes, as: UTF8.self) else {
        throw SystemCallError(call: "read \(path): not UTF-8 text", errno: EILSEQ)
    }
    return text
}

/// Replaces the file at `path` with `contents` so that a reader (or a crash) sees either the old
/// file or the new one whole: write a temporary file beside it, fsync, rename(2), fsync the folder.
func writeFileAtomically(_ path: String, contents: String) throws(SystemCallError) {
    let temporary = "\(path).tmp.\(getpid())"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw SystemCallError(call: "open \(temporary)", errno: swy_errno()) }
    var bytes = Array(contents.utf8)
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
        if written < 0 {
            let code = swy_errno()
            if code == EINTR { continue }
            close(fd)
            unlink(temporary)
            throw SystemCallError(call: "write \(temporary)", errno: code)
        }
        offset += written
    }
    if fsync(fd) != 0 {
        let code = swy_errno()
        close(fd)
        unlink(temporary)
        throw SystemCallError(call: "fsync \(temporary)", errno: code)
    }
    close(fd)
    guard rename(temporary, path) == 0 else {
        let code = swy_errno()
        unlink(temporary)
        throw SystemCallError(call: "rename \(temporary) to \(path)", errno: code)
    }
    let folder = path.lastIndex(of: "/").map { String(path[..<$0]) }.flatMap { $0.isEmpty ? "/" : $0 } ?? "."
    let directory = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if directory >= 0 {
        _ = fsync(directory)
        close(directory)
    }
}
