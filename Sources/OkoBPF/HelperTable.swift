// The numbered helper functions a program may `call`.
//
// Design note
// - A table maps helper ids (the `imm` of `call` with src 0) to C-convention functions, so the
//   interpreter calls through a plain function pointer and the JIT emits a direct `call` to the same
//   address. Helpers get r1..r5 and return r0; any state they need (maps, the packet) reaches them
//   through those arguments, never through captured Swift context.
// - Tables are built once at load time and are immutable afterwards; engines copy the function
//   pointers they need, so a table may be shared by any number of threads.

public struct BPFHelperTable: @unchecked Sendable {
    /// Dense storage indexed by helper id; nil where no helper is registered.
    public private(set) var functions: [BPFHelperFunction?]
    public private(set) var names: [String?]
    /// ubpf's "unwind" extension: when a call to this helper returns 0, the program stops at once
    /// with r0 = 0. nil when no helper has that role.
    public var unwindHelperID: Int32?

    public init() {
        functions = []
        names = []
    }

    /// Registers `function` under `id`, replacing any earlier registration.
    public mutating func register(id: Int, name: String, _ function: BPFHelperFunction) {
        precondition(id >= 0 && id < 1 << 16, "helper id out of range")
        if id >= functions.count {
            functions += Array(repeating: nil, count: id + 1 - functions.count)
            names += Array(repeating: nil, count: id + 1 - names.count)
        }
        functions[id] = function
        names[id] = name
    }

    /// The helper registered under `id`, or nil.
    @inlinable
    public func function(id: Int32) -> BPFHelperFunction? {
        let index = Int(id)
        guard index >= 0 && index < functions.count else { return nil }
        return functions[index]
    }

    public func name(id: Int32) -> String? {
        let index = Int(id)
        guard index >= 0 && index < names.count else { return nil }
        return names[index]
    }
}
