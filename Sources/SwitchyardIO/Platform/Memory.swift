import CSwitchyard
import Glibc

/// Anonymous memory mapped for the kernel to read and write (provided buffers and their ring),
/// through the funnel's conventions.
enum Memory {
    /// `bytes` of private, zeroed, lazily backed memory (`MAP_NORESERVE`); throws naming `what`.
    static func map(_ bytes: Int, for what: String) throws(SystemCallError) -> UnsafeMutableRawPointer {
        let flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE
        guard let memory = mmap(nil, bytes, PROT_READ | PROT_WRITE, flags, -1, 0), memory != MAP_FAILED else {
            throw SystemCallError(call: "mmap(\(what))", errno: swy_errno())
        }
        return memory
    }

    /// Unmaps what `map` returned; munmap(2) fails only for a range that was never mapped.
    static func unmap(_ memory: UnsafeMutableRawPointer, _ bytes: Int) {
        _ = munmap(memory, bytes)
    }

    /// Gives the pages of `bytes` at `address` back to the kernel; they read as zeroes when next
    /// touched (`MADV_DONTNEED`). A failure only leaves them resident.
    static func release(_ address: UnsafeMutableRawPointer, _ bytes: Int) {
        _ = madvise(address, bytes, MADV_DONTNEED)
    }
}
