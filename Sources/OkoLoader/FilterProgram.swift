// FilterProgram: an ELF object turned into a verified, runnable filter with its own maps.
//
// Design note
// - `FilterProgram(objectBytes:program:)` does everything once: parse the object (`BPFObjectFile`),
//   create one OkoMaps map per `MapSpec` (global data maps are single-entry arrays holding the
//   section's initial bytes; `.rodata` is read-only for the program), verify the linked program
//   with OkoVerifier against those map descriptions and Oko's helper prototypes, then rewrite every
//   pseudo-map LDDW into a plain 64-bit immediate (src=1: the map's `handle`; src=2: the address
//   of the global data value + offset) and compile it with OkoJIT. An interpreter over the same
//   rewritten code is built too, with every map's memory regions registered so its bounds checks
//   accept map value pointers. Nothing runs unverified: a refusal throws
//   `FilterProgramError.verification` carrying the instruction index and its disassembly.
// - Lifetime: the program owns its maps (strong references) and its JIT code. Map handles and
//   value addresses are baked into the code as raw pointers, so the maps must outlive the code:
//   both live exactly as long as this object. Callers holding `entry` (the raw C function for the
//   datapath) must keep the FilterProgram alive while they may call it.
// - Threads: immutable after init. `run` may be called from any number of threads at once (each
//   call has its own BPF stack; maps synchronise themselves, see OkoMaps). Packet threads that want
//   value pointers to stay valid across concurrent deletes register with `MapEpoch` and bracket
//   their batches with `enterCritical`/`exitCritical` (or `quiescent`). The control plane may
//   read, update and delete map entries at any time through `maps`.
// - Programs cannot write the packet (the verifier refuses it), so `run` takes a read-only pointer.
// - Map reuse (`reusingMaps:`): a program replacing another can be built on the old program's live map
//   instances, so state (and updates made by packets still running the old code) carries over without a
//   copy. Maps are paired by name and each pair must have the same definition (`mapReuseMismatch`); a map
//   the old program lacks is created empty, and read-only global data (`.rodata`) is the new object's own
//   constants, always created fresh. The shared maps then live as
//   long as the longest-lived program using them.

public import OkoBPF
public import OkoJIT
public import OkoMaps
public import OkoVerifier

/// Why an object could not become a runnable filter.
public enum FilterProgramError: Error, CustomStringConvertible, Sendable {
    /// The object file is unreadable or malformed (exit code 5 in okoctl).
    case loader(BPFLoaderError)
    /// The verifier refused the program.
    case verification(VerificationError)
    /// A map could not be created with the object's definition.
    case map(name: String, reason: String)
    /// The JIT or the interpreter refused the (already verified) code: an engine limitation.
    case engine(String)

    public var description: String {
        switch self {
        case .loader(let error): "\(error)"
        case .verification(let error): "\(error)"
        case .map(let name, let reason): "map \(name): \(reason)"
        case .engine(let message): "engine: \(message)"
        }
    }
}

/// Which engine `run(packet:length:engine:)` uses.
public enum FilterEngine: String, Sendable, CaseIterable {
    case jit
    case interpreter
}

/// One map of a loaded program: its declaration and the live OkoMaps instance.
public struct LoadedMap: @unchecked Sendable {
    /// Index in the object's map table (the LDDW immediate).
    public let index: Int
    public let spec: MapSpec
    public let map: BPFMap
}

public final class FilterProgram: @unchecked Sendable {
    public let program: BPFProgram
    public let object: BPFObjectFile
    /// Every map of the object, in map-table order.
    public let maps: [LoadedMap]
    public let verifierStatistics: VerifierStatistics
    /// The linked instructions as verified (pseudo-map LDDWs not yet rewritten).
    public let instructions: [BPFInstruction]
    /// The code the engines run (map references rewritten to addresses).
    public let executableInstructions: [BPFInstruction]
    public let jit: BPFJITProgram
    public let interpreter: BPFInterpreter
    public let helpers: BPFHelperTable

    /// The JIT entry point: call it directly from the datapath while `self` is alive.
    public var entry: BPFJITProgram.Entry { jit.entry }
    public var instructionCount: Int { instructions.count }
    public var name: String { program.name }

    /// Loads, verifies and compiles `program` (entry function or section name; nil: the only one).
    /// With `reusingMaps`, maps are taken from there by name (see the design note).
    public convenience init(objectBytes: [UInt8], program name: String? = nil, limits: VerifierLimits = VerifierLimits(),
                            reusingMaps existing: [LoadedMap]? = nil) throws(FilterProgramError) {
        let object: BPFObjectFile
        let program: BPFProgram
        do throws(BPFLoaderError) {
            object = try BPFObjectFile(bytes: objectBytes)
            program = try object.program(named: name)
        } catch {
            throw .loader(error)
        }
        try self.init(object: object, program: program, limits: limits, reusingMaps: existing)
    }

    public init(object: BPFObjectFile, program: BPFProgram, limits: VerifierLimits = VerifierLimits(),
                reusingMaps existing: [LoadedMap]? = nil) throws(FilterProgramError) {
        self.object = object
        self.program = program
        self.instructions = program.instructions

        // Maps first: the verifier needs their shapes, the rewrite their addresses.
        var loaded: [LoadedMap] = []
        for (index, spec) in object.maps.enumerated() {
            if let existing, Self.reusable(spec), let old = existing.first(where: { $0.spec.name == spec.name }) {
                if let mismatch = Self.mapReuseMismatch(new: spec, old: old.spec) { throw .map(name: spec.name, reason: mismatch) }
                loaded.append(LoadedMap(index: index, spec: spec, map: old.map))
            } else {
                loaded.append(LoadedMap(index: index, spec: spec, map: try Self.makeMap(spec)))
            }
        }
        maps = loaded

        do throws(VerificationError) {
            verifierStatistics = try BPFVerifier.verify(
                instructions: program.instructions, maps: object.maps.map(Self.verifierDescription), helpers: OkoHelpers.prototypes,
                limits: limits)
        } catch {
            throw .verification(error)
        }

        let rewritten = try Self.rewriteMapReferences(program.instructions, maps: loaded)
        executableInstructions = rewritten
        helpers = OkoHelpers.table
        do throws(BPFJITError) {
            jit = try BPFJITProgram(instructions: rewritten, helpers: helpers)
        } catch {
            throw .engine("JIT: \(error)")
        }
        let regions = loaded.flatMap { map in
            map.map.regions.map { region in
                BPFMemoryRegion(
                    start: UnsafeRawPointer(bitPattern: region.start)!, length: region.length,
                    writable: region.writable && !map.spec.isReadOnlyForProgram)
            }
        }
        do throws(BPFLoadError) {
            interpreter = try BPFInterpreter(instructions: rewritten, helpers: helpers, regions: regions)
        } catch {
            throw .engine("interpreter: \(error)")
        }
    }

    /// Runs the JIT-compiled program on `packet[0..<length]` and returns r0.
    @inlinable @inline(__always)
    public func run(packet: UnsafeRawPointer, length: Int) -> UInt64 {
        jit.entry(UnsafeMutableRawPointer(mutating: packet), UInt64(length))
    }

    /// Runs on the chosen engine. The interpreter re-checks every access and throws on a violation
    /// (which would be a verifier bug).
    public func run(packet: UnsafeRawPointer, length: Int, engine: FilterEngine) throws(BPFRuntimeError) -> UInt64 {
        switch engine {
        case .jit: return run(packet: packet, length: length)
        case .interpreter: return try interpreter.run(memory: UnsafeMutableRawPointer(mutating: packet), length: length)
        }
    }

    /// Convenience for tests and tools: runs on a byte array.
    public func run(packet: [UInt8], engine: FilterEngine = .jit) throws(BPFRuntimeError) -> UInt64 {
        var result: Result<UInt64, BPFRuntimeError> = .success(0)
        packet.withUnsafeBytes { buffer in
            // A zero-length array may have no base address; give the program a valid pointer anyway.
            var empty: UInt8 = 0
            withUnsafeBytes(of: &empty) { fallback in
                let base = buffer.baseAddress ?? fallback.baseAddress!
                do throws(BPFRuntimeError) {
                    result = .success(try run(packet: base, length: buffer.count, engine: engine))
                } catch {
                    result = .failure(error)
                }
            }
        }
        return try result.get()
    }

    public func map(named name: String) -> LoadedMap? { maps.first { $0.spec.name == name } }

    /// The program's disassembly (as verified, map references symbolic).
    public var disassembly: String {
        (try? BPFDisassembler.disassemble(instructions)) ?? "<undecodable>"
    }

    // MARK: building

    /// Whether a map of this definition carries state across a replacement (read-only global data does not).
    public static func reusable(_ spec: MapSpec) -> Bool { !(spec.isGlobalData && spec.isReadOnlyForProgram) }

    /// Why `new` cannot reuse a live map made for `old` (nil: it can): names the first differing property.
    public static func mapReuseMismatch(new: MapSpec, old: MapSpec) -> String? {
        if new.name != old.name { return "name '\(new.name)' differs from '\(old.name)'" }
        if new.type != old.type { return "type \(new.type) differs from the old map's \(old.type)" }
        if new.keySize != old.keySize { return "key size \(new.keySize) differs from the old map's \(old.keySize)" }
        if new.valueSize != old.valueSize { return "value size \(new.valueSize) differs from the old map's \(old.valueSize)" }
        if new.maxEntries != old.maxEntries { return "max entries \(new.maxEntries) differ from the old map's \(old.maxEntries)" }
        if new.flags != old.flags { return "flags 0x\(String(new.flags, radix: 16)) differ from the old map's 0x\(String(old.flags, radix: 16))" }
        if new.extra != old.extra { return "map_extra \(new.extra) differs from the old map's \(old.extra)" }
        return nil
    }

    static func verifierDescription(_ spec: MapSpec) -> VerifierMapDescription {
        VerifierMapDescription(
            name: spec.name, type: spec.type.rawValue, keySize: Int(spec.keySize), valueSize: Int(spec.valueSize),
            maxEntries: Int(spec.maxEntries), readOnly: spec.isReadOnlyForProgram)
    }

    static func makeMap(_ spec: MapSpec) throws(FilterProgramError) -> BPFMap {
        guard let type = OkoMaps.BPFMapType(rawValue: spec.type.rawValue) else {
            throw .map(name: spec.name, reason: "type \(spec.type) is not supported by the map engine")
        }
        let definition = BPFMapDefinition(
            type: type, keySize: Int(spec.keySize), valueSize: Int(spec.valueSize), maxEntries: Int(spec.maxEntries),
            flags: spec.flags, extra: spec.extra, name: spec.name)
        do throws(BPFMapError) {
            let map = try BPFMap.create(definition)
            if let initial = spec.initialValue {
                try map.update(key: [0, 0, 0, 0], value: initial)
            }
            return map
        } catch {
            throw .map(name: spec.name, reason: "\(error)")
        }
    }

    /// LDDW src=1 -> the map's handle; src=2 -> address of the single value + offset.
    static func rewriteMapReferences(_ instructions: [BPFInstruction], maps: [LoadedMap]) throws(FilterProgramError) -> [BPFInstruction] {
        var code = instructions
        var index = 0
        while index < code.count {
            let instruction = code[index]
            guard instruction.opcode == BPFOpcode.lddw, index + 1 < code.count else {
                index += 1
                continue
            }
            let source = instruction.src
            if source == 1 || source == 2 {
                let mapIndex = Int(instruction.immediate)
                guard maps.indices.contains(mapIndex) else { throw .engine("instruction \(index): unknown map \(mapIndex)") }
                let map = maps[mapIndex].map
                var value: UInt64
                if source == 1 {
                    value = map.handle
                } else {
                    var zero: UInt32 = 0
                    let address = withUnsafeMutableBytes(of: &zero) { key in
                        BPFMapHelpers.mapLookupElem(map.handle, UInt64(UInt(bitPattern: key.baseAddress!)), 0, 0, 0)
                    }
                    guard address != 0 else { throw .engine("global data map \(maps[mapIndex].spec.name) has no value") }
                    value = address &+ UInt64(UInt32(bitPattern: code[index + 1].immediate))
                }
                code[index] = BPFInstruction(
                    opcode: BPFOpcode.lddw, dst: instruction.dst, src: 0, offset: 0, immediate: Int32(bitPattern: UInt32(truncatingIfNeeded: value)))
                code[index + 1] = BPFInstruction(
                    opcode: 0, dst: 0, src: 0, offset: 0, immediate: Int32(bitPattern: UInt32(truncatingIfNeeded: value >> 32)))
            }
            index += 2
        }
        return code
    }
}

extension MapSpec {
    /// `.rodata` and maps declared with BPF_F_RDONLY_PROG.
    public var isReadOnlyForProgram: Bool { flags & MapSpec.flagReadOnlyProgram != 0 }
}
