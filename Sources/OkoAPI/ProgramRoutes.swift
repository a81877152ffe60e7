// Routes for filter programs and their maps (openapi/openapi.yaml, tags `programs` and `maps`).
// Served when the service's catalogue is a `LoadedProgramCatalogue`; otherwise these answer 404.
import Foundation
import OkoDatapath
import OkoHTTP
import OkoLoader
import OkoMaps
import OkoSyntax

extension ManagementAPI {
    static let octetStream = ["application/octet-stream"]

    func registerProgramRoutes() {
        let s = service
        @Sendable func catalogue() throws(APIProblem) -> LoadedProgramCatalogue {
            guard let c = s.programs as? LoadedProgramCatalogue else { throw APIProblem(404, "this switch serves no filter programs") }
            return c
        }
        @Sendable func bridge(_ c: RouteContext) throws(APIProblem) -> Bridge {
            do { return try s.bridge(named: c.parameter("bridge")) } catch { throw APIProblem.from(error) }
        }
        @Sendable func programID(_ c: RouteContext) throws(APIProblem) -> UInt32 {
            guard let id = UInt32(c.parameter("program")), (1...65535).contains(id) else {
                throw APIProblem(400, "program: '\(c.parameter("program"))' is not a program id (1...65535)")
            }
            return id
        }
        @Sendable func loaded(_ c: RouteContext) throws(APIProblem) -> LoadedProgramCatalogue.Entry {
            _ = try bridge(c)
            let id = try programID(c)
            guard let e = try catalogue().entry(bridge: c.parameter("bridge"), id: id) else {
                throw APIProblem(404, "no program \(id) on bridge \(c.parameter("bridge"))")
            }
            return e
        }
        @Sendable func loadedMap(_ c: RouteContext) throws(APIProblem) -> (BTF?, LoadedMap) {
            let e = try loaded(c)
            let name = c.parameter("map")
            if let m = e.program.map(named: name) { return (e.program.object.btf, m) }
            if let index = Int(name), e.program.maps.indices.contains(index) { return (e.program.object.btf, e.program.maps[index]) }
            throw APIProblem(404, "program \(e.id) has no map '\(name)'")
        }
        @Sendable func flag(_ c: RouteContext, _ name: String) throws(APIProblem) -> Bool {
            guard let v = c.query.last(where: { $0.name == name })?.value else { return false }
            switch v {
            case "true": return true
            case "false": return false
            default: throw APIProblem(400, "\(name): expected true or false, got '\(v)'")
            }
        }

        add("GET", "/v1/bridges/{bridge}/programs") { c throws(APIProblem) in
            let b = try bridge(c)
            let entries = try catalogue().entries(bridge: c.parameter("bridge"))
            let rules = b.flows()
            return .json(.object([("programs", .array(entries.map { Self.programJSON($0, rules: rules, disassemble: false) }))]))
        }
        add("PUT", "/v1/bridges/{bridge}/programs/{program}", accepts: Self.octetStream) { c throws(APIProblem) in
            let b = try bridge(c)
            let id = try programID(c)
            let section = c.query.last(where: { $0.name == "section" })?.value
            let created = try catalogue().load(bridgeName: c.parameter("bridge"), bridge: b, id: id, object: c.request.body,
                                               section: section, keepMaps: try flag(c, "keep_maps"))
            let e = try loaded(c)
            return .json(Self.programJSON(e, rules: b.flows(), disassemble: false), status: created ? 201 : 200,
                         headers: [("location", "/v1/bridges/\(c.parameter("bridge"))/programs/\(id)")])
        }
        add("GET", "/v1/bridges/{bridge}/programs/{program}") { c throws(APIProblem) in
            let e = try loaded(c)
            return .json(Self.programJSON(e, rules: try bridge(c).flows(), disassemble: try flag(c, "disassemble")))
        }
        add("DELETE", "/v1/bridges/{bridge}/programs/{program}") { c throws(APIProblem) in
            try catalogue().unload(bridgeName: c.parameter("bridge"), bridge: try bridge(c), id: try programID(c))
            return .noContent
        }

        // maps
        add("GET", "/v1/bridges/{bridge}/programs/{program}/maps") { c throws(APIProblem) in
            let e = try loaded(c)
            return .json(.object([("maps", .array(e.program.maps.map { Self.mapJSON($0, btf: e.program.object.btf) }))]))
        }
        add("GET", "/v1/bridges/{bridge}/programs/{program}/maps/{map}") { c throws(APIProblem) in
            let (btf, m) = try loadedMap(c)
            if let keyText = c.query.last(where: { $0.name == "key" })?.value {
                let key = try Self.hexBytes(keyText, what: "key", size: Int(m.spec.keySize))
                let value: [UInt8]?
                do { value = try m.map.lookup(key: key) } catch { throw APIProblem(400, "key: \(error)") }
                guard let value else { throw APIProblem(404, "map \(m.spec.name) has no key \(keyText)") }
                return .json(.object([("map", Self.mapJSON(m, btf: btf)), ("entries", .array([Self.entryJSON(m, btf: btf, key, value)]))]))
            }
            var limit = 1000
            if let l = c.query.last(where: { $0.name == "limit" })?.value {
                guard let n = Int(l), (1...10000).contains(n) else { throw APIProblem(400, "limit: expected 1...10000, got '\(l)'") }
                limit = n
            }
            var after: [UInt8]?
            if let cursor = c.query.last(where: { $0.name == "cursor" })?.value {
                after = try Self.hexBytes(cursor, what: "cursor", size: Int(m.spec.keySize))
            }
            let page: [BPFMapEntry]
            do { page = try m.map.entries(startingAfter: after, limit: limit + 1) } catch { throw APIProblem(400, "\(error)") }
            var pairs: [(String, JSONValue)] = [
                ("map", Self.mapJSON(m, btf: btf)), ("entries", .array(page.prefix(limit).map { Self.entryJSON(m, btf: btf, $0.key, $0.value) })),
            ]
            if page.count > limit { pairs.append(("next", .string(Self.hex(page[limit - 1].key)))) }
            return .json(.object(pairs))
        }
        add("PUT", "/v1/bridges/{bridge}/programs/{program}/maps/{map}", accepts: Self.json) { c throws(APIProblem) in
            let (btf, m) = try loadedMap(c)
            let body = try parseJSONBody(c.request)
            _ = try objectPairs(body, allowed: ["entries", "flags"], what: "map update")
            var flags = BPFUpdateFlags.any
            if let f = body["flags"] {
                switch f.stringValue {
                case "any": flags = BPFUpdateFlags.any
                case "noexist": flags = BPFUpdateFlags.noExist
                case "exist": flags = BPFUpdateFlags.exist
                default: throw APIProblem(400, "flags: expected 'any', 'noexist' or 'exist'")
                }
            }
            guard case .array(let items) = body["entries"] ?? .null else { throw APIProblem(400, "entries: required, an array") }
            var decoded: [([UInt8], [UInt8])] = []
            for (i, item) in items.enumerated() {
                _ = try objectPairs(item, allowed: ["key", "value", "key_typed", "value_typed"], what: "entries[\(i)]")
                decoded.append((
                    try Self.entryBytes(item, "key", btf: btf, typeID: m.spec.btfKeyTypeID, size: Int(m.spec.keySize), what: "entries[\(i)]"),
                    try Self.entryBytes(item, "value", btf: btf, typeID: m.spec.btfValueTypeID, size: Int(m.spec.valueSize), what: "entries[\(i)]")))
            }
            var updated = 0
            for (i, (k, v)) in decoded.enumerated() {
                do { try m.map.update(key: k, value: v, flags: flags) } catch {
                    throw APIProblem(409, "entries[\(i)]: \(error) (\(updated) entries were updated before it)")
                }
                updated += 1
            }
            return .json(.object([("updated", .integer(Int64(updated)))]))
        }
        add("DELETE", "/v1/bridges/{bridge}/programs/{program}/maps/{map}") { c throws(APIProblem) in
            let (btf, m) = try loadedMap(c)
            if let keyText = c.query.last(where: { $0.name == "key" })?.value {
                let key = try Self.hexBytes(keyText, what: "key", size: Int(m.spec.keySize))
                let present: Bool
                do { present = try m.map.lookup(key: key) != nil } catch { throw APIProblem(400, "key: \(error)") }
                guard present else { return .json(.object([("deleted", .integer(0))])) }
                do { try m.map.delete(key: key) } catch { throw APIProblem(409, "\(error)") }
                return .json(.object([("deleted", .integer(1))]))
            }
            let count = ((try? m.map.entries()) ?? []).count
            m.map.clear()
            return .json(.object([("deleted", .integer(Int64(count)))]))
        }
    }

    static func programJSON(_ e: LoadedProgramCatalogue.Entry, rules: [FlowEntry], disassemble: Bool) -> JSONValue {
        let p = e.program
        let v = p.verifierStatistics
        let st = e.attached.statistics
        var pairs: [(String, JSONValue)] = [
            ("id", .integer(Int64(e.id))), ("section", .string(p.program.sectionName)), ("function", .string(p.name)),
            ("instructions", .integer(Int64(p.instructionCount))), ("jit", .bool(true)),
            ("loaded_at", .string(ISO8601DateFormatter().string(from: e.loadedAt))),
            ("referenced_by", .integer(Int64(rules.filter { $0.match.filterProgram == e.datapathID }.count))),
            ("maps", .array(p.maps.map { mapJSON($0, btf: p.object.btf) })),
            ("verifier", .object([
                ("instructions_processed", .integer(Int64(v.instructionsProcessed))), ("states", .integer(Int64(v.statesStored))),
                ("pruned", .integer(Int64(v.statesPruned))), ("max_stack_depth", .integer(Int64(v.maxStackDepth))),
            ])),
            ("stats", .object([
                ("runs", .unsigned(st.runs)), ("matches", .unsigned(st.matches)), ("total_ns", .unsigned(st.totalNanoseconds)),
            ])),
        ]
        if disassemble {
            pairs.append(("disassembly", .array(p.disassembly.split(separator: "\n").map { .string(String($0)) })))
        }
        return .object(pairs)
    }

    static func mapJSON(_ m: LoadedMap, btf: BTF?) -> JSONValue {
        let count = ((try? m.map.entries()) ?? []).count
        var pairs: [(String, JSONValue)] = [
            ("index", .integer(Int64(m.index))), ("name", .string(m.spec.name)), ("type", .string("\(m.spec.type)")),
            ("type_id", .integer(Int64(m.spec.type.rawValue))), ("key_size", .integer(Int64(m.spec.keySize))),
            ("value_size", .integer(Int64(m.spec.valueSize))), ("max_entries", .integer(Int64(m.spec.maxEntries))),
            ("flags", .integer(Int64(m.spec.flags))), ("entries", .integer(Int64(count))),
            ("memory_bytes", .integer(Int64(m.spec.maxEntries) * Int64(m.spec.keySize + m.spec.valueSize))),
        ]
        if let btf {
            for (field, id) in [("key_type", m.spec.btfKeyTypeID), ("value_type", m.spec.btfValueTypeID)] {
                guard let id, let resolved = try? btf.resolvedID(id), let type = btf.type(resolved), let size = try? btf.size(of: id) else { continue }
                pairs.append((field, .object([
                    ("name", .string(btf.typeName(id))), ("kind", .string(type.kindName)), ("size", .integer(Int64(size))),
                ])))
            }
        }
        return .object(pairs)
    }

    /// Hex `key`/`value`, plus `key_typed`/`value_typed` rendered through the object's BTF when it has types for the map.
    static func entryJSON(_ m: LoadedMap, btf: BTF?, _ key: [UInt8], _ value: [UInt8]) -> JSONValue {
        var pairs: [(String, JSONValue)] = [("key", .string(hex(key))), ("value", .string(hex(value)))]
        if let btf {
            if let id = m.spec.btfKeyTypeID, let typed = try? btf.render(key, as: id) { pairs.append(("key_typed", json(typed))) }
            if let id = m.spec.btfValueTypeID, let typed = try? btf.render(value, as: id) { pairs.append(("value_typed", json(typed))) }
        }
        return .object(pairs)
    }

    /// The bytes of `item[field]` (hex) or `item[field_typed]` (JSON encoded through the map's BTF type).
    static func entryBytes(_ item: JSONValue, _ field: String, btf: BTF?, typeID: UInt32?, size: Int, what: String) throws(APIProblem) -> [UInt8] {
        if let text = item[field]?.stringValue { return try hexBytes(text, what: "\(what).\(field)", size: size) }
        guard let typed = item[field + "_typed"] else {
            throw APIProblem(400, "\(what): \(field) (hex) or \(field)_typed is required")
        }
        guard let btf, let typeID else { throw APIProblem(400, "\(what).\(field)_typed: the map has no BTF type; give \(field) as hex") }
        do { return try btf.encode(btfValue(typed), as: typeID) } catch { throw APIProblem(400, "\(what).\(field)_typed: \(error)") }
    }

    static func btfValue(_ v: JSONValue) -> BTFValue {
        switch v {
        case .null: .unsigned(0)
        case .bool(let x): .bool(x)
        case .integer(let x): .signed(x)
        case .unsigned(let x): .unsigned(x)
        case .double(let x): .float(x)
        case .string(let x): .string(x)
        case .array(let xs): .array(xs.map(btfValue))
        case .object(let pairs): .object(pairs.map { BTFValue.Field(name: $0.0, value: btfValue($0.1)) })
        }
    }

    static func json(_ v: BTFValue) -> JSONValue {
        switch v {
        case .signed(let x): .integer(x)
        case .unsigned(let x): .unsigned(x)
        case .float(let x): x.isFinite ? .double(x) : .null
        case .bool(let x): .bool(x)
        case .string(let x): .string(x)
        case .array(let xs): .array(xs.map(json))
        case .object(let fields): .object(fields.map { ($0.name, json($0.value)) })
        }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    static func hexBytes(_ text: String, what: String, size: Int) throws(APIProblem) -> [UInt8] {
        var t = Substring(text)
        if t.hasPrefix("0x") { t = t.dropFirst(2) }
        let chars = Array(t.utf8)
        guard chars.count % 2 == 0 else { throw APIProblem(400, "\(what): '\(text)' is not hex (odd number of digits)") }
        var bytes: [UInt8] = []
        var i = 0
        while i < chars.count {
            guard let hi = hexDigit(chars[i]), let lo = hexDigit(chars[i + 1]) else { throw APIProblem(400, "\(what): '\(text)' is not hex") }
            bytes.append(hi << 4 | lo)
            i += 2
        }
        guard bytes.count == size else { throw APIProblem(400, "\(what): \(bytes.count) bytes given, the map needs \(size)") }
        return bytes
    }

    private static func hexDigit(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x61...0x66: c - 0x61 + 10
        case 0x41...0x46: c - 0x41 + 10
        default: nil
        }
    }
}
