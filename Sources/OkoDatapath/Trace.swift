/// How `Bridge.trace` treats filter programs.
public enum TraceProgramPolicy: Sendable {
    /// Run only programs that provide a side-effect-free runner; others count as "no match" and are reported.
    case sideEffectFreeOnly
    /// Run programs' normal entry points: their maps may change (the report says so).
    case allowSideEffects
    /// Use the given results instead of running programs (missing ids count as 0).
    case assume([UInt32: UInt64])
}

/// What a packet would do, computed without touching counters, caches or MAC tables.
public struct TraceReport: Sendable, CustomStringConvertible {
    public struct TableStep: Sendable {
        public var table: UInt8
        /// The matching rule (nil = table miss).
        public var rule: FlowEntry?
    }
    public struct ProgramRun: Sendable, Equatable {
        public var program: UInt32
        public var result: UInt64
        /// False when the program was not run (no side-effect-free runner) or the result was assumed.
        public var executed: Bool
    }
    public var key: FlowKey
    public var malformed: Bool
    public var steps: [TableStep]
    public var programs: [ProgramRun]
    public var actions: [String]
    /// True if a program ran through its normal entry point and so may have changed its maps.
    public var mapSideEffectsPossible: Bool

    public var description: String {
        var lines: [String] = []
        for s in steps {
            if let r = s.rule {
                lines.append("table \(s.table): priority \(r.priority) \(r.match) cookie 0x\(String(r.cookie, radix: 16))")
            } else {
                lines.append("table \(s.table): miss -> drop")
            }
        }
        for p in programs { lines.append("program \(p.program) -> \(p.result)\(p.executed ? "" : " (not run)")") }
        lines.append("actions: " + (actions.isEmpty ? "drop" : actions.joined(separator: ",")))
        if mapSideEffectsPossible { lines.append("note: programs ran and may have modified their maps") }
        return lines.joined(separator: "\n")
    }
}

struct TracePrograms: ProgramEvaluator {
    let programs: [UInt32: FilterProgram]
    let policy: TraceProgramPolicy
    let data: UnsafeMutableRawPointer
    let length: UInt64
    var runs: [TraceReport.ProgramRun] = []
    var sideEffects = false

    mutating func result(of id: UInt32) -> UInt64 {
        if let r = runs.first(where: { $0.program == id }) { return r.result }
        var run = TraceReport.ProgramRun(program: id, result: 0, executed: false)
        switch policy {
        case .assume(let results):
            run.result = results[id] ?? 0
        case .sideEffectFreeOnly:
            if let e = programs[id]?.sideEffectFreeEntry {
                run.result = e(data, length)
                run.executed = true
            }
        case .allowSideEffects:
            if let p = programs[id] {
                run.result = (p.sideEffectFreeEntry ?? p.entry)(data, length)
                run.executed = true
                if p.sideEffectFreeEntry == nil { sideEffects = true }
            }
        }
        runs.append(run)
        return run.result
    }
}

extension Bridge {
    /// Reports the tables and rules `bytes` received on `inPort` would visit, the programs consulted and the
    /// final actions. Counters, caches and MAC learning are untouched.
    public func trace(bytes: [UInt8], inPort: UInt32, programs policy: TraceProgramPolicy = .sideEffectFreeOnly) -> TraceReport {
        let snap = currentSnapshotForControl()
        var copy = bytes + [0]  // never empty, so the pointer is valid
        return copy.withUnsafeMutableBytes { buf -> TraceReport in
            var key = FlowKey()
            let off = PacketParser.parse(buf.baseAddress!, length: bytes.count, inPort: inPort, key: &key)
            var ev = TracePrograms(programs: snap.programs, policy: policy, data: buf.baseAddress!, length: UInt64(bytes.count))
            let d = walk(snap, key: key, programs: &ev)
            let now = monotonicNanoseconds()
            let steps = d.tablesVisited.map { TraceReport.TableStep(table: $0.table, rule: $0.rule.map { Bridge.entry($0, now: now) }) }
            let names = d.actions.map { a -> String in
                switch a {
                case .output(let slot): return "output:\(snap.ports[Int(slot)].number)"
                case .outputInPort: return "output:in_port"
                case .flood: return "flood"
                case .all: return "all"
                case .normal: return "normal"
                case .controller(let m, _, _, _): return "controller:\(m)"
                case .group(let g): return "group:\(g)"
                case .setField(let f, let v): return "set_field:\(f)=0x\(String(v, radix: 16))"
                case .pushVLAN(let t): return "push_vlan:0x\(String(t, radix: 16))"
                case .popVLAN: return "pop_vlan"
                case .decTTL: return "dec_ttl"
                case .sendMaps(let t): return "send_maps(program=\(t.notice.program),maps=\(t.notice.maps))"
                }
            }
            return TraceReport(key: key, malformed: off.malformed, steps: steps, programs: ev.runs, actions: names,
                               mapSideEffectsPossible: ev.sideEffects)
        }
    }
}
