// Packet-thread registry: epoch-based reclamation for map elements and the per-CPU slot index.
//
// Design note
// - Every packet thread registers once (`MapEpoch.registerCurrentThread(index:)`) and gets a slot
//   0..<maxThreads; the slot number is also its CPU index for per-CPU maps. The index sits in a
//   pthread thread-specific value so helpers (which only get r1..r5) can find it with one
//   `pthread_getspecific`. Unregistered threads count as CPU 0 and are not protected by epochs.
// - Each slot holds the global epoch the thread observed when it entered its current critical
//   section, or 0 while it holds no map pointers. The datapath brackets each packet batch with
//   `enterCritical()` / `exitCritical()` (or calls `quiescent()` between batches): value pointers a
//   program got from a lookup stay valid until the thread leaves the critical section.
// - Writers unlink elements first and retire them in batches; sealing a batch bumps the global
//   epoch to N. The batch's elements are reused only once every slot is 0 or >= N, i.e. every
//   thread that might have seen them has passed a quiescent point.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

public enum MapEpoch {
    /// Most packet threads (and per-CPU slots) a process can register.
    public static let maxThreads = 64

    /// One cache line per slot: [0] observed epoch (0 = quiescent), [8] claimed flag.
    /// Line 0 of the block holds the global epoch; slots start at line 1.
    private static let slotStride = 64

    nonisolated(unsafe) private static let block: UnsafeMutableRawPointer = {
        let size = slotStride * (maxThreads + 1)
        let memory = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        memory.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        memory.assumingMemoryBound(to: Atomic<UInt64>.self).pointee.store(1, ordering: .relaxed)
        return memory
    }()

    private static let threadKey: pthread_key_t = {
        var key = pthread_key_t()
        // A thread that exits without unregistering still gives its slot back.
        pthread_key_create(&key) { value in
            guard let value else { return }
            MapEpoch.releaseSlot(Int(bitPattern: value) - 1)
        }
        return key
    }()

    @inline(__always)
    private static var globalEpoch: AtomicU64Pointer { block.assumingMemoryBound(to: Atomic<UInt64>.self) }

    @inline(__always)
    private static func epochWord(_ slot: Int) -> AtomicU64Pointer {
        (block + slotStride * (slot + 1)).assumingMemoryBound(to: Atomic<UInt64>.self)
    }

    @inline(__always)
    private static func claimWord(_ slot: Int) -> AtomicU64Pointer {
        (block + slotStride * (slot + 1) + 8).assumingMemoryBound(to: Atomic<UInt64>.self)
    }

    /// Claims a slot for the calling thread. `index` picks a specific slot (a PMD thread passes its
    /// queue/CPU number so per-CPU values line up); nil takes the lowest free one.
    /// Returns the slot index, which is the thread's CPU index for per-CPU maps.
    @discardableResult
    public static func registerCurrentThread(index: Int? = nil) throws(BPFMapError) -> Int {
        if let current = currentThreadIndex { return current }
        let candidates = index.map { [$0] } ?? Array(0..<maxThreads)
        for slot in candidates {
            guard slot >= 0 && slot < maxThreads else { throw .threadSlotUnavailable(slot) }
            if claimWord(slot).pointee.compareExchange(expected: 0, desired: 1, ordering: .acquiringAndReleasing).exchanged {
                epochWord(slot).pointee.store(0, ordering: .releasing)
                pthread_setspecific(threadKey, UnsafeRawPointer(bitPattern: slot + 1))
                return slot
            }
        }
        throw .threadSlotUnavailable(index ?? -1)
    }

    /// Releases the calling thread's slot (done automatically when the thread exits).
    public static func unregisterCurrentThread() {
        guard let slot = currentThreadIndex else { return }
        pthread_setspecific(threadKey, nil)
        releaseSlot(slot)
    }

    private static func releaseSlot(_ slot: Int) {
        epochWord(slot).pointee.store(0, ordering: .releasing)
        claimWord(slot).pointee.store(0, ordering: .releasing)
    }

    /// The calling thread's slot, or nil when it is not a registered packet thread.
    @inline(__always)
    public static var currentThreadIndex: Int? {
        let value = Int(bitPattern: pthread_getspecific(threadKey))
        return value == 0 ? nil : value - 1
    }

    /// CPU index for per-CPU maps: the registered slot, or 0 for unregistered threads.
    @inline(__always)
    public static var currentCPU: Int {
        let value = Int(bitPattern: pthread_getspecific(threadKey))
        return value == 0 ? 0 : value - 1
    }

    /// Starts a critical section: map value pointers obtained from now on stay valid until
    /// `exitCritical()`. No-op on unregistered threads.
    @inline(__always)
    public static func enterCritical() {
        guard let slot = currentThreadIndex else { return }
        enterCritical(slot: slot)
    }

    /// Ends the critical section: the thread holds no map value pointers any more.
    @inline(__always)
    public static func exitCritical() {
        guard let slot = currentThreadIndex else { return }
        exitCritical(slot: slot)
    }

    /// `exitCritical()` + `enterCritical()` in one store: call between packet batches.
    @inline(__always)
    public static func quiescent() {
        guard let slot = currentThreadIndex else { return }
        enterCritical(slot: slot)
    }

    /// Slot-explicit variants for a datapath that keeps its slot number at hand (no TLS read).
    @inline(__always)
    public static func enterCritical(slot: Int) {
        epochWord(slot).pointee.store(globalEpoch.pointee.load(ordering: .relaxed), ordering: .relaxed)
        // Our announcement must be visible before we read any map memory (store -> load order).
        atomicMemoryFence(ordering: .sequentiallyConsistent)
    }

    @inline(__always)
    public static func exitCritical(slot: Int) {
        epochWord(slot).pointee.store(0, ordering: .releasing)
    }

    /// Advances the global epoch; elements unlinked before this call may be reused once
    /// `oldestActiveEpoch() >= ` the returned value.
    static func advance() -> UInt64 {
        globalEpoch.pointee.wrappingAdd(1, ordering: .sequentiallyConsistent).newValue
    }

    /// Smallest epoch any thread inside a critical section observed (UInt64.max if none is inside).
    static func oldestActiveEpoch() -> UInt64 {
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        var oldest = UInt64.max
        for slot in 0..<maxThreads {
            let observed = epochWord(slot).pointee.load(ordering: .acquiring)
            if observed != 0 && observed < oldest { oldest = observed }
        }
        return oldest
    }

    /// Waits (up to `timeoutNanoseconds`) until every thread that is inside a critical section now
    /// has left it or passed a quiescent point. Control-plane use only: a packet thread calling
    /// this inside its own critical section would wait for itself.
    @discardableResult
    public static func synchronize(timeoutNanoseconds: UInt64 = 1_000_000_000) -> Bool {
        let target = advance()
        var waited: UInt64 = 0
        while oldestActiveEpoch() < target {
            if waited >= timeoutNanoseconds { return false }
            usleep(50)
            waited += 50_000
        }
        return true
    }
}
