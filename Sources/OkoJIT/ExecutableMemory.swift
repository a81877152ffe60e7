// W^X memory for generated code: mapped read-write, filled, then switched to read-execute.
// The pages are never writable and executable at the same time.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An mmap'ed region holding finished machine code; unmapped when released.
final class ExecutableMemory: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let mappedLength: Int

    /// Copies `code` into fresh pages and makes them read+execute.
    init(code: [UInt8]) throws(BPFJITError) {
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        let length = max(pageSize, (code.count + pageSize - 1) / pageSize * pageSize)
        guard let mapping = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              mapping != MAP_FAILED
        else {
            throw BPFJITError(instructionIndex: nil, reason: .memory("mmap of \(length) bytes failed (errno \(errno))"))
        }
        code.withUnsafeBytes { bytes in
            mapping.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        }
        guard mprotect(mapping, length, PROT_READ | PROT_EXEC) == 0 else {
            let error = errno
            munmap(mapping, length)
            throw BPFJITError(instructionIndex: nil, reason: .memory("mprotect to read+execute failed (errno \(error))"))
        }
        base = mapping
        mappedLength = length
    }

    deinit {
        munmap(base, mappedLength)
    }
}
