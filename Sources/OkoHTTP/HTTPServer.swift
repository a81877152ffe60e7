// OkoHTTP: a small, general HTTP/1.1 + HTTP/2 server (no knowledge of switches; OkoAPI builds on it).
//
// Design
// - Sockets: SwiftNIO. Each accepted connection gets one `HTTPConnectionHandler` (plus a NIOSSL handler
//   first when TLS is configured; ALPN offers h2 and http/1.1). The handler sniffs the first bytes: the
//   HTTP/2 client preface selects HTTP/2, anything else HTTP/1.x. h2c upgrade (Upgrade: h2c +
//   HTTP2-Settings) switches an HTTP/1.1 connection to HTTP/2 after `101`, the upgrading request being
//   answered on stream 1.
// - Threads: all connection state lives on the connection's NIO event loop and is touched only there
//   (that is why the handler and the nghttp2 wrapper are not Sendable-checked). The user's
//   `HTTPHandler` runs as a Swift task; by default with the connection's event loop as its task
//   executor, so a request costs no thread hop (handlers must not block). The response hops back to
//   the event loop if the handler moved elsewhere. A handler that sets `answersWithoutSuspending` is
//   called synchronously from an event-loop job instead (no task per request; nil falls back to a task).
// - HTTP/1.x: own incremental parser (`HTTP1RequestParser`). One request at a time per connection:
//   reads are held while a request is being handled, and the next pipelined request is parsed only
//   after the previous response was written, so responses stay in order and memory is bounded.
// - HTTP/2: nghttp2 1.52 server session per connection (`HTTP2Connection`), driven by
//   nghttp2_session_mem_recv (bytes NIO read) and nghttp2_session_mem_send (frames NIO writes);
//   responses go out with nghttp2_submit_response and a data provider reading the response body.
// - Limits (`HTTPServerConfiguration`): body size (413 naming the limit), header bytes and count (431),
//   SETTINGS_MAX_CONCURRENT_STREAMS, connection count (excess connections are closed at accept), idle
//   timeout, request timeout (from a request's first byte to its last, and for writing the response:
//   slow senders get 408 and slow readers are closed). Malformed HTTP/1 gets 400 (or 501/505) and a
//   close; HTTP/2 protocol errors get GOAWAY from nghttp2 and a close. The server's own error answers
//   are RFC 9457 problem documents, like the handler's.
// - TLS: `HTTPServerConfiguration.TLS.validate()` loads certificate and key up front so a caller (okod's
//   configuration) can report a bad file by name before starting.
// - Shutdown: `shutdown(gracePeriod:)` closes the listener, asks every connection to quiesce (HTTP/1
//   closes after its in-flight response, HTTP/2 sends GOAWAY and finishes open streams), waits for
//   them until the deadline, then closes whatever is left.
import Logging
import NIOCore
import NIOPosix
import Synchronization

public struct HTTPServerConfiguration: Sendable {
    /// PEM certificate chain and private key; when set the server speaks TLS (ALPN h2, http/1.1).
    public struct TLS: Sendable {
        public var certificatePath: String
        public var privateKeyPath: String
        public init(certificatePath: String, privateKeyPath: String) {
            self.certificatePath = certificatePath
            self.privateKeyPath = privateKeyPath
        }
    }

    public var host: String = "127.0.0.1"
    /// 0 picks an ephemeral port (see `HTTPServer.port`).
    public var port: Int = 8080
    public var tls: TLS? = nil
    public var maxBodyBytes: Int = 8 << 20
    public var maxHeaderBytes: Int = 16 << 10
    public var maxHeaderCount: Int = 100
    public var maxConcurrentStreams: Int = 100
    public var maxConnections: Int = 1024
    public var idleTimeout: TimeAmount = .seconds(60)
    public var requestTimeout: TimeAmount = .seconds(15)
    /// Run handlers with the connection's event loop as task executor (no thread hop). Set false for
    /// handlers that may block; they then run on the global concurrent executor.
    public var runHandlersOnEventLoop: Bool = true
    public var logger: Logger = Logger(label: "oko.http")

    public init(host: String = "127.0.0.1", port: Int = 8080) {
        self.host = host
        self.port = port
    }
}

/// Errors from starting the server.
public enum HTTPServerError: Error, CustomStringConvertible {
    case alreadyStarted
    case tlsSetupFailed(String)

    public var description: String {
        switch self {
        case .alreadyStarted: "the HTTP server was already started"
        case .tlsSetupFailed(let why): "TLS setup failed: \(why)"
        }
    }
}

public final class HTTPServer: Sendable {
    public let configuration: HTTPServerConfiguration
    let handler: any HTTPHandler
    private let group: any EventLoopGroup
    private let ownsGroup: Bool
    private let executors: [ObjectIdentifier: EventLoopTaskExecutor]

    private struct State {
        var listener: (any Channel)?
        var connections: [ObjectIdentifier: any Channel] = [:]
        var shuttingDown = false
    }
    private let state = Mutex(State())

    /// Creates a server; with no `group`, it makes and later shuts down its own `threads`-thread group.
    public init(
        configuration: HTTPServerConfiguration, handler: any HTTPHandler, group: (any EventLoopGroup)? = nil,
        threads: Int = 1
    ) {
        self.configuration = configuration
        self.handler = handler
        if let group {
            self.group = group
            ownsGroup = false
        } else {
            self.group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
            ownsGroup = true
        }
        var executors: [ObjectIdentifier: EventLoopTaskExecutor] = [:]
        for loop in self.group.makeIterator() {
            executors[ObjectIdentifier(loop)] = EventLoopTaskExecutor(loop)
        }
        self.executors = executors
    }

    /// The bound port (useful with port 0), or nil before `start`.
    public var port: Int? { state.withLock { $0.listener?.localAddress?.port } }

    /// Number of open connections.
    public var connectionCount: Int { state.withLock { $0.connections.count } }

    public func start() async throws {
        guard state.withLock({ $0.listener == nil && !$0.shuttingDown }) else { throw HTTPServerError.alreadyStarted }
        let tls = try configuration.tls.map { try TLSSupport.makeContext($0) }
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 4)
            .childChannelInitializer { [self] channel in
                self.initializeConnection(channel, tls: tls)
            }
        let listener = try await bootstrap.bind(host: configuration.host, port: configuration.port).get()
        state.withLock { $0.listener = listener }
        configuration.logger.info("listening", metadata: ["address": "\(listener.localAddress.map { "\($0)" } ?? "?")"])
    }

    private func initializeConnection(_ channel: any Channel, tls: TLSSupport.Context?) -> EventLoopFuture<Void> {
        let accepted = state.withLock { state -> Bool in
            guard !state.shuttingDown, state.connections.count < configuration.maxConnections else { return false }
            state.connections[ObjectIdentifier(channel)] = channel
            return true
        }
        guard accepted else {
            configuration.logger.warning("connection refused: limit of \(configuration.maxConnections) connections reached or shutting down")
            return channel.close()
        }
        channel.closeFuture.whenComplete { [self] _ in
            _ = state.withLock { $0.connections.removeValue(forKey: ObjectIdentifier(channel)) }
        }
        let settings = HTTPConnectionHandler.Settings(
            limits: HTTP1Limits(
                maxHeaderBytes: configuration.maxHeaderBytes, maxHeaderCount: configuration.maxHeaderCount,
                maxBodyBytes: configuration.maxBodyBytes),
            maxConcurrentStreams: configuration.maxConcurrentStreams,
            idleTimeout: configuration.idleTimeout, requestTimeout: configuration.requestTimeout,
            handler: handler,
            executor: configuration.runHandlersOnEventLoop ? executors[ObjectIdentifier(channel.eventLoop)] : nil,
            isTLS: tls != nil, logger: configuration.logger)
        return channel.eventLoop.makeCompletedFuture {
            if let tls { try TLSSupport.addHandler(tls, to: channel) }
            try channel.pipeline.syncOperations.addHandler(HTTPConnectionHandler(settings: settings))
        }
    }

    /// Stops accepting, lets in-flight requests finish for up to `gracePeriod`, then closes everything.
    public func shutdown(gracePeriod: Duration = .seconds(10)) async {
        let (listener, connections) = state.withLock { state in
            state.shuttingDown = true
            return (state.listener, Array(state.connections.values))
        }
        try? await listener?.close()
        for channel in connections {
            channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
        let clock = ContinuousClock()
        let deadline = clock.now + gracePeriod
        while clock.now < deadline, connectionCount > 0 {
            try? await Task.sleep(for: .milliseconds(10))
        }
        let leftovers = state.withLock { Array($0.connections.values) }
        if !leftovers.isEmpty {
            configuration.logger.warning("closing \(leftovers.count) connections at the shutdown deadline")
        }
        for channel in leftovers { try? await channel.close() }
        if ownsGroup { try? await group.shutdownGracefully() }
    }
}

/// Runs Swift tasks on one NIO event loop (task executor preference), so a handler invoked from a
/// connection runs on that connection's thread.
final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    let eventLoop: any EventLoop
    init(_ eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
