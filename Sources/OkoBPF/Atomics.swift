// Atomic read-modify-write on program memory for the interpreter's `lock` instructions.
// Program memory may be shared between threads (map values), so these are real atomics
// (sequentially consistent, as the kernel's BPF atomics are fully ordered). Callers guarantee
// the pointer is checked and naturally aligned.

import Synchronization

enum BPFAtomics {
    /// Applies `variant` to the 64-bit word at `pointer`; returns the previous value.
    static func apply64(_ variant: AtomicVariant, _ pointer: UnsafeMutableRawPointer, operand: UInt64, expected: UInt64) -> UInt64 {
        let atomic = pointer.assumingMemoryBound(to: Atomic<UInt64>.self)
        switch variant {
        case .add, .fetchAdd: return atomic.pointee.wrappingAdd(operand, ordering: .sequentiallyConsistent).oldValue
        case .or, .fetchOr: return atomic.pointee.bitwiseOr(operand, ordering: .sequentiallyConsistent).oldValue
        case .and, .fetchAnd: return atomic.pointee.bitwiseAnd(operand, ordering: .sequentiallyConsistent).oldValue
        case .xor, .fetchXor: return atomic.pointee.bitwiseXor(operand, ordering: .sequentiallyConsistent).oldValue
        case .xchg: return atomic.pointee.exchange(operand, ordering: .sequentiallyConsistent)
        case .cmpxchg:
            return atomic.pointee.compareExchange(expected: expected, desired: operand, ordering: .sequentiallyConsistent).original
        }
    }

    /// 32-bit form of `apply64`.
    static func apply32(_ variant: AtomicVariant, _ pointer: UnsafeMutableRawPointer, operand: UInt32, expected: UInt32) -> UInt32 {
        let atomic = pointer.assumingMemoryBound(to: Atomic<UInt32>.self)
        switch variant {
        case .add, .fetchAdd: return atomic.pointee.wrappingAdd(operand, ordering: .sequentiallyConsistent).oldValue
        case .or, .fetchOr: return atomic.pointee.bitwiseOr(operand, ordering: .sequentiallyConsistent).oldValue
        case .and, .fetchAnd: return atomic.pointee.bitwiseAnd(operand, ordering: .sequentiallyConsistent).oldValue
        case .xor, .fetchXor: return atomic.pointee.bitwiseXor(operand, ordering: .sequentiallyConsistent).oldValue
        case .xchg: return atomic.pointee.exchange(operand, ordering: .sequentiallyConsistent)
        case .cmpxchg:
            return atomic.pointee.compareExchange(expected: expected, desired: operand, ordering: .sequentiallyConsistent).original
        }
    }
}
