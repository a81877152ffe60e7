// Filter programs and their maps per bridge, for the REST API (`/v1/bridges/{b}/programs`, `/maps`).
//
// Design note
// - `LoadedProgramCatalogue` implements `ProgramCatalogue`: operators name programs by their own id N
//   (the `{program}` path segment, used as `filter_prog=N` in rules); each load turns the ELF bytes into
//   an `OkoLoader.FilterProgram` (verified, JIT-compiled, maps created) and attaches a datapath
//   `FilterProgram` whose entry is the JIT entry and whose owner keeps the loader program (JIT memory,
//   maps) alive. Rules are translated from operator id to datapath id when added.
// - Invariant: every catalogue entry is attached to its bridge under `datapathID`; entries are removed
//   only after the bridge detached them (it refuses while rules use the program).
// - Replacing a program (PUT on a loaded id) swaps it atomically under its datapath id
//   (`Bridge.replaceProgram`): rules keep naming it, each packet runs the old or the new code, and program
//   statistics continue. With `keep_maps` the new program is built on the old one's live map instances (no
//   copy, so no update is lost in between); a map of the new object whose name the old program has must
//   have the same definition, else 409 naming the map; maps new by name start empty. Unloading (DELETE)
//   is still refused while rules use the program.
// - Threads: a Mutex around the dictionary; map reads/writes go through OkoMaps' control-plane API,
//   which is safe while PMDs run the program.
import Foundation
import OkoDatapath
import OkoHTTP
import OkoLoader
import OkoMaps
import OkoVerifier
import Synchronization

public final class LoadedProgramCatalogue: ProgramCatalogue {
    struct Entry: @unchecked Sendable {
        let id: UInt32
        let datapathID: UInt32
        let program: OkoLoader.FilterProgram
        let attached: OkoDatapath.FilterProgram
        let loadedAt: Date
        /// The ELF object and section as loaded, so okod can store and reload the program.
        var objectBytes: [UInt8] = []
        var section: String? = nil
    }

    /// Operator limits checked before a load changes anything (okod's `limits:` section).
    public struct Limits: Sendable {
        public var maxObjectBytes: Int = 16 << 20
        public var maxInstructions: Int = 1_000_000
        public var maxProgramsPerBridge: Int = 1024
        /// Key and value bytes all maps of all programs may hold (max_entries x (key + value)).
        public var maxMapMemoryBytes: UInt64 = 1 << 30
        public init() {}
    }

    /// A loaded program as okod persists it.
    public struct ProgramSource: Sendable, Equatable {
        public var bridge: String
        public var id: UInt32
        public var objectBytes: [UInt8]
        public var section: String?
        public init(bridge: String, id: UInt32, objectBytes: [UInt8], section: String?) {
            self.bridge = bridge
            self.id = id
            self.objectBytes = objectBytes
            self.section = section
        }
    }

    public let limits: Limits

    /// Bridge name -> operator id -> loaded program.
    private let state = Mutex<[String: [UInt32: Entry]]>([:])
    /// Serializes loads and unloads, so two PUTs of one id cannot both detach or both attach.
    private let changes = Mutex<Void>(())

    public init(limits: Limits = Limits()) { self.limits = limits }

    public func programCount(bridge: String) -> Int { state.withLock { $0[bridge]?.count ?? 0 } }

    public func datapathProgramID(bridge: String, program: UInt32) -> UInt32? {
        state.withLock { $0[bridge]?[program]?.datapathID }
    }

    public func operatorProgramID(bridge: String, datapathID: UInt32) -> UInt32? {
        state.withLock { $0[bridge]?.values.first { $0.datapathID == datapathID }?.id }
    }

    func entries(bridge: String) -> [Entry] { state.withLock { ($0[bridge] ?? [:]).values.sorted { $0.id < $1.id } } }
    func entry(bridge: String, id: UInt32) -> Entry? { state.withLock { $0[bridge]?[id] } }

    /// Loads (or replaces) program `id` on `bridge`; true when it was new.
    func load(bridgeName: String, bridge: Bridge, id: UInt32, object: [UInt8], section: String?, keepMaps: Bool) throws(APIProblem) -> Bool {
        try changes.withLock { _ throws(APIProblem) -> Bool in
            try loadLocked(bridgeName: bridgeName, bridge: bridge, id: id, object: object, section: section, keepMaps: keepMaps)
        }
    }

    private func loadLocked(bridgeName: String, bridge: Bridge, id: UInt32, object: [UInt8], section: String?, keepMaps: Bool) throws(APIProblem) -> Bool {
        guard object.count <= limits.maxObjectBytes else {
            throw APIProblem(413, "limits.max_elf_bytes: the object has \(object.count) bytes; the limit is \(limits.maxObjectBytes)")
        }
        let old = entry(bridge: bridgeName, id: id)
        let parsed: BPFObjectFile
        let linked: BPFProgram
        do throws(BPFLoaderError) {
            parsed = try BPFObjectFile(bytes: object)
            linked = try parsed.program(named: section)
        } catch {
            throw APIProblem(400, "malformed object: \(error)")
        }
        var reused: [LoadedMap]?
        if keepMaps, let old {
            for spec in parsed.maps where OkoLoader.FilterProgram.reusable(spec) {
                guard let oldMap = old.program.map(named: spec.name) else { continue }  // new map: starts empty
                if let mismatch = OkoLoader.FilterProgram.mapReuseMismatch(new: spec, old: oldMap.spec) {
                    throw APIProblem(409, "keep_maps: map \(spec.name): \(mismatch)")
                }
            }
            reused = old.program.maps
        }
        let program: OkoLoader.FilterProgram
        do {
            program = try OkoLoader.FilterProgram(object: parsed, program: linked, reusingMaps: reused)
        } catch {
            switch error {
            case .loader(let e): throw APIProblem(400, "malformed object: \(e)")
            case .verification(let e):
                var p = APIProblem(422, "the verifier refused the program: \(e)")
                p.instruction = e.instructionIndex
                throw p
            case .map(let name, let reason): throw APIProblem(422, "map \(name): \(reason)")
            case .engine(let m): throw APIProblem(422, "engine: \(m)")
            }
        }
        try checkLimits(program, bridge: bridgeName, replacing: old == nil ? nil : id)
        let datapathProgram = OkoDatapath.FilterProgram(name: program.name, entry: program.entry, owner: program)
        let datapathID: UInt32
        let attached: OkoDatapath.FilterProgram
        if let old {
            // Atomic swap under the same datapath id: rules using it keep working throughout.
            do { attached = try bridge.replaceProgram(old.datapathID, with: datapathProgram) } catch {
                throw APIProblem(409, "program \(id): \(error)")
            }
            datapathID = old.datapathID
        } else {
            datapathID = bridge.attachProgram(datapathProgram)
            attached = datapathProgram
        }
        state.withLock { $0[bridgeName, default: [:]][id] = Entry(id: id, datapathID: datapathID, program: program, attached: attached, loadedAt: Date(),
                                                                 objectBytes: object, section: section) }
        return old == nil
    }

    /// Map memory a program reserves: what `oko_map_memory_bytes` reports.
    private static func mapMemory(_ program: OkoLoader.FilterProgram) -> UInt64 {
        program.maps.reduce(0) { $0 + UInt64($1.spec.maxEntries) * UInt64($1.spec.keySize + $1.spec.valueSize) }
    }

    private func checkLimits(_ program: OkoLoader.FilterProgram, bridge: String, replacing: UInt32?) throws(APIProblem) {
        guard program.instructionCount <= limits.maxInstructions else {
            throw APIProblem(422, "limits.max_instructions: the program has \(program.instructionCount) instructions; the limit is \(limits.maxInstructions)")
        }
        let all = state.withLock { $0 }
        let onBridge = all[bridge]?.count ?? 0
        if replacing == nil, onBridge >= limits.maxProgramsPerBridge {
            throw APIProblem(422, "limits.max_programs_per_bridge: bridge \(bridge) already has \(onBridge) programs; the limit is \(limits.maxProgramsPerBridge)")
        }
        var used: UInt64 = 0
        for (name, programs) in all {
            for (id, e) in programs where !(name == bridge && id == replacing) { used += Self.mapMemory(e.program) }
        }
        let wanted = Self.mapMemory(program)
        guard used + wanted <= limits.maxMapMemoryBytes else {
            throw APIProblem(422, "limits.max_map_memory_bytes: the program's maps need \(wanted) bytes, \(used) are in use; the limit is \(limits.maxMapMemoryBytes)")
        }
    }

    // MARK: persistence (okod)

    /// Every loaded program with the bytes it was loaded from, by bridge then id.
    public func sources() -> [ProgramSource] {
        let all = state.withLock { $0 }
        return all.keys.sorted().flatMap { bridge in
            all[bridge]!.values.sorted { $0.id < $1.id }.map {
                ProgramSource(bridge: bridge, id: $0.id, objectBytes: $0.objectBytes, section: $0.section)
            }
        }
    }

    /// Loads a stored program again at start-up (same checks as a REST load).
    public func restore(_ source: ProgramSource, bridge: Bridge) throws {
        do {
            _ = try load(bridgeName: source.bridge, bridge: bridge, id: source.id, object: source.objectBytes,
                         section: source.section, keepMaps: false)
        } catch {
            throw SwitchError.unprocessable("program \(source.id) on bridge \(source.bridge): \(error.detail)")
        }
    }

    /// The maps of program `id` on `bridge` by name (nil: no such program), for snapshots.
    public func maps(bridge: String, id: UInt32) -> [(name: String, map: LoadedMap)]? {
        guard let e = entry(bridge: bridge, id: id) else { return nil }
        return e.program.maps.map { ($0.spec.name, $0) }
    }

    func unload(bridgeName: String, bridge: Bridge, id: UInt32) throws(APIProblem) {
        try changes.withLock { _ throws(APIProblem) in try unloadLocked(bridgeName: bridgeName, bridge: bridge, id: id) }
    }

    private func unloadLocked(bridgeName: String, bridge: Bridge, id: UInt32) throws(APIProblem) {
        guard let old = entry(bridge: bridgeName, id: id) else { throw APIProblem(404, "no program \(id) on bridge \(bridgeName)") }
        do { try bridge.detachProgram(old.datapathID) } catch {
            throw APIProblem(409, "program \(id) is used by rules; delete them first")
        }
        _ = state.withLock { $0[bridgeName]?.removeValue(forKey: id) }
    }

    public func forgetBridge(_ name: String) { _ = state.withLock { $0.removeValue(forKey: name) } }

    public func metricFamilies() -> [MetricFamily] {
        var runs = MetricFamily(name: "oko_program_runs_total", help: "Filter program runs.", kind: .counter)
        var matches = MetricFamily(name: "oko_program_matches_total", help: "Filter program runs that returned 1.", kind: .counter)
        var seconds = MetricFamily(name: "oko_program_run_seconds_total", help: "Time spent running a filter program.", kind: .counter)
        var entriesFamily = MetricFamily(name: "oko_map_entries", help: "Entries in a filter program's map.", kind: .gauge)
        var memory = MetricFamily(name: "oko_map_memory_bytes", help: "Key and value bytes a map can hold.", kind: .gauge)
        let all = state.withLock { $0 }
        for bridge in all.keys.sorted() {
            for e in all[bridge]!.values.sorted(by: { $0.id < $1.id }) {
                let st = e.attached.statistics
                let programLabels = [("bridge", bridge), ("program", String(e.id))]
                runs.add(st.runs, programLabels)
                matches.add(st.matches, programLabels)
                seconds.add(Double(st.totalNanoseconds) / 1e9, programLabels)
                for m in e.program.maps {
                    let labels = [("bridge", bridge), ("program", String(e.id)), ("map", m.spec.name)]
                    let count = (try? m.map.entries().count) ?? 0
                    entriesFamily.add(UInt64(count), labels)
                    memory.add(UInt64(m.spec.maxEntries) * UInt64(m.spec.keySize + m.spec.valueSize), labels)
                }
            }
        }
        return [runs, matches, seconds, entriesFamily, memory]
    }
}
