import CSwitchyard
import Glibc

/// The whole text of the file at `path`, or nil if there is no such file.
/// Throws for any other failure (permissions, not UTF-8, a directory).
func readTextFile(_ path: String, limit: Int = 16 << 20) throws(SystemCallError) -> String? {
    guard let bytes = try readFileBytes(path, atMost: limit, chunkSize: 65536) else { return nil }
    if bytes.count > limit { throw SystemCallError(call: "read \(path): larger than \(limit >> 20) MiB", errno: EFBIG) }
    guard let text = String(validating: bytes, as: UTF8.self) else {
        throw SystemCallError(call: "read \(path): not UTF-8 text", errno: EILSEQ)
    }
    return text
}

/// The bytes of the file at `path`, read `chunkSize` at a time until its end or until more than
/// `limit` have come (then the result is longer than `limit`); nil if there is no such file.
/// Throws for any other failure to open or read it.
func readFileBytes(_ path: String, atMost limit: Int, chunkSize: Int = 4096) throws(SystemCallError) -> [UInt8]? {
    let fd = Descriptor.open(path, O_RDONLY)
    if fd < 0 {
        if fd == -ENOENT { return nil }
        throw SystemCallError(call: "open \(path)", errno: -fd)
    }
    defer { closeDescriptor(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: chunkSize)
    while bytes.count <= limit {
        let count = chunk.withUnsafeMutableBytes { Descriptor.read(fd, into: $0) }
        if count < 0 { throw SystemCallError(call: "read \(path)", errno: Int32(-count)) }
        if count == 0 { break }
        bytes += chunk[0..<count]
    }
    return bytes
}

/// Replaces the file at `path` with `contents` so that a reader (or a crash) sees either the old
/// file or the new one whole: write a temporary file beside it, fsync, rename(2), fsync the folder.
/// The result has mode 0600.
func writeFileAtomically(_ path: String, contents: String) throws(SystemCallError) {
    let temporary = "\(path).tmp.\(getpid())"
    let fd = try createPrivateFile(temporary)
    var bytes = Array(contents.utf8)
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
        if written < 0 {
            let code = swy_errno()
            if code == EINTR { continue }
            closeDescriptor(fd)
            unlink(temporary)
            throw SystemCallError(call: "write \(temporary)", errno: code)
        }
        offset += written
    }
    if fsync(fd) != 0 {
        let code = swy_errno()
        closeDescriptor(fd)
        unlink(temporary)
        throw SystemCallError(call: "fsync \(temporary)", errno: code)
    }
    closeDescriptor(fd)
    guard rename(temporary, path) == 0 else {
        let code = swy_errno()
        unlink(temporary)
        throw SystemCallError(call: "rename \(temporary) to \(path)", errno: code)
    }
    let folder = path.lastIndex(of: "/").map { String(path[..<$0]) }.flatMap { $0.isEmpty ? "/" : $0 } ?? "."
    let directory = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if directory >= 0 {
        _ = fsync(directory)
        closeDescriptor(directory)
    }
}

/// Creates `path` as a new file of mode 0600, open for writing, and returns its descriptor.
///
/// O_EXCL|O_NOFOLLOW: a file or symlink already there is never opened, so whoever can write in
/// the folder cannot make the caller write through a symlink of theirs or keep a file that
/// others can read. Such a leftover (a crash's temporary file, or a planted link) is unlinked
/// (which removes a link, never its target) and the create tried once more; if something is
/// there again, the call fails with EEXIST rather than race on.
func createPrivateFile(_ path: String) throws(SystemCallError) -> Int32 {
    let flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC
    var fd = open(path, flags, 0o600)
    if fd < 0 && swy_errno() == EEXIST {
        guard unlink(path) == 0 || swy_errno() == ENOENT else {
            throw SystemCallError(call: "unlink stale \(path)", errno: swy_errno())
        }
        fd = open(path, flags, 0o600)
    }
    guard fd >= 0 else { throw SystemCallError(call: "open \(path)", errno: swy_errno()) }
    // The umask may have taken bits away, never added any; 0600 exactly, whatever it is.
    _ = fchmod(fd, 0o600)
    return fd
}
