// One HTTP/2 connection driven by an nghttp2 1.52 server session. nghttp2 does no I/O here: received
// bytes are pushed in with nghttp2_session_mem_recv and outgoing frames are pulled with
// nghttp2_session_mem_send, so the NIO channel owns the socket. The C callbacks capture nothing; they
// recover this object from the session's user_data (an unretained pointer: the session never outlives
// its owner, which deletes it in deinit). Everything runs on the connection's event loop.
import CNghttp2
import NIOCore

protocol HTTP2ConnectionDelegate: AnyObject {
    /// A request on `streamID` is complete; answer later with `submitResponse(streamID:_:)`.
    func http2Request(_ request: HTTPRequest, streamID: Int32)
}

final class HTTP2Connection {
    /// Per-stream request accumulation.
    private final class Stream {
        var method = ""
        var path = ""
        var authority: String?
        var headers = HTTPHeaders()
        var headerBytes = 0
        var body: [UInt8] = []
        var bodyBytesSeen = 0
        /// Set when the request broke a limit: answered with this status instead of the handler.
        var rejection: (status: Int, message: String)?
        var dispatched = false
        /// When the HEADERS frame began; bounds how long a client may take to finish the request.
        let startedAt = NIODeadline.now()
        var response: [UInt8] = []
        var responseOffset = 0
    }

    private var session: OpaquePointer?
    private var streams: [Int32: Stream] = [:]
    private let limits: HTTP1Limits
    private let remoteAddress: String?
    /// Strong (a weak load per request is measurable); the owner clears it when it goes away.
    var delegate: HTTP2ConnectionDelegate?
    /// Set after an unrecoverable protocol error or once GOAWAY was sent and all streams are done.
    private(set) var failed = false
    var goingAway = false

    /// Number of streams that are open or waiting for their handler.
    var activeStreamCount: Int { streams.count }

    init(limits: HTTP1Limits, maxConcurrentStreams: Int, remoteAddress: String?) {
        self.limits = limits
        self.remoteAddress = remoteAddress

        var callbacks: OpaquePointer?
        nghttp2_session_callbacks_new(&callbacks)
        defer { nghttp2_session_callbacks_del(callbacks) }
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks) { _, frame, userData in
            HTTP2Connection.from(userData).onBeginHeaders(frame!)
        }
        nghttp2_session_callbacks_set_on_header_callback(callbacks) { _, frame, name, nameLength, value, valueLength, _, userData in
            HTTP2Connection.from(userData).onHeader(
                frame!, name: UnsafeBufferPointer(start: name, count: nameLength),
                value: UnsafeBufferPointer(start: value, count: valueLength))
        }
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) { _, _, streamID, data, length, userData in
            HTTP2Connection.from(userData).onData(streamID: streamID, UnsafeBufferPointer(start: data, count: length))
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, userData in
            HTTP2Connection.from(userData).onFrame(frame!)
        }
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, streamID, _, userData in
            HTTP2Connection.from(userData).streams[streamID] = nil
            return 0
        }

        var option: OpaquePointer?
        nghttp2_option_new(&option)
        defer { nghttp2_option_del(option) }
        // Bounds the headers nghttp2 itself buffers (HPACK decoding) beyond our per-field checks.
        nghttp2_option_set_max_deflate_dynamic_table_size(option, 4096)

        nghttp2_session_server_new2(&session, callbacks, Unmanaged.passUnretained(self).toOpaque(), option)

        var settings = [
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), value: UInt32(maxConcurrentStreams)),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: 1 << 20),
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue), value: UInt32(limits.maxHeaderBytes)),
        ]
        nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &settings, settings.count)
    }

    deinit { nghttp2_session_del(session) }

    private static func from(_ userData: UnsafeMutableRawPointer?) -> HTTP2Connection {
        Unmanaged<HTTP2Connection>.fromOpaque(userData!).takeUnretainedValue()
    }

    /// Applies an h2c upgrade: the client's HTTP2-Settings payload, and the HTTP/1.1 request that becomes stream 1.
    func upgrade(settingsPayload: [UInt8], request: HTTPRequest) -> Bool {
        let rc = settingsPayload.withUnsafeBufferPointer {
            nghttp2_session_upgrade2(session, $0.baseAddress, $0.count, request.method == "HEAD" ? 1 : 0, nil)
        }
        guard rc == 0 else { return false }
        let stream = Stream()
        stream.method = request.method
        stream.dispatched = true
        streams[1] = stream
        var upgraded = request
        upgraded.version = .http2
        delegate?.http2Request(upgraded, streamID: 1)
        return true
    }

    /// Feeds received bytes to nghttp2. Returns false on a connection error (the caller flushes and closes).
    func receive(_ buffer: ByteBuffer) -> Bool {
        guard !failed else { return false }
        let rc = buffer.withUnsafeReadableBytes { raw in
            nghttp2_session_mem_recv(session, raw.bindMemory(to: UInt8.self).baseAddress, raw.count)
        }
        if rc < 0 { failed = true }
        return rc >= 0
    }

    /// Start of the oldest request still being received (headers or body incomplete), or nil.
    var oldestIncompleteRequestStart: NIODeadline? {
        streams.values.lazy.filter { !$0.dispatched }.map(\.startedAt).min()
    }

    /// Storage for outgoing frames, reused across flushes (see `pendingOutput`).
    private var outputBuffer: ByteBuffer?

    /// Collects every frame nghttp2 wants to send into one buffer (nil when there is nothing).
    func pendingOutput(allocator: ByteBufferAllocator) -> ByteBuffer? {
        var wrote = false
        while true {
            var data: UnsafePointer<UInt8>?
            let n = nghttp2_session_mem_send(session, &data)
            if n < 0 { failed = true; break }
            if n == 0 { break }
            if !wrote {
                wrote = true
                // Reuses the last flush's storage once NIO has written it (clear() copies nothing then and
                // allocates fresh storage if the write is still pending): a burst of responses otherwise
                // grows a new buffer to ~100 KB per flush, and malloc trims and regrows its arena each time.
                if outputBuffer == nil { outputBuffer = allocator.buffer(capacity: max(n, 16 << 10)) } else { outputBuffer!.clear() }
            }
            outputBuffer!.writeBytes(UnsafeRawBufferPointer(start: data, count: n))
        }
        guard wrote, let out = outputBuffer else { return nil }
        if out.capacity > Self.retainedOutputCapacity { outputBuffer = nil }  // what a connection keeps is bounded
        return out
    }

    /// Largest output buffer a connection keeps between flushes.
    static let retainedOutputCapacity = 512 << 10

    /// False once nghttp2 has nothing more to read or write (after GOAWAY, or a fatal error).
    var isFinished: Bool {
        failed || (nghttp2_session_want_read(session) == 0 && nghttp2_session_want_write(session) == 0)
    }

    /// Graceful close: GOAWAY naming the last stream we took; in-flight streams still complete.
    func goAway() {
        guard !goingAway else { return }
        goingAway = true
        nghttp2_submit_goaway(
            session, UInt8(NGHTTP2_FLAG_NONE.rawValue), nghttp2_session_get_last_proc_stream_id(session),
            NGHTTP2_NO_ERROR.rawValue, nil, 0)
    }

    func submitResponse(streamID: Int32, _ response: HTTPResponse) {
        guard let stream = streams[streamID] else { return }  // reset by the client meanwhile
        let noBody = stream.method == "HEAD" || response.status == 204 || response.status == 304
        stream.response = noBody ? [] : response.body
        stream.responseOffset = 0

        var fields: [(String, String)] = [(":status", String(response.status))]
        for (name, value) in response.headers {
            let lower = name.lowercased()
            switch lower {
            case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "content-length":
                continue
            default:
                fields.append((lower, value))
            }
        }
        if response.status != 204 && response.status != 304 {
            fields.append(("content-length", String(response.body.count)))
        }
        // One contiguous storage for names and values; nghttp2_submit_response copies them.
        var storage: [UInt8] = []
        for (n, v) in fields {
            storage.append(contentsOf: n.utf8)
            storage.append(contentsOf: v.utf8)
        }
        storage.withUnsafeMutableBufferPointer { bytes in
            var nva: [nghttp2_nv] = []
            nva.reserveCapacity(fields.count)
            var offset = 0
            for (n, v) in fields {
                let nameCount = n.utf8.count, valueCount = v.utf8.count
                nva.append(nghttp2_nv(
                    name: bytes.baseAddress! + offset, value: bytes.baseAddress! + offset + nameCount,
                    namelen: nameCount, valuelen: valueCount, flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)))
                offset += nameCount + valueCount
            }
            if stream.response.isEmpty {
                nghttp2_submit_response(session, streamID, nva, nva.count, nil)
            } else {
                var provider = nghttp2_data_provider()
                provider.read_callback = { _, streamID, buffer, length, dataFlags, _, userData in
                    HTTP2Connection.from(userData).readResponseBody(
                        streamID: streamID, into: buffer!, capacity: length, flags: dataFlags!)
                }
                nghttp2_submit_response(session, streamID, nva, nva.count, &provider)
            }
        }
    }

    // MARK: nghttp2 callbacks (called synchronously from mem_recv / mem_send)

    private func onBeginHeaders(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let hd = frame.pointee.hd
        if hd.type == UInt8(NGHTTP2_HEADERS.rawValue), frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST {
            if goingAway { return 0 }
            streams[hd.stream_id] = Stream()
        }
        return 0
    }

    private func onHeader(
        _ frame: UnsafePointer<nghttp2_frame>, name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>
    ) -> Int32 {
        guard let stream = streams[frame.pointee.hd.stream_id], !stream.dispatched else { return 0 }
        if stream.rejection != nil { return 0 }
        stream.headerBytes += name.count + value.count + 32  // RFC 9113 6.5.2 accounting
        if stream.headerBytes > limits.maxHeaderBytes {
            stream.rejection = (431, "request header fields exceed \(limits.maxHeaderBytes) bytes")
            return 0
        }
        if stream.headers.count >= limits.maxHeaderCount {
            stream.rejection = (431, "more than \(limits.maxHeaderCount) header fields")
            return 0
        }
        // Pseudo-headers are matched on bytes; only the fields the request keeps become Strings.
        if name.first == UInt8(ascii: ":") {
            if name.elementsEqual(":method".utf8) {
                stream.method = String(decoding: value, as: UTF8.self)
            } else if name.elementsEqual(":path".utf8) {
                stream.path = String(decoding: value, as: UTF8.self)
            } else if name.elementsEqual(":authority".utf8) {
                stream.authority = String(decoding: value, as: UTF8.self)
            }
            return 0
        }
        stream.headers.add(String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self))
        return 0
    }

    private func onData(streamID: Int32, _ data: UnsafeBufferPointer<UInt8>) -> Int32 {
        guard let stream = streams[streamID], !stream.dispatched else { return 0 }
        stream.bodyBytesSeen += data.count
        if stream.rejection == nil {
            if stream.bodyBytesSeen > limits.maxBodyBytes {
                stream.rejection = (413, "request body exceeds the limit of \(limits.maxBodyBytes) bytes")
                stream.body = []
                // Answer now; nghttp2 resets the rest of the upload once the response has ended.
                respondRejected(streamID: streamID, stream)
            } else {
                stream.body.append(contentsOf: data)
            }
        }
        return 0
    }

    private func onFrame(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let hd = frame.pointee.hd
        let isHeaders = hd.type == UInt8(NGHTTP2_HEADERS.rawValue)
        guard isHeaders || hd.type == UInt8(NGHTTP2_DATA.rawValue) else { return 0 }
        guard let stream = streams[hd.stream_id], !stream.dispatched else { return 0 }
        if isHeaders, stream.rejection == nil, let length = stream.headers["content-length"].flatMap(Int.init),
           length > limits.maxBodyBytes {
            stream.rejection = (413, "request body of \(length) bytes exceeds the limit of \(limits.maxBodyBytes) bytes")
            respondRejected(streamID: hd.stream_id, stream)
            return 0
        }
        if isHeaders, stream.rejection != nil {
            respondRejected(streamID: hd.stream_id, stream)
            return 0
        }
        guard hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0 else { return 0 }
        stream.dispatched = true
        var headers = stream.headers
        if let authority = stream.authority, !headers.contains("host") { headers.add("host", authority) }
        let request = HTTPRequest(
            method: stream.method, target: stream.path, headers: headers, body: stream.body,
            remoteAddress: remoteAddress, version: .http2)
        stream.body = []
        delegate?.http2Request(request, streamID: hd.stream_id)
        return 0
    }

    private func respondRejected(streamID: Int32, _ stream: Stream) {
        guard !stream.dispatched, let rejection = stream.rejection else { return }
        stream.dispatched = true
        submitResponse(streamID: streamID, .problem(status: rejection.status, detail: rejection.message))
    }

    private func readResponseBody(
        streamID: Int32, into buffer: UnsafeMutablePointer<UInt8>, capacity: Int, flags: UnsafeMutablePointer<UInt32>
    ) -> Int {
        guard let stream = streams[streamID] else {
            return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        }
        let remaining = stream.response.count - stream.responseOffset
        let n = min(remaining, capacity)
        if n > 0 {
            stream.response.withUnsafeBufferPointer { src in
                buffer.update(from: src.baseAddress! + stream.responseOffset, count: n)
            }
        }
        stream.responseOffset += n
        if stream.responseOffset == stream.response.count {
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
            stream.response = []
        }
        return n
    }
}
