// Protocol-independent request/response values handed to an `HTTPHandler`. The same handler serves
// HTTP/1.1 and HTTP/2; the server translates wire formats to and from these plain values.

/// The protocol version a request arrived with.
public enum HTTPVersion: String, Sendable, Equatable {
    case http1_0 = "HTTP/1.0"
    case http1_1 = "HTTP/1.1"
    case http2 = "HTTP/2"
}

/// An ordered list of header fields with case-insensitive name lookup. Names keep their spelling as
/// received; HTTP/2 names are always lower-case on the wire.
public struct HTTPHeaders: Sendable, Equatable, Sequence, ExpressibleByDictionaryLiteral {
    public typealias Element = (name: String, value: String)
    private var fields: [Element]

    public init() { fields = [] }
    public init(_ fields: [(String, String)]) { self.fields = fields.map { (name: $0.0, value: $0.1) } }
    public init(dictionaryLiteral elements: (String, String)...) { self.init(elements) }

    public var count: Int { fields.count }
    public func makeIterator() -> IndexingIterator<[Element]> { fields.makeIterator() }

    /// The first value of `name` (case-insensitive), or nil.
    public subscript(name: String) -> String? {
        for field in fields where Self.namesEqual(field.name, name) { return field.value }
        return nil
    }

    /// All values of `name` (case-insensitive), in order.
    public func values(for name: String) -> [String] {
        fields.filter { Self.namesEqual($0.name, name) }.map(\.value)
    }

    public func contains(_ name: String) -> Bool { self[name] != nil }

    public mutating func add(_ name: String, _ value: String) { fields.append((name: name, value: value)) }

    /// Replaces every field called `name` with one field holding `value`.
    public mutating func set(_ name: String, _ value: String) {
        remove(name)
        add(name, value)
    }

    public mutating func remove(_ name: String) { fields.removeAll { Self.namesEqual($0.name, name) } }

    /// True when a comma-separated header (e.g. Connection) lists `token`, ignoring case.
    public func hasToken(_ token: String, in name: String) -> Bool {
        for value in values(for: name) {
            for part in value.split(separator: ",") where Self.namesEqual(trimmed(part), token) { return true }
        }
        return false
    }

    public static func == (lhs: HTTPHeaders, rhs: HTTPHeaders) -> Bool {
        lhs.fields.count == rhs.fields.count
            && zip(lhs.fields, rhs.fields).allSatisfy { namesEqual($0.name, $1.name) && $0.value == $1.value }
    }

    /// ASCII case-insensitive comparison without allocating lower-cased copies.
    static func namesEqual<A: StringProtocol, B: StringProtocol>(_ a: A, _ b: B) -> Bool {
        let au = a.utf8, bu = b.utf8
        guard au.count == bu.count else { return false }
        for (x, y) in zip(au, bu) where x != y {
            guard asciiLower(x) == asciiLower(y) else { return false }
        }
        return true
    }
}

@inline(__always) func asciiLower(_ c: UInt8) -> UInt8 { c >= 65 && c <= 90 ? c | 0x20 : c }

private func trimmed(_ s: Substring) -> Substring {
    var s = s
    while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
    while let l = s.last, l == " " || l == "\t" { s.removeLast() }
    return s
}

/// One `name=value` pair of a query string, percent-decoded (`+` decodes to a space).
public struct HTTPQueryItem: Sendable, Equatable {
    public var name: String
    public var value: String
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// A complete request: the body has been read in full (up to the configured limit) before the handler runs.
public struct HTTPRequest: Sendable {
    public var method: String
    /// The request target as sent (origin form `/a/b?x=1`, or `*`).
    public var target: String { didSet { path = Self.decodedPath(of: target) } }
    /// The percent-decoded path, without the query string (decoded once: handlers and wrappers ask often).
    public private(set) var path: String
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// `ip:port` of the peer, when known.
    public var remoteAddress: String?
    public var version: HTTPVersion

    public init(
        method: String, target: String, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = [],
        remoteAddress: String? = nil, version: HTTPVersion = .http1_1
    ) {
        self.method = method
        self.target = target
        self.path = Self.decodedPath(of: target)
        self.headers = headers
        self.body = body
        self.remoteAddress = remoteAddress
        self.version = version
    }

    static func decodedPath(of target: String) -> String {
        // Usual case: no query and no escapes, the target is the path (no copy).
        guard target.utf8.contains(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "%") }) else { return target }
        let raw = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return percentDecode(raw, plusIsSpace: false)
    }

    /// The raw query string after `?`, or nil.
    public var query: String? {
        // Searched on bytes: Character-wise search was a visible share of requests without a query.
        guard let q = target.utf8.firstIndex(of: UInt8(ascii: "?")) else { return nil }
        return String(target[target.utf8.index(after: q)...])
    }

    /// Query items in order; a key without `=` has an empty value.
    public var queryItems: [HTTPQueryItem] {
        guard let query else { return [] }
        return query.split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return HTTPQueryItem(
                name: percentDecode(parts[0], plusIsSpace: true),
                value: parts.count > 1 ? percentDecode(parts[1], plusIsSpace: true) : "")
        }
    }

    /// The body decoded as UTF-8 (invalid sequences repaired).
    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// The handler's answer. `Content-Length` is set by the server from `body`.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(status: Int = 200, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public init(status: Int = 200, headers: HTTPHeaders = HTTPHeaders(), text: String) {
        self.init(status: status, headers: headers, body: Array(text.utf8))
        if !self.headers.contains("content-type") { self.headers.add("content-type", "text/plain; charset=utf-8") }
    }
}

extension HTTPResponse {
    /// An RFC 9457 problem document, for the errors the server answers by itself (over-limit requests,
    /// malformed HTTP/1, timeouts), so clients see the same error format as from handlers.
    static func problem(status: Int, detail: String) -> HTTPResponse {
        var escaped = ""
        for scalar in detail.unicodeScalars {
            switch scalar {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case _ where scalar.value < 0x20: escaped += " "
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        let body = #"{"type":"about:blank","title":""# + reasonPhrase(status) + #"","status":"# + String(status)
            + #","detail":""# + escaped + "\"}\n"
        return HTTPResponse(status: status, headers: ["content-type": "application/problem+json"], body: Array(body.utf8))
    }
}

/// Serves requests of every protocol version. Called concurrently for concurrent requests.
public protocol HTTPHandler: Sendable {
    func handle(_ request: HTTPRequest) async -> HTTPResponse
    /// True when `handleWithoutSuspending` may answer: the server then calls it on the connection's event
    /// loop (when handlers run there) and saves a task per request. False (the default): `handle` only.
    var answersWithoutSuspending: Bool { get }
    /// The response when it can be produced without suspending (nil: the server falls back to `handle`).
    func handleWithoutSuspending(_ request: HTTPRequest) -> HTTPResponse?
}

extension HTTPHandler {
    public var answersWithoutSuspending: Bool { false }
    public func handleWithoutSuspending(_ request: HTTPRequest) -> HTTPResponse? { nil }
}

/// Adapts a closure to `HTTPHandler`.
public struct HTTPClosureHandler: HTTPHandler {
    private let body: @Sendable (HTTPRequest) async -> HTTPResponse
    public init(_ body: @escaping @Sendable (HTTPRequest) async -> HTTPResponse) { self.body = body }
    public func handle(_ request: HTTPRequest) async -> HTTPResponse { await body(request) }
}

func percentDecode(_ s: Substring, plusIsSpace: Bool) -> String {
    let bytes = Array(s.utf8)
    guard bytes.contains(where: { $0 == UInt8(ascii: "%") || (plusIsSpace && $0 == UInt8(ascii: "+")) }) else {
        return String(s)
    }
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count)
    var i = 0
    while i < bytes.count {
        let c = bytes[i]
        if c == UInt8(ascii: "%"), i + 2 < bytes.count, let h = hexValue(bytes[i + 1]), let l = hexValue(bytes[i + 2]) {
            out.append(h << 4 | l)
            i += 3
        } else {
            out.append(plusIsSpace && c == UInt8(ascii: "+") ? UInt8(ascii: " ") : c)
            i += 1
        }
    }
    return String(decoding: out, as: UTF8.self)
}

@inline(__always) func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
    default: return nil
    }
}

/// Standard reason phrases for the status line of HTTP/1.x responses.
func reasonPhrase(_ status: Int) -> String {
    switch status {
    case 100: "Continue"
    case 101: "Switching Protocols"
    case 200: "OK"
    case 201: "Created"
    case 202: "Accepted"
    case 204: "No Content"
    case 301: "Moved Permanently"
    case 302: "Found"
    case 304: "Not Modified"
    case 400: "Bad Request"
    case 401: "Unauthorized"
    case 403: "Forbidden"
    case 404: "Not Found"
    case 405: "Method Not Allowed"
    case 408: "Request Timeout"
    case 409: "Conflict"
    case 411: "Length Required"
    case 413: "Content Too Large"
    case 415: "Unsupported Media Type"
    case 422: "Unprocessable Content"
    case 429: "Too Many Requests"
    case 431: "Request Header Fields Too Large"
    case 500: "Internal Server Error"
    case 501: "Not Implemented"
    case 503: "Service Unavailable"
    case 505: "HTTP Version Not Supported"
    default: "Status \(status)"
    }
}
