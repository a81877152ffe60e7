// Rule listing rendered straight to bytes. A rule's definition (match, actions, instructions, ovs-ofctl
// text) changes rarely, its counters on every packet: `RenderedFlow` holds the definition's JSON once as
// byte fragments, and a list request splices the id, origin and live counters between them. The bytes
// are exactly what `ManagementAPI.flowJSON(_:)` rendered through `JSONValue` would give (a test compares
// the two), without building a value tree per rule and request.
import OkoSyntax

/// A rule definition rendered once (immutable, shared by every listing while the rule is unchanged).
final class RenderedFlow: Sendable {
    let json: JSONValue
    let text: String
    /// The spec's members plus `instructions` when the spec has only the short `actions` form, each
    /// followed by a comma: what follows `{"id":N,` in a listed rule. Nil when the spec JSON is not an
    /// object (then the rule goes through `flowJSON`).
    let members: [UInt8]?
    /// `"text":"<ovs-ofctl text>",`
    let textMember: [UInt8]

    init(spec: FlowSpec) {
        let json = spec.json
        self.json = json
        text = spec.ofctlText
        var textMember: [UInt8] = Array(#""text":"#.utf8)
        JSONValue.appendString(text, to: &textMember)
        textMember.append(UInt8(ascii: ","))
        self.textMember = textMember
        guard case .object(let pairs) = json else {
            members = nil
            return
        }
        var out: [UInt8] = []
        out.reserveCapacity(256)
        for (key, value) in pairs {
            JSONValue.appendString(key, to: &out)
            out.append(UInt8(ascii: ":"))
            value.appendUTF8(to: &out)
            out.append(UInt8(ascii: ","))
        }
        if !pairs.contains(where: { $0.0 == "instructions" }) {
            // The schema requires `instructions`; `actions` stays as the short form.
            let instructions: JSONValue = .array(spec.instructions.isEmpty ? [] : [
                .object([("type", .string("apply_actions")), ("actions", json["actions"] ?? .array([]))]),
            ])
            out.append(contentsOf: #""instructions":"#.utf8)
            instructions.appendUTF8(to: &out)
            out.append(UInt8(ascii: ","))
        }
        members = out
    }
}

extension ManagementAPI {
    /// Appends one listed rule: `flowJSON(r)` as compact JSON.
    static func appendFlowJSON(_ r: FlowRecord, to out: inout [UInt8]) {
        guard let rendered = r.rendered, let members = rendered.members else {
            flowJSON(r).appendUTF8(to: &out)
            return
        }
        out.append(contentsOf: #"{"id":"#.utf8)
        appendDecimal(r.id, negative: false, to: &out)
        out.append(UInt8(ascii: ","))
        out.append(contentsOf: members)
        out.append(contentsOf: #""origin":"#.utf8)
        JSONValue.appendString(r.origin, to: &out)
        out.append(UInt8(ascii: ","))
        out.append(contentsOf: rendered.textMember)
        out.append(contentsOf: #""stats":{"packets":"#.utf8)
        appendDecimal(r.entry.packets, negative: false, to: &out)
        out.append(contentsOf: #","bytes":"#.utf8)
        appendDecimal(r.entry.bytes, negative: false, to: &out)
        out.append(contentsOf: #","duration_seconds":"#.utf8)
        JSONValue.double(r.entry.durationSeconds).appendUTF8(to: &out)
        out.append(contentsOf: #","idle_seconds":"#.utf8)
        JSONValue.double(r.entry.idleSeconds).appendUTF8(to: &out)
        out.append(contentsOf: "}}".utf8)
    }

    /// `{"flows":[...]}` (plus `next` when a page follows) and a newline, as `HTTPResponse.json` sends.
    static func flowListBody(_ page: ArraySlice<FlowRecord>, next: String?) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64 + page.count * 400)
        out.append(contentsOf: #"{"flows":["#.utf8)
        var first = true
        for r in page {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            appendFlowJSON(r, to: &out)
        }
        out.append(UInt8(ascii: "]"))
        if let next {
            out.append(contentsOf: #","next":"#.utf8)
            JSONValue.appendString(next, to: &out)
        }
        out.append(contentsOf: "}\n".utf8)
        return out
    }
}
