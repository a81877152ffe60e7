// Router: maps (method, path) to a handler with named path parameters.
//
// Templates are literal segments and `{name}` captures (`/v1/bridges/{bridge}/ports/{port}`). Lookup walks
// a segment tree, so its cost depends on the path's depth, not the number of routes. A path that exists
// with another method gives `methodNotAllowed` with the allowed methods (for 405 and `Allow`).

public struct Router<Handler: Sendable>: Sendable {
    public enum Match {
        case found(Handler, parameters: [String: String])
        case methodNotAllowed(allowed: [String])
        case notFound
    }

    private final class Node: @unchecked Sendable {
        var literals: [String: Node] = [:]
        var capture: (name: String, node: Node)?
        var handlers: [String: Handler] = [:]
    }

    private let root = Node()

    public init() {}

    /// Registers `handler` for `method` on `template`. Registration happens once at start-up.
    public func add(_ method: String, _ template: String, _ handler: Handler) {
        var node = root
        for segment in template.split(separator: "/") {
            if segment.hasPrefix("{") && segment.hasSuffix("}") {
                let name = String(segment.dropFirst().dropLast())
                if let capture = node.capture {
                    precondition(capture.name == name, "conflicting captures {\(capture.name)} and {\(name)}")
                    node = capture.node
                } else {
                    let next = Node()
                    node.capture = (name, next)
                    node = next
                }
            } else {
                let key = String(segment)
                if let next = node.literals[key] {
                    node = next
                } else {
                    let next = Node()
                    node.literals[key] = next
                    node = next
                }
            }
        }
        precondition(node.handlers[method] == nil, "duplicate route \(method) \(template)")
        node.handlers[method] = handler
    }

    /// Finds the handler for `method` on `path` (without query). Percent-escapes in captures are decoded.
    public func match(_ method: String, _ path: String) -> Match {
        var node = root
        var parameters: [String: String] = [:]
        // Split on bytes ('/' is ASCII): Character-wise splitting was a visible share of a request.
        for segmentBytes in path.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true) {
            let segment = Substring(segmentBytes)
            if let next = node.literals[String(segment)] {
                node = next
            } else if let capture = node.capture, let decoded = Self.percentDecode(segment) {
                parameters[capture.name] = decoded
                node = capture.node
            } else {
                return .notFound
            }
        }
        if let handler = node.handlers[method] ?? (method == "HEAD" ? node.handlers["GET"] : nil) {
            return .found(handler, parameters: parameters)
        }
        return node.handlers.isEmpty ? .notFound : .methodNotAllowed(allowed: node.handlers.keys.sorted())
    }

    /// Decodes %XX escapes; nil when malformed or not UTF-8.
    static func percentDecode(_ text: Substring) -> String? {
        guard text.utf8.contains(UInt8(ascii: "%")) else { return String(text) }  // bytes: no Foundation search
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next(), let low = iterator.next(),
                    let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
                else { return nil }
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}
