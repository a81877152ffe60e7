// TCP transport for OpenFlow sessions on swift-nio: a passive listener (controllers connect to us, e.g.
// `ovs-ofctl ... tcp:127.0.0.1:6653`) and an active connector (we connect to a controller and reconnect
// with exponential back-off). Each connection gets one `OpenFlowSession`, used only on its channel's
// event loop; the agent factory is called on that loop too.

import NIOCore
import NIOPosix
import Synchronization

/// Drives one `OpenFlowSession` from a NIO channel.
final class OpenFlowChannelHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let session: OpenFlowSession
    private var keepAlive: RepeatedTask?
    private let onClose: () -> Void
    /// Kept so switch events arriving later (`notify`) can be written; only touched on the event loop.
    private var context: ChannelHandlerContext?

    init(session: OpenFlowSession, onClose: @escaping () -> Void = {}) {
        self.session = session
        self.onClose = onClose
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelActive(context: ChannelHandlerContext) {
        let hello = session.start()
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: hello)), promise: nil)
        let loopBoundSelf = NIOLoopBound(self, eventLoop: context.eventLoop)
        let loopBoundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        keepAlive = context.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            loopBoundSelf.value.deliver(loopBoundSelf.value.session.tick(), context: loopBoundContext.value)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        deliver(session.receive(buffer.readableBytesView), context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        keepAlive?.cancel()
        keepAlive = nil
        session.close()
        onClose()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    /// Sends an asynchronous switch event if this connection's role receives it. Event loop only.
    func notify(_ event: MessageBody) {
        if let context, let bytes = session.notify(event) {
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
        }
    }

    private func deliver(_ output: OpenFlowSession.Output, context: ChannelHandlerContext) {
        for message in output.messages {
            context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: message)), promise: nil)
        }
        if !output.messages.isEmpty { context.flush() }
        if output.close { context.close(promise: nil) }
    }
}

/// Accepts OpenFlow controller connections on a TCP address.
public final class OpenFlowListener: Sendable {
    public typealias AgentFactory = @Sendable () -> SwitchAgent

    private let group: EventLoopGroup
    private let roles: ControllerRoles
    private let makeAgent: AgentFactory
    private let channel = Mutex<Channel?>(nil)
    private let connections = Mutex<[ObjectIdentifier: Connection]>([:])

    private struct Connection: Sendable {
        var channel: Channel
        var handler: NIOLoopBound<OpenFlowChannelHandler>
    }

    /// Number of controller connections currently open.
    public var connectionCount: Int { connections.withLock { $0.count } }

    /// Sends a switch event (PACKET_IN, FLOW_REMOVED, PORT_STATUS) to every connection whose role
    /// receives it. Callable from any thread; each write happens on its connection's event loop.
    public func broadcast(_ event: MessageBody) {
        for connection in connections.withLock({ Array($0.values) }) {
            let handler = connection.handler
            connection.channel.eventLoop.execute { handler.value.notify(event) }
        }
    }

    public init(group: EventLoopGroup, roles: ControllerRoles = ControllerRoles(), makeAgent: @escaping AgentFactory) {
        self.group = group
        self.roles = roles
        self.makeAgent = makeAgent
    }

    /// Binds and starts accepting; returns the bound port (useful with port 0).
    public func start(host: String = "127.0.0.1", port: Int = 6653) async throws -> Int {
        let roles = self.roles
        let makeAgent = self.makeAgent
        let register: @Sendable (Channel, OpenFlowChannelHandler) -> Void = { [weak self] channel, handler in
            guard let self else { return }
            let key = ObjectIdentifier(channel)
            let connection = Connection(channel: channel, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop))
            self.connections.withLock { $0[key] = connection }
            channel.closeFuture.whenComplete { [weak self] _ in
                _ = self?.connections.withLock { $0.removeValue(forKey: key) }
            }
        }
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 16)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let session = OpenFlowSession(agent: makeAgent(), roles: roles)
                    let handler = OpenFlowChannelHandler(session: session)
                    try channel.pipeline.syncOperations.addHandler(handler)
                    register(channel, handler)
                }
            }
        let bound = try await bootstrap.bind(host: host, port: port).get()
        channel.withLock { $0 = bound }
        return bound.localAddress?.port ?? port
    }

    public func stop() async throws {
        let bound = channel.withLock { channel in
            defer { channel = nil }
            return channel
        }
        try await bound?.close()
    }
}

/// Keeps an outgoing connection to a controller open, reconnecting with exponential back-off
/// (`initialDelay` doubling up to `maxDelay`, reset after a connection succeeds).
public final class OpenFlowConnector: Sendable {
    private struct State {
        var stopped = false
        var delay: TimeAmount
        var channel: Channel?
        /// The current connection's handler, for `broadcast`.
        var handler: NIOLoopBound<OpenFlowChannelHandler>?
        var attempts = 0
    }

    private let group: EventLoopGroup
    private let host: String
    private let port: Int
    private let roles: ControllerRoles
    private let makeAgent: OpenFlowListener.AgentFactory
    private let initialDelay: TimeAmount
    private let maxDelay: TimeAmount
    private let state: Mutex<State>

    public init(group: EventLoopGroup, host: String, port: Int = 6653, roles: ControllerRoles = ControllerRoles(),
                initialDelay: TimeAmount = .milliseconds(100), maxDelay: TimeAmount = .seconds(8),
                makeAgent: @escaping OpenFlowListener.AgentFactory) {
        self.group = group
        self.host = host
        self.port = port
        self.roles = roles
        self.makeAgent = makeAgent
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.state = Mutex(State(delay: initialDelay))
    }

    /// Connection attempts made so far.
    public var attempts: Int { state.withLock { $0.attempts } }

    public func start() { connect() }

    /// Sends a switch event (PACKET_IN, FLOW_REMOVED, PORT_STATUS) to the controller if connected and its
    /// role receives it. Callable from any thread; the write happens on the connection's event loop.
    public func broadcast(_ event: MessageBody) {
        guard let handler = state.withLock({ $0.handler }) else { return }
        handler.eventLoop.execute { handler.value.notify(event) }
    }

    public func stop() {
        let channel = state.withLock { state in
            state.stopped = true
            return state.channel
        }
        channel?.close(promise: nil)
    }

    private func connect() {
        let proceed = state.withLock { state in
            if !state.stopped { state.attempts += 1 }
            return !state.stopped
        }
        guard proceed else { return }
        let roles = self.roles
        let makeAgent = self.makeAgent
        let bootstrap = ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { [weak self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let session = OpenFlowSession(agent: makeAgent(), roles: roles)
                    let handler = OpenFlowChannelHandler(session: session) {
                        self?.scheduleReconnect()
                    }
                    try channel.pipeline.syncOperations.addHandler(handler)
                    self?.state.withLock { $0.handler = NIOLoopBound(handler, eventLoop: channel.eventLoop) }
                }
            }
        bootstrap.connect(host: host, port: port).whenComplete { [weak self] result in
            guard let self else { return }
            switch result {
            case .success(let channel):
                let stopped = self.state.withLock { state in
                    state.channel = channel
                    state.delay = self.initialDelay
                    return state.stopped
                }
                if stopped { channel.close(promise: nil) }
            case .failure:
                self.scheduleReconnect()
            }
        }
    }

    private func scheduleReconnect() {
        let delay: TimeAmount? = state.withLock { state in
            state.channel = nil
            state.handler = nil
            guard !state.stopped else { return nil }
            let current = state.delay
            state.delay = min(state.delay * 2, maxDelay)
            return current
        }
        guard let delay else { return }
        group.next().scheduleTask(in: delay) { [weak self] in self?.connect() }
    }
}
