// The resources of openapi/openapi.yaml: health, metrics, bridges, ports, flows, trace.
import Foundation
import OkoDatapath
import OkoHTTP
import OkoSyntax

extension ManagementAPI {
    static let json = ["application/json"]
    static let jsonOrText = ["application/json", "text/plain"]
    static let jsonHeaders = HTTPHeaders([("content-type", "application/json")])
    static let metricsHeaders = HTTPHeaders([("content-type", PrometheusExposition.contentType)])

    func registerRoutes() {
        let s = service
        registerProgramRoutes()
        add("GET", "/healthz", open: true) { [self] _ in
            .json(.object([("status", .string("ok")), ("version", .string(version)), ("uptime_seconds", .double(uptimeSeconds))]))
        }
        add("GET", "/readyz", open: true) { _ throws(APIProblem) in
            guard s.ready.load(ordering: .relaxed) else { throw APIProblem(503, "the datapath is not ready yet") }
            return .json(.object([("status", .string("ok"))]))
        }
        add("GET", "/metrics") { [self] _ in
            HTTPResponse(status: 200, headers: Self.metricsHeaders, body: renderMetrics())
        }

        // bridges
        add("GET", "/v1/bridges") { _ in
            .json(.object([("bridges", .array(s.bridgeNames().compactMap { try? Self.bridgeJSON(s.summary($0)) }))]))
        }
        add("POST", "/v1/bridges", accepts: Self.json) { c throws(APIProblem) in
            let body = try parseJSONBody(c.request)
            _ = try objectPairs(body, allowed: ["name", "datapath_id", "fail_mode"], what: "bridge")
            guard let name = body["name"]?.stringValue else { throw APIProblem(400, "name: required, a string") }
            var dpid: UInt64?
            if let v = body["datapath_id"] {
                guard let n = v.unsignedValue else { throw APIProblem(400, "datapath_id: expected a 64-bit integer ('0x...' or decimal)") }
                dpid = n
            }
            var failMode = "secure"
            if let v = body["fail_mode"] {
                guard let text = v.stringValue, ["secure", "standalone"].contains(text) else {
                    throw APIProblem(400, "fail_mode: expected 'secure' or 'standalone'")
                }
                failMode = text
            }
            do {
                try s.createBridge(name: name, datapathID: dpid, failMode: failMode)
                return .json(Self.bridgeJSON(try s.summary(name)), status: 201, headers: [("location", "/v1/bridges/\(name)")])
            } catch { throw APIProblem.from(error) }
        }
        add("GET", "/v1/bridges/{bridge}") { c throws(APIProblem) in
            do { return .json(Self.bridgeJSON(try s.summary(c.parameter("bridge")))) } catch { throw APIProblem.from(error) }
        }
        add("DELETE", "/v1/bridges/{bridge}") { c throws(APIProblem) in
            do { try s.deleteBridge(name: c.parameter("bridge")) } catch { throw APIProblem.from(error) }
            return .noContent
        }

        // ports
        add("GET", "/v1/bridges/{bridge}/ports") { c throws(APIProblem) in
            do { return .json(.object([("ports", .array(try s.ports(bridge: c.parameter("bridge")).map(Self.portJSON)))])) } catch {
                throw APIProblem.from(error)
            }
        }
        add("POST", "/v1/bridges/{bridge}/ports", accepts: Self.json) { c throws(APIProblem) in
            let body = try parseJSONBody(c.request)
            _ = try objectPairs(body, allowed: ["devargs", "ofport", "name"], what: "port")
            guard let devargs = body["devargs"]?.stringValue, !devargs.isEmpty, devargs.utf8.count <= 1024 else {
                throw APIProblem(400, "devargs: required, a non-empty string of at most 1024 bytes")
            }
            var number: UInt32?
            if let v = body["ofport"] {
                guard let n = v.unsignedValue, n >= 1, n < UInt64(OFPort.max) else { throw APIProblem(400, "ofport: expected an integer in 1...4294967039") }
                number = UInt32(n)
            }
            var name: String?
            if let v = body["name"] {
                guard let n = v.stringValue, n.utf8.count <= 64 else { throw APIProblem(400, "name: expected a string of at most 64 bytes") }
                name = n
            }
            let bridge = c.parameter("bridge")
            do {
                let port = try s.addPort(bridge: bridge, devargs: devargs, number: number, portName: name)
                return .json(Self.portJSON(port), status: 201,
                             headers: [("location", "/v1/bridges/\(bridge)/ports/\(port.statistics.number)")])
            } catch { throw APIProblem.from(error) }
        }
        add("GET", "/v1/bridges/{bridge}/ports/{port}") { c throws(APIProblem) in
            let number = try Self.portNumber(c)
            do { return .json(Self.portJSON(try s.port(bridge: c.parameter("bridge"), number: number))) } catch { throw APIProblem.from(error) }
        }
        add("DELETE", "/v1/bridges/{bridge}/ports/{port}") { c throws(APIProblem) in
            let number = try Self.portNumber(c)
            do { try s.removePort(bridge: c.parameter("bridge"), number: number) } catch { throw APIProblem.from(error) }
            return .noContent
        }

        // flows
        add("GET", "/v1/bridges/{bridge}/flows") { c throws(APIProblem) in try Self.listFlows(s, c) }
        add("POST", "/v1/bridges/{bridge}/flows", accepts: Self.jsonOrText) { c throws(APIProblem) in
            let specs = try Self.flowSpecs(c.request, allowBulk: true)
            guard !specs.isEmpty else { throw APIProblem(400, "no rules in the request") }
            do {
                let added = try s.addFlows(bridge: c.parameter("bridge"), specs)
                if c.wantsText { return .plain(added.map { $0.spec.ofctlText + "\n" }.joined(), status: 201) }
                return .json(.object([("flows", .array(added.map(Self.flowJSON)))]), status: 201)
            } catch { throw APIProblem.from(error) }
        }
        add("PATCH", "/v1/bridges/{bridge}/flows", accepts: Self.jsonOrText) { c throws(APIProblem) in
            let specs = try Self.flowSpecs(c.request, allowBulk: false)
            guard specs.count == 1 else { throw APIProblem(400, "expected exactly one rule, got \(specs.count)") }
            let strict = try Self.boolQuery(c, "strict")
            do {
                let n = try s.modifyFlows(bridge: c.parameter("bridge"), specs[0], strict: strict)
                return .json(.object([("modified", .integer(Int64(n)))]))
            } catch { throw APIProblem.from(error) }
        }
        add("DELETE", "/v1/bridges/{bridge}/flows") { c throws(APIProblem) in
            let filter = try Self.queryFilter(c, extra: ["strict", "priority", "out_port"])
            var outPort: UInt32?
            if let v = c.query.first(where: { $0.name == "out_port" })?.value {
                guard let n = UInt32(v) else { throw APIProblem(400, "out_port: '\(v)' is not a port number") }
                outPort = n
            }
            var priority: UInt16?
            if let v = c.query.first(where: { $0.name == "priority" })?.value {
                guard let n = UInt16(v) else { throw APIProblem(400, "priority: '\(v)' is not an integer in 0...65535") }
                priority = n
            }
            do {
                let n = try s.deleteFlows(bridge: c.parameter("bridge"), table: filter.table, filter: filter.spec,
                                          strict: try Self.boolQuery(c, "strict"), priority: priority, cookie: filter.cookie,
                                          cookieMask: filter.cookieMask, outPort: outPort)
                return .json(.object([("deleted", .integer(Int64(n)))]))
            } catch { throw APIProblem.from(error) }
        }
        add("GET", "/v1/bridges/{bridge}/flows/{flow}") { c throws(APIProblem) in
            let id = try Self.flowID(c)
            do {
                let record = try s.flow(bridge: c.parameter("bridge"), id: id)
                return c.wantsText ? .plain(record.spec.ofctlText + "\n") : .json(Self.flowJSON(record))
            } catch { throw APIProblem.from(error) }
        }
        add("PATCH", "/v1/bridges/{bridge}/flows/{flow}", accepts: Self.json) { c throws(APIProblem) in
            let id = try Self.flowID(c)
            let body = try parseJSONBody(c.request)
            let pairs = try objectPairs(body, allowed: ["cookie", "idle_timeout", "hard_timeout", "reset_counts", "actions", "instructions"], what: "flow")
            func u(_ key: String, _ max: UInt64) throws(APIProblem) -> UInt64? {
                guard let v = body[key] else { return nil }
                guard let n = v.unsignedValue, n <= max else { throw APIProblem(400, "\(key): expected an integer in 0...\(max)") }
                return n
            }
            var reset = false
            if let v = body["reset_counts"] {
                guard case .bool(let b) = v else { throw APIProblem(400, "reset_counts: expected true or false") }
                reset = b
            }
            var instructions: FlowInstructions?
            let actionPairs = pairs.filter { $0.0 == "actions" || $0.0 == "instructions" }
            if !actionPairs.isEmpty {
                do {
                    let spec = try FlowSpec(json: .object(actionPairs))
                    instructions = try FlowConversion.instructions(spec)
                } catch let error as FlowConversionError {
                    throw APIProblem(422, error.description)
                } catch { throw APIProblem(400, "\(error)") }
            }
            do {
                let record = try s.modifyFlow(bridge: c.parameter("bridge"), id: id, instructions: instructions,
                                              cookie: try u("cookie", .max), idleTimeout: try u("idle_timeout", 65535).map { UInt16($0) },
                                              hardTimeout: try u("hard_timeout", 65535).map { UInt16($0) }, resetCounts: reset)
                return .json(Self.flowJSON(record))
            } catch let error as SwitchError { throw APIProblem.from(error) } catch let error as APIProblem { throw error } catch {
                throw APIProblem(500, "\(error)")
            }
        }
        add("DELETE", "/v1/bridges/{bridge}/flows/{flow}") { c throws(APIProblem) in
            let id = try Self.flowID(c)
            do { try s.deleteFlow(bridge: c.parameter("bridge"), id: id) } catch { throw APIProblem.from(error) }
            return .noContent
        }

        // trace
        add("POST", "/v1/bridges/{bridge}/trace", accepts: Self.json) { c throws(APIProblem) in try Self.trace(s, c) }
    }

    // MARK: representations

    static func bridgeJSON(_ b: BridgeSummary) -> JSONValue {
        .object([
            ("name", .string(b.name)), ("datapath_id", hexU64(b.datapathID)), ("fail_mode", .string(b.failMode)),
            ("ports", .integer(Int64(b.ports))), ("flows", .integer(Int64(b.flows))), ("programs", .integer(Int64(b.programs))),
        ])
    }

    static func portJSON(_ p: PortRecord) -> JSONValue {
        let st = p.statistics
        func n(_ v: UInt64) -> JSONValue { .unsigned(v) }
        return .object([
            ("ofport", .integer(Int64(st.number))), ("name", .string(st.name)), ("devargs", .string(p.devargs)),
            ("link_up", .bool(true)),
            ("stats", .object([
                ("rx_packets", n(st.rxPackets)), ("rx_bytes", n(st.rxBytes)), ("tx_packets", n(st.txPackets)),
                ("tx_bytes", n(st.txBytes)), ("rx_dropped", n(st.backend.rxDrops)), ("tx_dropped", n(st.txDrops)),
                ("rx_errors", n(st.backend.errors)), ("tx_errors", n(0)), ("rx_malformed", n(st.rxErrors)),
            ])),
        ])
    }

    static func flowJSON(_ r: FlowRecord) -> JSONValue {
        let specJSON = r.rendered?.json ?? r.spec.json
        guard case .object(var pairs) = specJSON else { return specJSON }
        pairs.insert(("id", .unsigned(r.id)), at: 0)
        if !pairs.contains(where: { $0.0 == "instructions" }) {
            // The schema requires `instructions`; `actions` stays as the short form.
            pairs.append(("instructions", .array(r.spec.instructions.isEmpty ? [] : [
                .object([("type", .string("apply_actions")), ("actions", specJSON["actions"] ?? .array([]))]),
            ])))
        }
        pairs.append(("origin", .string(r.origin)))
        pairs.append(("text", .string(r.rendered?.text ?? r.spec.ofctlText)))
        pairs.append(("stats", .object([
            ("packets", .unsigned(r.entry.packets)), ("bytes", .unsigned(r.entry.bytes)),
            ("duration_seconds", .double(r.entry.durationSeconds)), ("idle_seconds", .double(r.entry.idleSeconds)),
        ])))
        return .object(pairs)
    }

    // MARK: request parsing

    static func portNumber(_ c: RouteContext) throws(APIProblem) -> UInt32 {
        guard let n = UInt32(c.parameter("port")), n > 0 else { throw APIProblem(400, "port: '\(c.parameter("port"))' is not a port number") }
        return n
    }

    static func flowID(_ c: RouteContext) throws(APIProblem) -> UInt64 {
        guard let n = UInt64(c.parameter("flow")), n > 0 else { throw APIProblem(400, "flow: '\(c.parameter("flow"))' is not a rule id") }
        return n
    }

    static func boolQuery(_ c: RouteContext, _ name: String) throws(APIProblem) -> Bool {
        guard let v = c.query.first(where: { $0.name == name })?.value else { return false }
        switch v {
        case "true": return true
        case "false": return false
        default: throw APIProblem(400, "\(name): expected true or false, got '\(v)'")
        }
    }

    /// Rules of a body: one JSON rule, `{"flows": [...]}` (when `allowBulk`), or ovs-ofctl lines.
    static func flowSpecs(_ request: HTTPRequest, allowBulk: Bool) throws(APIProblem) -> [FlowSpec] {
        let type = (request.headers["content-type"] ?? "").lowercased()
        if type.hasPrefix("text/plain") {
            do {
                if allowBulk { return try FlowSpec.parseOfctlLines(request.bodyText) }
                let lines = request.bodyText.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
                return try lines.map { try FlowSpec(ofctlText: String($0).trimmingCharacters(in: .whitespaces), requireActions: false) }
            } catch { throw APIProblem(400, "\(error)") }
        }
        let body = try parseJSONBody(request)
        if allowBulk, case .object(let pairs) = body, pairs.contains(where: { $0.0 == "flows" }) {
            guard pairs.count == 1 else { throw APIProblem(400, "a bulk request holds only 'flows'") }
            guard case .array(let items) = body["flows"]! else { throw APIProblem(400, "flows: expected an array") }
            guard items.count <= 200_000 else { throw APIProblem(400, "flows: at most 200000 rules per request") }
            var specs: [FlowSpec] = []
            for (i, item) in items.enumerated() {
                do { specs.append(try FlowSpec(json: item, path: "flows[\(i)]")) } catch { throw APIProblem(400, "\(error)") }
            }
            return specs
        }
        do { return [try FlowSpec(json: body)] } catch { throw APIProblem(400, "\(error)") }
    }

    struct QueryFilter {
        var spec = FlowSpec()
        var table: UInt8?
        var cookie: UInt64?
        var cookieMask: UInt64 = ~0
    }

    /// Match fields, table and cookie from the query string.
    static func queryFilter(_ c: RouteContext, extra: Set<String>) throws(APIProblem) -> QueryFilter {
        var f = QueryFilter()
        for item in c.query {
            switch item.name {
            case "table":
                guard let t = UInt8(item.value), t < 255 else { throw APIProblem(400, "table: '\(item.value)' is not a table number (0...254)") }
                f.table = t
            case "cookie", "cookie_mask":
                let text = item.value.lowercased()
                guard let v = text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text) else {
                    throw APIProblem(400, "\(item.name): '\(item.value)' is not a 64-bit integer")
                }
                if item.name == "cookie" { f.cookie = v } else { f.cookieMask = v }
            case let name where extra.contains(name): continue
            default:
                do { try f.spec.addMatch(item.name, item.value) } catch { throw APIProblem(400, "query parameter \(error)") }
            }
        }
        return f
    }

    static func listFlows(_ s: SwitchService, _ c: RouteContext) throws(APIProblem) -> HTTPResponse {
        let filter = try queryFilter(c, extra: ["limit", "cursor"])
        var limit = 1000
        if let v = c.query.first(where: { $0.name == "limit" })?.value {
            guard let n = Int(v), (1...10000).contains(n) else { throw APIProblem(400, "limit: '\(v)' is not an integer in 1...10000") }
            limit = n
        }
        var after: UInt64 = 0
        if let v = c.query.first(where: { $0.name == "cursor" })?.value {
            guard let id = decodeCursor(v) else { throw APIProblem(400, "cursor: '\(v)' is not a cursor this server issued") }
            after = id
        }
        let records: [FlowRecord]
        do {
            records = try s.flows(bridge: c.parameter("bridge"), table: filter.table, filter: filter.spec,
                                  cookie: filter.cookie, cookieMask: filter.cookieMask)
        } catch { throw APIProblem.from(error) }
        // Records come sorted by id: the page starts after the cursor's id.
        let start = after == 0 ? 0 : (records.firstIndex { $0.id > after } ?? records.endIndex)
        let remaining = records[start...]
        let page = remaining.prefix(limit)
        if c.wantsText { return .plain(page.map { ($0.rendered?.text ?? $0.spec.ofctlText) + "\n" }.joined()) }
        let next = remaining.count > limit ? page.last.map { encodeCursor($0.id) } : nil
        return HTTPResponse(status: 200, headers: jsonHeaders, body: flowListBody(page, next: next))
    }

    /// Cursor: the last listed rule id, base64url of "after:<id>" (opaque to clients).
    static func encodeCursor(_ id: UInt64) -> String {
        Data("after:\(id)".utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func decodeCursor(_ text: String) -> UInt64? {
        var b = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b.count % 4 != 0 { b += "=" }
        guard let data = Data(base64Encoded: b), let s = String(data: data, encoding: .utf8), s.hasPrefix("after:") else { return nil }
        return UInt64(s.dropFirst(6))
    }

    static func trace(_ s: SwitchService, _ c: RouteContext) throws(APIProblem) -> HTTPResponse {
        let body = try parseJSONBody(c.request)
        _ = try objectPairs(body, allowed: ["in_port", "packet", "fields"], what: "trace")
        guard let inPort = body["in_port"]?.unsignedValue, inPort >= 1, inPort <= UInt64(UInt32.max) else {
            throw APIProblem(400, "in_port: required, an integer >= 1")
        }
        let bytes: [UInt8]
        if let fields = body["fields"] {
            guard body["packet"] == nil else { throw APIProblem(400, "give either 'packet' or 'fields', not both") }
            bytes = try packet(from: fields)
        } else {
            guard let hex = body["packet"]?.stringValue else { throw APIProblem(400, "packet: required (the frame as hex) unless 'fields' is given") }
            guard hex.utf8.count % 2 == 0, let parsed = parseHex(hex) else { throw APIProblem(400, "packet: not an even-length hex string") }
            bytes = parsed
        }
        let report: TraceReport
        do { report = try s.trace(bridge: c.parameter("bridge"), bytes: bytes, inPort: UInt32(inPort)) } catch { throw APIProblem.from(error) }
        let ids: [String: UInt64] = (try? s.flows(bridge: c.parameter("bridge")))
            .map { Dictionary($0.map { ("\($0.entry.table)/\($0.entry.priority)/\($0.entry.match)", $0.id) }, uniquingKeysWith: { a, _ in a }) } ?? [:]
        let steps: [JSONValue] = report.steps.map { step in
            var pairs: [(String, JSONValue)] = [("table", .integer(Int64(step.table)))]
            if let rule = step.rule {
                if let id = ids["\(rule.table)/\(rule.priority)/\(rule.match)"] { pairs.append(("flow", .unsigned(id))) }
                pairs.append(("rule", .string(FlowConversion.spec(rule).ofctlText)))
                if let p = rule.match.filterProgram {
                    pairs.append(("programs", .array(report.programs.filter { $0.program == p }.map {
                        .object([("id", .integer(Int64($0.program))), ("result", .unsigned($0.result))])
                    })))
                }
            }
            return .object(pairs)
        }
        // The datapath reports actions as ovs-style strings; map them onto the Action schema.
        var outputs: [JSONValue] = []
        let actions: [JSONValue] = report.actions.map { text in
            let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
            let argument = parts.count > 1 ? parts[1] : ""
            switch parts[0] {
            case "output":
                if let n = UInt64(argument) { outputs.append(.unsigned(n)) }
                return .object([("type", .string("output")), ("port", UInt64(argument).map { .unsigned($0) } ?? .string(argument))])
            case "flood", "all", "normal":
                return .object([("type", .string("output")), ("port", .string(parts[0]))])
            case "controller":
                return .object([("type", .string("output")), ("port", .string("controller")), ("max_len", .unsigned(UInt64(argument) ?? 0xFFFF))])
            case "group":
                return .object([("type", .string("group")), ("group_id", .unsigned(UInt64(argument) ?? 0))])
            case "set_field":
                let fv = argument.split(separator: "=", maxSplits: 1).map(String.init)
                return .object([("type", .string("set_field")), ("field", .string(fv.first ?? "")), ("value", .string(fv.count > 1 ? fv[1] : ""))])
            case "push_vlan":
                return .object([("type", .string("push_vlan")), ("ethertype", .string(argument))])
            default:
                return .object([("type", .string(parts[0]))])
            }
        }
        return .json(.object([("steps", .array(steps)), ("actions", .array(actions)), ("outputs", .array(outputs)),
                              ("text", .string(report.description))]))
    }

    /// Builds a minimal frame (Ethernet, optional 802.1Q, IPv4 + TCP/UDP/ICMP or ARP) from match fields.
    static func packet(from fields: JSONValue) throws(APIProblem) -> [UInt8] {
        guard case .object(let pairs) = fields else { throw APIProblem(400, "fields: expected an object of match fields") }
        var spec = FlowSpec()
        for (name, value) in pairs {
            let text: String
            switch value {
            case .string(let s): text = s
            case .integer(let v): text = String(v)
            case .unsigned(let v): text = String(v)
            default: throw APIProblem(400, "fields.\(name): expected a number or a string")
            }
            do { try spec.addMatch(name, text) } catch { throw APIProblem(400, "fields: \(error)") }
        }
        var numbers: [FlowField: UInt64] = [:]
        for field in spec.match {
            if field.name.hasPrefix("ipv6") || field.name == "filter_prog" || field.name == "in_port" || field.name == "metadata" {
                if field.name == "in_port" || field.name == "metadata" { continue }
                throw APIProblem(422, "fields: '\(field.name)' cannot be used to build a trace packet; give 'packet' as hex")
            }
            guard let f = FlowField(rawValue: field.name) else { continue }
            let value = String(field.value.split(separator: "/").first ?? "")
            do { numbers[f] = try FlowConversion.valueAndMask(field.name, f, value).0 } catch { throw APIProblem(400, "fields: \(error)") }
        }
        func be(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> UInt64(8 * (n - 1 - $0))) } }
        let proto = numbers[.ipProto]
        let ethType = numbers[.ethType] ?? (proto != nil || numbers[.ipv4Src] != nil || numbers[.ipv4Dst] != nil ? 0x0800 : 0x88B5)
        var frame = be(numbers[.ethDst] ?? 0x0200_0000_0002, 6) + be(numbers[.ethSrc] ?? 0x0200_0000_0001, 6)
        if let vid = numbers[.vlanVID] {
            frame += [0x81, 0x00] + be((numbers[.vlanPCP] ?? 0) << 13 | (vid & 0x0FFF), 2)
        }
        frame += be(ethType, 2)
        if ethType == 0x0800 {
            let p = proto ?? 17
            var l4: [UInt8]
            switch p {
            case 6:
                l4 = be(numbers[.tcpSrc] ?? 1024, 2) + be(numbers[.tcpDst] ?? 80, 2) + [0, 0, 0, 1, 0, 0, 0, 0]
                l4 += be(0x5000 | (numbers[.tcpFlags] ?? 0x002), 2) + [0xff, 0xff, 0, 0, 0, 0]
            case 17: l4 = be(numbers[.udpSrc] ?? 1024, 2) + be(numbers[.udpDst] ?? 53, 2) + [0, 8, 0, 0]
            case 1: l4 = [UInt8(numbers[.icmpv4Type] ?? 8), UInt8(numbers[.icmpv4Code] ?? 0), 0, 0, 0, 0, 0, 0]
            default: l4 = []
            }
            let tos = (numbers[.ipDSCP] ?? 0) << 2 | (numbers[.ipECN] ?? 0)
            var ip: [UInt8] = [0x45, UInt8(tos)] + be(UInt64(20 + l4.count), 2) + [0, 0, 0x40, 0]
            ip += [UInt8(numbers[.ipTTL] ?? 64), UInt8(p), 0, 0] + be(numbers[.ipv4Src] ?? 0x0A00_0001, 4) + be(numbers[.ipv4Dst] ?? 0x0A00_0002, 4)
            var sum: UInt32 = 0
            for i in stride(from: 0, to: 20, by: 2) { sum += UInt32(ip[i]) << 8 | UInt32(ip[i + 1]) }
            while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
            let checksum = ~UInt16(sum)
            ip[10] = UInt8(checksum >> 8)
            ip[11] = UInt8(checksum & 0xFF)
            frame += ip + l4
        } else if ethType == 0x0806 {
            frame += [0, 1, 0x08, 0, 6, 4] + be(numbers[.arpOp] ?? 1, 2)
            frame += be(numbers[.arpSHA] ?? 0x0200_0000_0001, 6) + be(numbers[.arpSPA] ?? 0x0A00_0001, 4)
            frame += be(numbers[.arpTHA] ?? 0, 6) + be(numbers[.arpTPA] ?? 0x0A00_0002, 4)
        }
        if frame.count < 60 { frame += [UInt8](repeating: 0, count: 60 - frame.count) }
        return frame
    }

    static func parseHex(_ text: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count / 2)
        var it = text.utf8.makeIterator()
        while let h = it.next() {
            guard let l = it.next(), let v = UInt8(String(decoding: [h, l], as: UTF8.self), radix: 16) else { return nil }
            out.append(v)
        }
        return out
    }

    // MARK: metrics

    /// The scrape as `MetricFamily` values (`renderMetrics()` writes the same text without them).
    func metricFamilies() -> [MetricFamily] {
        var up = MetricFamily(name: "oko_up", help: "1 while okod runs.", kind: .gauge)
        up.add(1.0)
        var ready = MetricFamily(name: "oko_ready", help: "1 once the datapath is up and the configuration restored.", kind: .gauge)
        ready.add(service.ready.load(ordering: .relaxed) ? 1.0 : 0.0)
        func counter(_ name: String, _ help: String) -> MetricFamily { MetricFamily(name: name, help: help, kind: .counter) }
        var rxP = counter("oko_port_rx_packets_total", "Packets received on a port.")
        var txP = counter("oko_port_tx_packets_total", "Packets sent on a port.")
        var rxB = counter("oko_port_rx_bytes_total", "Bytes received on a port.")
        var txB = counter("oko_port_tx_bytes_total", "Bytes sent on a port.")
        var rxD = counter("oko_port_rx_dropped_total", "Packets missed by the NIC.")
        var txD = counter("oko_port_tx_dropped_total", "Packets refused on transmit.")
        var rxE = counter("oko_port_rx_errors_total", "Receive errors reported by the port (including malformed headers).")
        var txE = counter("oko_port_tx_errors_total", "Transmit errors reported by the port.")
        var ruleP = counter("oko_rule_packets_total", "Packets that hit a rule.")
        var ruleB = counter("oko_rule_bytes_total", "Bytes that hit a rule.")
        var progRuns = counter("oko_program_runs_total", "Filter program runs.")
        var progMatches = counter("oko_program_matches_total", "Filter program runs that returned 1.")
        var progSeconds = counter("oko_program_run_seconds_total", "Time spent running a filter program.")
        for name in service.bridgeNames() {
            guard let bridge = try? service.bridge(named: name) else { continue }
            for p in bridge.ports() {
                let labels = [("bridge", name), ("port", String(p.number)), ("port_name", p.name)]
                rxP.add(p.rxPackets, labels)
                txP.add(p.txPackets, labels)
                rxB.add(p.rxBytes, labels)
                txB.add(p.txBytes, labels)
                rxD.add(p.backend.rxDrops, labels)
                txD.add(p.txDrops, labels)
                rxE.add(p.backend.errors + p.rxErrors, labels)
                txE.add(UInt64(0), labels)
            }
            for r in (try? service.flows(bridge: name)) ?? [] {
                let labels = [("bridge", name), ("table", String(r.entry.table)), ("rule", String(r.id))]
                ruleP.add(r.entry.packets, labels)
                ruleB.add(r.entry.bytes, labels)
            }
            if service.programs == nil {
                for (id, p) in bridge.programs().sorted(by: { $0.key < $1.key }) {
                    let labels = [("bridge", name), ("program", String(id))]
                    progRuns.add(p.runs, labels)
                    progMatches.add(p.matches, labels)
                    progSeconds.add(Double(p.totalNanoseconds) / 1e9, labels)
                }
            }
        }
        // Seconds, the base unit (the datapath counts nanoseconds of polling time, not TSC cycles).
        var busy = counter("oko_pmd_busy_seconds_total", "Poll-mode thread time spent on iterations that had packets.")
        var idle = counter("oko_pmd_idle_seconds_total", "Poll-mode thread time spent on iterations without packets.")
        var emc = counter("oko_pmd_emc_hits_total", "Exact-match cache hits.")
        var mega = counter("oko_pmd_megaflow_hits_total", "Megaflow cache hits.")
        var upcalls = counter("oko_pmd_upcalls_total", "Classifier lookups (cache misses).")
        var packets = counter("oko_pmd_packets_total", "Packets processed by a poll-mode thread.")
        for pmd in service.pmdThreads {
            let st = pmd.statistics
            let labels = [("pmd", String(pmd.index))]
            busy.add(Double(st.busyNanoseconds) / 1e9, labels)
            idle.add(Double(st.idleNanoseconds) / 1e9, labels)
            emc.add(st.emcHits, labels)
            mega.add(st.megaflowHits, labels)
            upcalls.add(st.upcalls, labels)
            packets.add(st.packets, labels)
        }
        var families = [up, ready, rxP, txP, rxB, txB, rxD, txD, rxE, txE, ruleP, ruleB]
        if let catalogue = service.programs {
            families += catalogue.metricFamilies()
        } else {
            families += [progRuns, progMatches, progSeconds]
        }
        families += [busy, idle, emc, mega, upcalls, packets]
        families += apiMetricFamilies()
        return families
    }
}
