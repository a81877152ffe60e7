// Per-connection protocol engine: sniffs HTTP/2 prior knowledge vs HTTP/1.x, runs the HTTP/1.x
// request/response cycle (keep-alive, pipelining, chunked bodies, 100-continue, h2c upgrade) and
// hands HTTP/2 bytes to `HTTP2Connection`. Lives on one event loop; all state is loop-confined
// (hence `@unchecked Sendable`: closures that capture `self` only run on that loop).
import Logging
import NIOCore

final class HTTPConnectionHandler: ChannelDuplexHandler, HTTP2ConnectionDelegate, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Settings {
        var limits: HTTP1Limits
        var maxConcurrentStreams: Int
        var idleTimeout: TimeAmount
        var requestTimeout: TimeAmount
        var handler: any HTTPHandler
        var executor: EventLoopTaskExecutor?
        var isTLS: Bool
        var logger: Logger
    }

    private enum Mode { case sniffing, http1, http2, closed }

    static let http2Preface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    private let settings: Settings
    private var mode = Mode.sniffing
    private var context: ChannelHandlerContext!
    private var buffer = ByteBuffer()
    private var parser: HTTP1RequestParser
    private var h2: HTTP2Connection?
    /// An HTTP/1 request is being handled or its response written: parsing and reading are paused.
    private var http1Busy = false
    private var readHeld = false
    /// An HTTP/2 flush is queued on the event loop (responses completing together share one write).
    private var http2FlushQueued = false
    private var quiescing = false
    private var idleTimer: Scheduled<Void>?
    private var requestTimer: Scheduled<Void>?
    private var remoteAddress: String?

    init(settings: Settings) {
        self.settings = settings
        parser = HTTP1RequestParser(limits: settings.limits)
    }

    // MARK: channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if let address = context.remoteAddress, let ip = address.ipAddress, let port = address.port {
            remoteAddress = address.protocol == .inet6 ? "[\(ip)]:\(port)" : "\(ip):\(port)"
        }
        armIdleTimer()
    }

    func channelInactive(context: ChannelHandlerContext) {
        mode = .closed
        cancelTimers()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        mode = .closed
        cancelTimers()
        h2?.delegate = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        settings.logger.debug("connection error: \(error)")
        close()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        switch mode {
        case .closed:
            return
        case .http2:
            feedHTTP2(bytes)
        case .sniffing, .http1:
            if buffer.readableBytes == 0 {
                buffer = bytes
            } else {
                buffer.writeBuffer(&bytes)
            }
            if mode == .sniffing { sniff() } else { processHTTP1() }
        }
    }

    func read(context: ChannelHandlerContext) {
        if mode == .http1 && http1Busy {
            readHeld = true  // back-pressure: no reading ahead of the in-flight request
        } else {
            context.read()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        quiescing = true
        switch mode {
        case .closed: break
        case .sniffing, .http1: if !http1Busy { close() }  // else closes after the in-flight response
        case .http2:
            h2?.goAway()
            flushHTTP2()
        }
    }

    // MARK: protocol selection

    private func sniff() {
        let count = min(buffer.readableBytes, Self.http2Preface.count)
        let matches = buffer.readableBytesView.prefix(count).elementsEqual(Self.http2Preface.prefix(count))
        if !matches {
            mode = .http1
            processHTTP1()
        } else if count == Self.http2Preface.count {
            let initial = buffer
            buffer = ByteBuffer()
            startHTTP2(initial: initial, upgrade: nil)
        } else {
            armRequestTimer()
        }
    }

    private func startHTTP2(initial: ByteBuffer?, upgrade: (settings: [UInt8], request: HTTPRequest)?) {
        cancelTimers()
        let connection = HTTP2Connection(
            limits: settings.limits, maxConcurrentStreams: settings.maxConcurrentStreams, remoteAddress: remoteAddress)
        connection.delegate = self
        h2 = connection
        mode = .http2
        if readHeld {
            readHeld = false
            context.read()
        }
        if let upgrade, !connection.upgrade(settingsPayload: upgrade.settings, request: upgrade.request) {
            settings.logger.debug("h2c upgrade rejected by nghttp2")
            close()
            return
        }
        if let initial, initial.readableBytes > 0 {
            feedHTTP2(initial)
        } else {
            flushHTTP2()
        }
    }

    // MARK: HTTP/2

    private func feedHTTP2(_ bytes: ByteBuffer) {
        guard let h2 else { return }
        if !h2.receive(bytes) {
            settings.logger.debug("HTTP/2 protocol error from \(remoteAddress ?? "?")")
        }
        flushHTTP2()
    }

    private func flushHTTP2() {
        guard let h2, mode == .http2 else { return }
        let output = h2.pendingOutput(allocator: context.channel.allocator)
        if h2.isFinished {
            mode = .closed
            cancelTimers()
            if let output {
                context.writeAndFlush(wrapOutboundOut(output)).whenComplete { [self] _ in context.close(promise: nil) }
            } else {
                context.close(promise: nil)
            }
            return
        }
        if let output { context.writeAndFlush(wrapOutboundOut(output), promise: nil) }
        if h2.activeStreamCount == 0 {
            armIdleTimer()
        } else {
            cancelIdleTimer()
            if h2.oldestIncompleteRequestStart != nil { armRequestTimer() }
        }
    }

    /// Defers the flush behind the handler tasks already queued on the loop, so a burst of responses
    /// goes out in one write instead of one syscall each.
    private func queueHTTP2Flush() {
        guard !http2FlushQueued else { return }
        http2FlushQueued = true
        context.eventLoop.execute { [self] in
            http2FlushQueued = false
            flushHTTP2()
        }
    }

    func http2Request(_ request: HTTPRequest, streamID: Int32) {
        runHandler(request) { [self] response in
            guard mode == .http2, let h2 else { return }
            h2.submitResponse(streamID: streamID, response)
            queueHTTP2Flush()
        }
    }

    // MARK: HTTP/1.x

    private func processHTTP1() {
        while mode == .http1 && !http1Busy {
            let event: HTTP1RequestParser.Event
            do {
                event = try parser.next(&buffer)
            } catch {
                failHTTP1(error)
                return
            }
            switch event {
            case .needMoreData:
                if parser.isMidRequest || buffer.readableBytes > 0 { armRequestTimer() } else { armIdleTimer() }
                if buffer.readableBytes == 0 { buffer.clear() }
                return
            case .head(let head):
                armRequestTimer()
                if head.expectsContinue, head.contentLength != 0, buffer.readableBytes == 0 {
                    var out = context.channel.allocator.buffer(capacity: 32)
                    out.writeString("HTTP/1.1 100 Continue\r\n\r\n")
                    context.writeAndFlush(wrapOutboundOut(out), promise: nil)
                }
            case .complete(let head, let body):
                cancelTimers()
                let request = HTTPRequest(
                    method: head.method, target: head.target, headers: head.headers, body: body,
                    remoteAddress: remoteAddress, version: head.version)
                if let settingsPayload = h2cUpgradeSettings(head) {
                    var out = context.channel.allocator.buffer(capacity: 80)
                    out.writeString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
                    context.write(wrapOutboundOut(out), promise: nil)
                    let rest = buffer
                    buffer = ByteBuffer()
                    startHTTP2(initial: rest, upgrade: (settingsPayload, request))
                    return
                }
                http1Busy = true
                let keepAlive = head.keepAlive
                runHandler(request) { [self] response in
                    writeHTTP1Response(response, for: head, keepAlive: keepAlive && !quiescing)
                }
            }
        }
    }

    /// The decoded HTTP2-Settings payload when `head` asks for a valid h2c upgrade (cleartext only).
    private func h2cUpgradeSettings(_ head: HTTP1RequestHead) -> [UInt8]? {
        guard !settings.isTLS, !quiescing, head.version == .http1_1,
              head.headers.hasToken("h2c", in: "upgrade"),
              head.headers.hasToken("upgrade", in: "connection"),
              head.headers.hasToken("http2-settings", in: "connection") else { return nil }
        let values = head.headers.values(for: "http2-settings")
        guard values.count == 1 else { return nil }
        return base64URLDecode(values[0])
    }

    private func writeHTTP1Response(_ response: HTTPResponse, for head: HTTP1RequestHead, keepAlive: Bool) {
        guard mode == .http1 else { return }
        let noBody = head.method == "HEAD" || response.status == 204 || response.status == 304
        let bodyCount = noBody ? 0 : response.body.count
        var out = context.channel.allocator.buffer(capacity: 128 + bodyCount + response.headers.count * 40)
        out.writeString(head.version == .http1_0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        out.writeString(String(response.status))
        out.writeString(" ")
        out.writeString(reasonPhrase(response.status))
        out.writeString("\r\n")
        for (name, value) in response.headers {
            if HTTPHeaders.namesEqual(name, "content-length") || HTTPHeaders.namesEqual(name, "connection")
                || HTTPHeaders.namesEqual(name, "transfer-encoding") { continue }
            out.writeString(name)
            out.writeString(": ")
            out.writeString(value)
            out.writeString("\r\n")
        }
        if response.status != 204 && response.status != 304 {
            out.writeString("content-length: ")
            out.writeString(String(response.body.count))
            out.writeString("\r\n")
        }
        if !keepAlive {
            out.writeString("connection: close\r\n")
        } else if head.version == .http1_0 {
            out.writeString("connection: keep-alive\r\n")
        }
        out.writeString("\r\n")
        if !noBody { out.writeBytes(response.body) }
        armRequestTimer()  // bounds how long a slow reader may take to accept the response
        context.writeAndFlush(wrapOutboundOut(out)).whenComplete { [self] result in
            cancelRequestTimer()
            guard mode == .http1 else { return }
            if case .failure = result {
                close()
            } else if !keepAlive || quiescing {
                close()
            } else {
                http1Busy = false
                if readHeld {
                    readHeld = false
                    context.read()
                }
                processHTTP1()
            }
        }
    }

    /// Answers a malformed or over-limit request with its status and closes the connection.
    private func failHTTP1(_ error: HTTPParseError) {
        settings.logger.debug("rejecting request from \(remoteAddress ?? "?"): \(error)")
        writeErrorAndClose(status: error.status, message: error.message)
    }

    private func writeErrorAndClose(status: Int, message: String) {
        mode = .closed
        cancelTimers()
        let body = HTTPResponse.problem(status: status, detail: message).body
        var out = context.channel.allocator.buffer(capacity: 160 + body.count)
        out.writeString("HTTP/1.1 \(status) \(reasonPhrase(status))\r\n")
        out.writeString("content-type: application/problem+json\r\ncontent-length: \(body.count)\r\n")
        out.writeString("connection: close\r\n\r\n")
        out.writeBytes(body)
        context.writeAndFlush(wrapOutboundOut(out)).whenComplete { [self] _ in context.close(promise: nil) }
    }

    // MARK: handler invocation

    private func runHandler(_ request: HTTPRequest, then deliver: @escaping @Sendable (HTTPResponse) -> Void) {
        let handler = settings.handler
        let loop = context.eventLoop
        let operation: @Sendable () async -> Void = {
            let response = await handler.handle(request)
            if loop.inEventLoop {
                deliver(response)
            } else {
                loop.execute { deliver(response) }
            }
        }
        if let executor = settings.executor, handler.answersWithoutSuspending {
            // Deferred (not answered inside the caller, which may be an nghttp2 callback) but without a
            // task when the handler answers synchronously.
            loop.execute {
                if let response = handler.handleWithoutSuspending(request) {
                    deliver(response)
                } else {
                    Task(executorPreference: executor, operation: operation)
                }
            }
        } else if let executor = settings.executor {
            Task(executorPreference: executor, operation: operation)
        } else {
            Task(operation: operation)
        }
    }

    // MARK: timers and closing

    private func close() {
        guard mode != .closed else { return }
        mode = .closed
        cancelTimers()
        context.close(promise: nil)
    }

    private func armIdleTimer() {
        cancelRequestTimer()
        guard idleTimer == nil, mode != .closed else { return }
        idleTimer = context.eventLoop.scheduleTask(in: settings.idleTimeout) { [self] in
            idleTimer = nil
            if mode == .http2, let h2 {
                h2.goAway()
                flushHTTP2()
            }
            close()
        }
    }

    private func armRequestTimer() {
        cancelIdleTimer()
        guard requestTimer == nil, mode != .closed else { return }
        requestTimer = context.eventLoop.scheduleTask(in: settings.requestTimeout) { [self] in
            requestTimer = nil
            if mode == .http2, let h2 {
                // Slow senders on HTTP/2: give up on the connection once a stream's request is overdue.
                if let oldest = h2.oldestIncompleteRequestStart, NIODeadline.now() - oldest >= settings.requestTimeout {
                    settings.logger.debug("HTTP/2 request timeout for \(remoteAddress ?? "?")")
                    h2.goAway()
                    flushHTTP2()
                    close()
                } else if h2.oldestIncompleteRequestStart != nil {
                    armRequestTimer()
                }
                return
            }
            if (mode == .http1 || mode == .sniffing) && !http1Busy {
                settings.logger.debug("request timeout for \(remoteAddress ?? "?")")
                writeErrorAndClose(status: 408, message: "request not received within \(settings.requestTimeout.nanoseconds / 1_000_000) ms")
            } else {
                close()
            }
        }
    }

    private func cancelIdleTimer() {
        idleTimer?.cancel()
        idleTimer = nil
    }

    private func cancelRequestTimer() {
        requestTimer?.cancel()
        requestTimer = nil
    }

    private func cancelTimers() {
        cancelIdleTimer()
        cancelRequestTimer()
    }
}

/// Decodes base64url (RFC 4648 section 5), padding optional, as used by HTTP2-Settings. Nil if invalid.
func base64URLDecode(_ text: String) -> [UInt8]? {
    var out: [UInt8] = []
    var accumulator: UInt32 = 0
    var bits = 0
    for c in text.utf8 {
        let v: UInt32
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): v = UInt32(c - UInt8(ascii: "A"))
        case UInt8(ascii: "a")...UInt8(ascii: "z"): v = UInt32(c - UInt8(ascii: "a")) + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): v = UInt32(c - UInt8(ascii: "0")) + 52
        case UInt8(ascii: "-"), UInt8(ascii: "+"): v = 62
        case UInt8(ascii: "_"), UInt8(ascii: "/"): v = 63
        case UInt8(ascii: "="): continue
        default: return nil
        }
        accumulator = accumulator << 6 | v
        bits += 6
        if bits >= 8 {
            bits -= 8
            out.append(UInt8((accumulator >> UInt32(bits)) & 0xFF))
        }
    }
    return out
}
