// FlowSpec in the REST API's JSON form (schema `FlowCreate` / `Flow` in openapi/openapi.yaml).

extension FlowSpec {
    /// Parses a `FlowCreate` object; `path` prefixes error messages (e.g. `flows[3]`).
    public init(json: JSONValue, path: String = "") throws {
        self.init()
        func at(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
        guard case .object(let pairs) = json else { throw FlowSyntaxError("\(path.isEmpty ? "flow" : path): expected an object") }
        let allowed: Set<String> = [
            "table", "priority", "cookie", "idle_timeout", "hard_timeout", "send_flow_removed", "check_overlap",
            "match", "actions", "instructions",
        ]
        for (key, _) in pairs where !allowed.contains(key) {
            throw FlowSyntaxError("\(path.isEmpty ? "flow" : path): unknown key '\(key)'")
        }
        func unsigned(_ key: String, max: UInt64) throws -> UInt64? {
            guard let value = json[key] else { return nil }
            guard let number = value.unsignedValue, number <= max else {
                throw FlowSyntaxError("\(at(key)): expected an integer in 0...\(max)")
            }
            return number
        }
        func bool(_ key: String) throws -> Bool {
            guard let value = json[key] else { return false }
            guard case .bool(let flag) = value else { throw FlowSyntaxError("\(at(key)): expected true or false") }
            return flag
        }
        if let value = try unsigned("table", max: 254) { table = UInt8(value) }
        if let value = try unsigned("priority", max: 65535) { priority = UInt16(value) }
        if let value = try unsigned("cookie", max: .max) { cookie = value }
        if let value = try unsigned("idle_timeout", max: 65535) { idleTimeout = UInt16(value) }
        if let value = try unsigned("hard_timeout", max: 65535) { hardTimeout = UInt16(value) }
        sendFlowRemoved = try bool("send_flow_removed")
        checkOverlap = try bool("check_overlap")
        if let matchValue = json["match"] {
            guard case .object(let fields) = matchValue else { throw FlowSyntaxError("\(at("match")): expected an object") }
            for (name, value) in fields {
                let text: String
                switch value {
                case .string(let s): text = s
                case .integer, .unsigned: text = String(value.unsignedValue ?? 0)
                default: throw FlowSyntaxError("\(at("match")).\(name): expected a number or a string, not \(value.typeName)")
                }
                do {
                    try addMatch(name, text)
                } catch let error as FlowSyntaxError {
                    throw FlowSyntaxError("\(at("match")): \(error.description)")
                }
            }
        }
        do {
            try validatePrerequisites()
        } catch let error as FlowSyntaxError {
            throw FlowSyntaxError("\(at("match")): \(error.description)")
        }
        if json["actions"] != nil && json["instructions"] != nil {
            throw FlowSyntaxError("\(path.isEmpty ? "flow" : path): give either 'actions' or 'instructions', not both")
        }
        if let actions = json["actions"] {
            let list = try Self.actions(actions, path: at("actions"))
            instructions = list.isEmpty ? [] : [.applyActions(list)]
        }
        if let value = json["instructions"] {
            guard case .array(let items) = value else { throw FlowSyntaxError("\(at("instructions")): expected an array") }
            instructions = try items.enumerated().map { index, item in
                try Self.instruction(item, path: "\(at("instructions"))[\(index)]")
            }
        }
    }

    private static func actions(_ value: JSONValue, path: String) throws -> [FlowAction] {
        guard case .array(let items) = value else { throw FlowSyntaxError("\(path): expected an array") }
        let actions = try items.enumerated().map { index, item in try action(item, path: "\(path)[\(index)]") }
        if actions.contains(.drop) && actions.count > 1 {
            throw FlowSyntaxError("\(path): 'drop' cannot be combined with other actions")
        }
        return actions.filter { $0 != .drop }
    }

    private static func instruction(_ value: JSONValue, path: String) throws -> FlowInstruction {
        guard case .object = value, let type = value["type"]?.stringValue else {
            throw FlowSyntaxError("\(path): expected an object with a string 'type'")
        }
        switch type {
        case "apply_actions": return .applyActions(try actions(value["actions"] ?? .array([]), path: "\(path).actions"))
        case "write_actions": return .writeActions(try actions(value["actions"] ?? .array([]), path: "\(path).actions"))
        case "clear_actions": return .clearActions
        case "write_metadata":
            guard let metadata = value["metadata"]?.unsignedValue else { throw FlowSyntaxError("\(path).metadata: expected a 64-bit integer") }
            let mask = value["mask"].map { $0.unsignedValue } ?? UInt64.max
            guard let mask else { throw FlowSyntaxError("\(path).mask: expected a 64-bit integer") }
            return .writeMetadata(value: metadata, mask: mask)
        case "goto_table":
            guard let table = value["table"]?.unsignedValue, table <= 254 else { throw FlowSyntaxError("\(path).table: expected 0...254") }
            return .gotoTable(UInt8(table))
        default:
            throw FlowSyntaxError("\(path).type: unknown instruction '\(type)'")
        }
    }

    private static func action(_ value: JSONValue, path: String) throws -> FlowAction {
        guard case .object = value, let type = value["type"]?.stringValue else {
            throw FlowSyntaxError("\(path): expected an object with a string 'type'")
        }
        func integer(_ key: String, max: UInt64) throws -> UInt64 {
            guard let number = value[key]?.unsignedValue, number <= max else {
                throw FlowSyntaxError("\(path).\(key): expected an integer in 0...\(max)")
            }
            return number
        }
        do {
            switch type {
            case "output":
                guard let port = value["port"] else { throw FlowSyntaxError("\(path).port: missing") }
                let text = port.stringValue ?? port.unsignedValue.map { String($0) } ?? ""
                let maxLength = value["max_len"] == nil ? nil : UInt16(try integer("max_len", max: 65535))
                let parsed = try parseAction(Substring("output:" + text))
                if case .output(let p, let defaultLength) = parsed { return .output(port: p, maxLength: maxLength ?? defaultLength) }
                return parsed
            case "drop": return .drop
            case "group": return .group(UInt32(try integer("group_id", max: 0xffff_ff00)))
            case "set_field":
                guard let field = value["field"]?.stringValue, let raw = value["value"] else {
                    throw FlowSyntaxError("\(path): set_field needs 'field' and 'value'")
                }
                return try setField(field, raw.stringValue ?? raw.unsignedValue.map { String($0) } ?? "")
            case "push_vlan": return .pushVLAN(ethertype: value["ethertype"] == nil ? 0x8100 : UInt16(try integer("ethertype", max: 0xffff)))
            case "pop_vlan": return .popVLAN
            case "dec_ttl": return .decTTL
            case "set_ttl": return .setTTL(UInt8(try integer("ttl", max: 255)))
            case "send_maps":
                guard case .array(let list)? = value["maps"], !list.isEmpty else {
                    throw FlowSyntaxError("\(path).maps: expected a non-empty array")
                }
                let maps = try list.map { item -> String in
                    guard let name = item.stringValue ?? item.unsignedValue.map({ String($0) }) else {
                        throw FlowSyntaxError("\(path).maps: expected map names or indexes")
                    }
                    return try validMapName(name)
                }
                let rate = value["max_per_second"] == nil ? 1 : UInt32(try integer("max_per_second", max: 1_000_000))
                guard rate > 0 else { throw FlowSyntaxError("\(path).max_per_second: must be at least 1") }
                return .sendMaps(maps: maps, maxPerSecond: rate)
            default:
                throw FlowSyntaxError("\(path).type: unknown action '\(type)'")
            }
        } catch let error as FlowSyntaxError where !error.description.hasPrefix(path) {
            throw FlowSyntaxError("\(path): \(error.description)")
        }
    }

    /// The rule as a `FlowCreate`-shaped JSON object (the `Flow` schema adds id and counters around it).
    public var json: JSONValue {
        var pairs: [(String, JSONValue)] = [
            ("table", .integer(Int64(table))),
            ("priority", .integer(Int64(priority))),
            ("cookie", .string("0x" + String(cookie, radix: 16))),
        ]
        if idleTimeout != 0 { pairs.append(("idle_timeout", .integer(Int64(idleTimeout)))) }
        if hardTimeout != 0 { pairs.append(("hard_timeout", .integer(Int64(hardTimeout)))) }
        if sendFlowRemoved { pairs.append(("send_flow_removed", .bool(true))) }
        pairs.append(("match", .object(match.map { field in
            let isPlainInteger = field.value.allSatisfy(\.isNumber) && !field.value.isEmpty
            return (field.name, isPlainInteger ? .unsigned(UInt64(field.value) ?? 0) : .string(field.value))
        })))
        let onlyApply = instructions.count <= 1 && instructions.allSatisfy { if case .applyActions = $0 { true } else { false } }
        if onlyApply {
            pairs.append(("actions", .array(applyActions.map(Self.json))))
        } else {
            pairs.append(("instructions", .array(instructions.map(Self.json))))
        }
        return .object(pairs)
    }

    static func json(_ instruction: FlowInstruction) -> JSONValue {
        switch instruction {
        case .applyActions(let actions): return .object([("type", .string("apply_actions")), ("actions", .array(actions.map(json)))])
        case .writeActions(let actions): return .object([("type", .string("write_actions")), ("actions", .array(actions.map(json)))])
        case .clearActions: return .object([("type", .string("clear_actions"))])
        case .writeMetadata(let value, let mask):
            return .object([("type", .string("write_metadata")), ("metadata", .string("0x" + String(value, radix: 16))),
                            ("mask", .string("0x" + String(mask, radix: 16)))])
        case .gotoTable(let table): return .object([("type", .string("goto_table")), ("table", .integer(Int64(table)))])
        }
    }

    static func json(_ action: FlowAction) -> JSONValue {
        switch action {
        case .output(let port, let maxLength):
            var pairs: [(String, JSONValue)] = [("type", .string("output"))]
            pairs.append(("port", UInt64(port).map { .unsigned($0) } ?? .string(port)))
            if let maxLength { pairs.append(("max_len", .integer(Int64(maxLength)))) }
            return .object(pairs)
        case .drop: return .object([("type", .string("drop"))])
        case .group(let id): return .object([("type", .string("group")), ("group_id", .integer(Int64(id)))])
        case .setField(let field, let value):
            return .object([("type", .string("set_field")), ("field", .string(field)),
                            ("value", UInt64(value).map { .unsigned($0) } ?? .string(value))])
        case .pushVLAN(let ethertype):
            return .object([("type", .string("push_vlan")), ("ethertype", .string("0x" + String(ethertype, radix: 16)))])
        case .popVLAN: return .object([("type", .string("pop_vlan"))])
        case .decTTL: return .object([("type", .string("dec_ttl"))])
        case .setTTL(let ttl): return .object([("type", .string("set_ttl")), ("ttl", .integer(Int64(ttl)))])
        case .sendMaps(let maps, let rate):
            return .object([("type", .string("send_maps")), ("maps", .array(maps.map { .string($0) })),
                            ("max_per_second", .integer(Int64(rate)))])
        }
    }
}
