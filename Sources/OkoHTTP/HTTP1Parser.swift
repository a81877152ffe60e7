// Incremental HTTP/1.x request parser. Consumes bytes from a ByteBuffer as they arrive and yields one
// event at a time, so the connection handler can answer `Expect: 100-continue`, stop at a request
// boundary (pipelining), or switch protocols (h2c upgrade) with the remaining bytes untouched.
// Strict where ambiguity enables request smuggling: Content-Length together with Transfer-Encoding,
// conflicting Content-Lengths, obs-fold and whitespace before the colon are all rejected with 400.
import NIOCore

/// Why a request could not be parsed; `status` is the HTTP status the client gets before the close.
struct HTTPParseError: Error, Equatable, CustomStringConvertible {
    var status: Int
    var message: String
    var description: String { "\(status) \(reasonPhrase(status)): \(message)" }
}

struct HTTP1RequestHead {
    var method: String
    var target: String
    var version: HTTPVersion
    var headers: HTTPHeaders
    var keepAlive: Bool
    var expectsContinue: Bool
    /// nil when the body is chunked.
    var contentLength: Int?
}

struct HTTP1Limits {
    var maxHeaderBytes: Int
    var maxHeaderCount: Int
    var maxBodyBytes: Int
}

struct HTTP1RequestParser {
    enum Event {
        case needMoreData
        /// The head is complete; the body (if any) follows. Emitted exactly once per request.
        case head(HTTP1RequestHead)
        case complete(HTTP1RequestHead, body: [UInt8])
    }

    private enum State {
        case head
        case fixedBody(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers(bytesSeen: Int)
    }

    let limits: HTTP1Limits
    private var state = State.head
    private var currentHead: HTTP1RequestHead?
    private var body: [UInt8] = []
    /// Bytes of the buffer already searched for the end of the head (avoids rescanning).
    private var headScanned = 0

    init(limits: HTTP1Limits) { self.limits = limits }

    /// True between the first byte of a request and its completion.
    var isMidRequest: Bool { currentHead != nil || headScanned > 0 }

    mutating func next(_ buffer: inout ByteBuffer) throws(HTTPParseError) -> Event {
        while true {
            switch state {
            case .head:
                guard let head = try parseHead(&buffer) else { return .needMoreData }
                currentHead = head
                body = []
                if let length = head.contentLength {
                    state = length == 0 ? .fixedBody(remaining: 0) : .fixedBody(remaining: length)
                    if length > 0 { body.reserveCapacity(length) }
                } else {
                    state = .chunkSize
                }
                return .head(head)

            case .fixedBody(let remaining):
                if remaining > 0 {
                    let take = min(remaining, buffer.readableBytes)
                    guard take > 0 else { return .needMoreData }
                    buffer.readWithUnsafeReadableBytes { raw in
                        body.append(contentsOf: raw.bindMemory(to: UInt8.self).prefix(take))
                        return take
                    }
                    state = .fixedBody(remaining: remaining - take)
                    if remaining - take > 0 { return .needMoreData }
                }
                return finish()

            case .chunkSize:
                guard let line = try readLine(&buffer, limit: 1024, what: "chunk size line") else { return .needMoreData }
                let sizeField = line.prefix { $0 != UInt8(ascii: ";") }
                    .filter { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") }
                guard !sizeField.isEmpty, sizeField.count <= 15 else {
                    throw HTTPParseError(status: 400, message: "invalid chunk size")
                }
                var size = 0
                for c in sizeField {
                    guard let v = hexValue(c) else { throw HTTPParseError(status: 400, message: "invalid chunk size") }
                    size = size << 4 | Int(v)
                }
                if size == 0 {
                    state = .trailers(bytesSeen: 0)
                } else {
                    guard body.count + size <= limits.maxBodyBytes else { throw bodyTooLarge() }
                    state = .chunkData(remaining: size)
                }

            case .chunkData(let remaining):
                let take = min(remaining, buffer.readableBytes)
                guard take > 0 else { return .needMoreData }
                buffer.readWithUnsafeReadableBytes { raw in
                    body.append(contentsOf: raw.bindMemory(to: UInt8.self).prefix(take))
                    return take
                }
                state = remaining - take > 0 ? .chunkData(remaining: remaining - take) : .chunkDataEnd

            case .chunkDataEnd:
                guard let line = try readLine(&buffer, limit: 2, what: "chunk terminator") else { return .needMoreData }
                guard line.isEmpty else { throw HTTPParseError(status: 400, message: "chunk data not followed by CRLF") }
                state = .chunkSize

            case .trailers(let seen):
                // Trailer fields are read and dropped; they count against the header size limit.
                guard let line = try readLine(&buffer, limit: limits.maxHeaderBytes, what: "trailer section") else {
                    return .needMoreData
                }
                if line.isEmpty { return finish() }
                let total = seen + line.count + 2
                guard total <= limits.maxHeaderBytes else {
                    throw HTTPParseError(status: 431, message: "trailer section exceeds \(limits.maxHeaderBytes) bytes")
                }
                state = .trailers(bytesSeen: total)
            }
        }
    }

    private mutating func finish() -> Event {
        let head = currentHead!
        let done = body
        currentHead = nil
        body = []
        headScanned = 0
        state = .head
        return .complete(head, body: done)
    }

    private func bodyTooLarge() -> HTTPParseError {
        HTTPParseError(status: 413, message: "request body exceeds the limit of \(limits.maxBodyBytes) bytes")
    }

    /// Reads one LF-terminated line (CR before LF stripped) or returns nil when it is not complete yet.
    private func readLine(_ buffer: inout ByteBuffer, limit: Int, what: String) throws(HTTPParseError) -> [UInt8]? {
        let view = buffer.readableBytesView
        guard let lf = view.firstIndex(of: UInt8(ascii: "\n")) else {
            if view.count > limit + 2 { throw HTTPParseError(status: 400, message: "\(what) too long") }
            return nil
        }
        var line = Array(view[view.startIndex..<lf])
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        guard line.count <= limit else { throw HTTPParseError(status: 400, message: "\(what) too long") }
        buffer.moveReaderIndex(forwardBy: lf - view.startIndex + 1)
        return line
    }

    /// Parses the request line and header fields once the blank line ending the head has arrived.
    private mutating func parseHead(_ buffer: inout ByteBuffer) throws(HTTPParseError) -> HTTP1RequestHead? {
        // Robustness (RFC 9112 2.2): ignore empty lines before the request line.
        while headScanned == 0, let first = buffer.readableBytesView.first,
              first == UInt8(ascii: "\r") || first == UInt8(ascii: "\n") {
            buffer.moveReaderIndex(forwardBy: 1)
        }
        let view = buffer.readableBytesView
        let start = view.startIndex
        var end: Int? = nil
        var i = start + max(0, headScanned - 3)
        let scanLimit = min(view.endIndex, start + limits.maxHeaderBytes + 4)
        while i < scanLimit {
            if view[i] == UInt8(ascii: "\n") {
                if i + 1 < view.endIndex, view[i + 1] == UInt8(ascii: "\n") { end = i + 2; break }
                if i + 2 < view.endIndex, view[i + 1] == UInt8(ascii: "\r"), view[i + 2] == UInt8(ascii: "\n") {
                    end = i + 3; break
                }
            }
            i += 1
        }
        guard let headEnd = end else {
            headScanned = view.count
            if view.count > limits.maxHeaderBytes {
                throw HTTPParseError(status: 431, message: "request head exceeds \(limits.maxHeaderBytes) bytes")
            }
            return nil
        }
        guard headEnd - start <= limits.maxHeaderBytes + 4 else {
            throw HTTPParseError(status: 431, message: "request head exceeds \(limits.maxHeaderBytes) bytes")
        }
        let bytes = Array(view[start..<headEnd])
        buffer.moveReaderIndex(forwardBy: headEnd - start)
        headScanned = 0
        return try Self.decodeHead(bytes, limits: limits)
    }

    static func decodeHead(_ bytes: [UInt8], limits: HTTP1Limits) throws(HTTPParseError) -> HTTP1RequestHead {
        var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map { line in
            line.last == UInt8(ascii: "\r") ? line.dropLast() : line
        }
        while let last = lines.last, last.isEmpty { lines.removeLast() }
        guard let requestLine = lines.first else { throw HTTPParseError(status: 400, message: "empty request") }

        let parts = requestLine.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw HTTPParseError(status: 400, message: "malformed request line") }
        guard !parts[0].isEmpty, parts[0].allSatisfy(isTokenChar) else {
            throw HTTPParseError(status: 400, message: "invalid method")
        }
        guard !parts[1].isEmpty, parts[1].allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw HTTPParseError(status: 400, message: "invalid request target")
        }
        let version: HTTPVersion
        switch String(decoding: parts[2], as: UTF8.self) {
        case "HTTP/1.1": version = .http1_1
        case "HTTP/1.0": version = .http1_0
        case let v where v.hasPrefix("HTTP/") && v.count == 8: throw HTTPParseError(status: 505, message: "\(v) is not supported")
        default: throw HTTPParseError(status: 400, message: "invalid protocol version")
        }
        let method = String(decoding: parts[0], as: UTF8.self)
        let target = String(decoding: parts[1], as: UTF8.self)
        guard target.hasPrefix("/") || target == "*" || target.contains("://") || method == "CONNECT" else {
            throw HTTPParseError(status: 400, message: "invalid request target")
        }

        var headers = HTTPHeaders()
        for line in lines.dropFirst() {
            guard headers.count < limits.maxHeaderCount else {
                throw HTTPParseError(status: 431, message: "more than \(limits.maxHeaderCount) header fields")
            }
            guard let first = line.first, first != UInt8(ascii: " "), first != UInt8(ascii: "\t") else {
                throw HTTPParseError(status: 400, message: "obsolete line folding or empty header line")
            }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
                throw HTTPParseError(status: 400, message: "header field without a colon")
            }
            let name = line[line.startIndex..<colon]
            guard !name.isEmpty, name.allSatisfy(isTokenChar) else {
                throw HTTPParseError(status: 400, message: "invalid header field name")
            }
            var value = line[(colon + 1)...]
            while let f = value.first, f == UInt8(ascii: " ") || f == UInt8(ascii: "\t") { value = value.dropFirst() }
            while let l = value.last, l == UInt8(ascii: " ") || l == UInt8(ascii: "\t") { value = value.dropLast() }
            guard value.allSatisfy({ $0 >= 0x20 && $0 != 0x7F || $0 == UInt8(ascii: "\t") }) else {
                throw HTTPParseError(status: 400, message: "control character in header field value")
            }
            headers.add(String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self))
        }

        if version == .http1_1, !headers.contains("host") {
            throw HTTPParseError(status: 400, message: "HTTP/1.1 request without a Host header")
        }

        var contentLength: Int? = 0
        let transferEncodings = headers.values(for: "transfer-encoding")
        let lengths = headers.values(for: "content-length")
        if !transferEncodings.isEmpty {
            guard lengths.isEmpty else {
                throw HTTPParseError(status: 400, message: "both Content-Length and Transfer-Encoding present")
            }
            let codings = transferEncodings.joined(separator: ",").split(separator: ",").map {
                $0.trimmingASCIISpaces.lowercased()
            }
            guard codings.last == "chunked", codings.filter({ $0 == "chunked" }).count == 1 else {
                throw HTTPParseError(status: 501, message: "unsupported transfer coding \(codings.joined(separator: ", "))")
            }
            guard codings.count == 1 else {
                throw HTTPParseError(status: 501, message: "unsupported transfer coding \(codings.joined(separator: ", "))")
            }
            contentLength = nil
        } else if !lengths.isEmpty {
            let all = lengths.joined(separator: ",").split(separator: ",", omittingEmptySubsequences: false)
                .map { $0.trimmingASCIISpaces }
            guard let firstLength = all.first, all.allSatisfy({ $0 == firstLength }),
                  !firstLength.isEmpty, firstLength.count <= 18, firstLength.allSatisfy(\.isASCIIDigitCharacter),
                  let length = Int(firstLength) else {
                throw HTTPParseError(status: 400, message: "invalid Content-Length")
            }
            guard length <= limits.maxBodyBytes else {
                throw HTTPParseError(status: 413, message: "request body of \(length) bytes exceeds the limit of \(limits.maxBodyBytes) bytes")
            }
            contentLength = length
        }

        let keepAlive: Bool
        if headers.hasToken("close", in: "connection") {
            keepAlive = false
        } else if version == .http1_0 {
            keepAlive = headers.hasToken("keep-alive", in: "connection")
        } else {
            keepAlive = true
        }
        let expectsContinue = version == .http1_1 && (headers["expect"].map { HTTPHeaders.namesEqual($0, "100-continue") } ?? false)
        return HTTP1RequestHead(
            method: method, target: target, version: version, headers: headers, keepAlive: keepAlive,
            expectsContinue: expectsContinue, contentLength: contentLength)
    }
}

/// tchar of RFC 9110 5.6.2.
@inline(__always) func isTokenChar(_ c: UInt8) -> Bool {
    switch c {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
        return true
    default:
        return "!#$%&'*+-.^_`|~".utf8.contains(c)
    }
}

extension StringProtocol {
    var trimmingASCIISpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}

extension Character {
    var isASCIIDigitCharacter: Bool { isASCII && isNumber }
}
