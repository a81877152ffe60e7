// The per-connection OpenFlow state machine and the interface the switch implements.
//
// States: awaitingHello -> established(version) -> closed. We send HELLO (with a version bitmap) as soon
// as the connection opens; the peer's HELLO fixes the version (highest common one). Until then any
// other message is an error that closes the connection, as is a failed negotiation (after an
// OFPET_HELLO_FAILED/OFPHFC_INCOMPATIBLE error).
//
// Requests are handled strictly in arrival order and `SwitchAgent` calls are synchronous, so every
// reply and error caused by messages before a BARRIER_REQUEST is emitted before its BARRIER_REPLY.
// Decoding errors produce an OFPT_ERROR echoing the first 64 bytes of the offending message and the
// session carries on; framing errors close the connection.

import Synchronization

/// What the switch side implements; the session calls it on the connection's thread, in order.
public protocol SwitchAgent: AnyObject {
    func features() -> SwitchFeatures
    func switchConfig() -> SwitchConfig
    func setSwitchConfig(_ config: SwitchConfig) throws(OpenFlowError)
    func apply(_ flowMod: FlowMod) throws(OpenFlowError)
    func apply(_ groupMod: GroupMod) throws(OpenFlowError)
    func execute(_ packetOut: PacketOut) throws(OpenFlowError)
    func apply(_ portMod: PortMod) throws(OpenFlowError)
    /// The reply body for a (reassembled) multipart request.
    func multipart(_ request: MultipartRequest.Body) throws(OpenFlowError) -> MultipartReply.Body
    /// Handles an Oko extension message; returns the messages to send back (e.g. DUMP_MAP_REPLY).
    func handle(_ message: OkoMessage) throws(OpenFlowError) -> [OkoMessage]
    /// Called before a BARRIER_REPLY: every change applied so far must be in effect when it returns.
    func barrier()
}

extension SwitchAgent {
    public func barrier() {}
}

/// Controller roles shared by all connections of one switch (OpenFlow 1.3 section 6.3.7): at most one
/// master, and a generation id that MASTER/SLAVE requests must not move backwards.
public final class ControllerRoles: Sendable {
    private struct State {
        var nextConnection = 1
        var roles: [Int: ControllerRole] = [:]
        var generationID: UInt64?
    }

    private let state = Mutex(State())

    public init() {}

    /// Registers a new connection (role EQUAL) and returns its id.
    public func register() -> Int {
        state.withLock { state in
            let id = state.nextConnection
            state.nextConnection += 1
            state.roles[id] = .equal
            return id
        }
    }

    public func unregister(_ connection: Int) {
        _ = state.withLock { $0.roles.removeValue(forKey: connection) }
    }

    public func role(of connection: Int) -> ControllerRole {
        state.withLock { $0.roles[connection] ?? .equal }
    }

    /// Applies a ROLE_REQUEST and returns the ROLE_REPLY body, or ROLE_REQUEST_FAILED/STALE when the
    /// generation id is older (in wrap-around order) than the newest one seen.
    public func request(_ connection: Int, _ request: RoleMessage) throws(OpenFlowError) -> RoleMessage {
        let result: Result<RoleMessage, OpenFlowError> = state.withLock { state in
            switch request.role {
            case .noChange:
                break
            case .equal:
                state.roles[connection] = .equal
            case .master, .slave:
                if let cached = state.generationID, Int64(bitPattern: request.generationID &- cached) < 0 {
                    return .failure(OpenFlowError(.roleRequestFailed, RoleRequestFailedCode.stale,
                                                  "generation id \(request.generationID) is older than \(cached)"))
                }
                state.generationID = request.generationID
                if request.role == .master {
                    for (other, role) in state.roles where role == .master && other != connection {
                        state.roles[other] = .slave
                    }
                }
                state.roles[connection] = request.role
            }
            return .success(RoleMessage(role: state.roles[connection] ?? .equal, generationID: state.generationID ?? 0))
        }
        return try result.get()
    }
}

/// One OpenFlow connection's protocol state. Not thread-safe: owned by the connection's thread.
public final class OpenFlowSession {
    public enum State: Equatable, Sendable {
        case awaitingHello
        case established(version: UInt8)
        case closed
    }

    /// What the connection must do after an input: send `messages` in order, then close if `close`.
    public struct Output: Equatable, Sendable {
        public var messages: [[UInt8]] = []
        public var close = false
    }

    public private(set) var state: State = .awaitingHello
    public let connectionID: Int
    public let supportedVersions: Set<UInt8>
    private let agent: SwitchAgent
    private let roles: ControllerRoles
    private var framer = OpenFlowFramer()
    private let clock: () -> Double
    private let echoInterval: Double
    private let echoTimeout: Double
    private var lastReceived: Double
    private var echoSentAt: Double?
    private var nextXID: UInt32 = 1
    /// Pending REQ_MORE multipart request: xid, type, table features gathered so far, fragment count.
    private var pendingMultipart: (xid: UInt32, type: MultipartType, tables: [TableFeatures], fragments: Int)?
    private static let maxMultipartFragments = 64

    /// - Parameters:
    ///   - clock: seconds on a monotonic clock (injected so keep-alive can be tested).
    ///   - echoInterval: idle seconds before we send ECHO_REQUEST; `echoTimeout` more without any
    ///     message from the peer and the connection is declared dead.
    public init(agent: SwitchAgent, roles: ControllerRoles, supportedVersions: Set<UInt8> = [OpenFlowVersion.v1_0, OpenFlowVersion.v1_3],
                echoInterval: Double = 5, echoTimeout: Double = 15, clock: @escaping () -> Double = OpenFlowSession.monotonicSeconds) {
        self.agent = agent
        self.roles = roles
        self.supportedVersions = supportedVersions
        self.clock = clock
        self.echoInterval = echoInterval
        self.echoTimeout = echoTimeout
        self.lastReceived = clock()
        self.connectionID = roles.register()
    }

    deinit { roles.unregister(connectionID) }

    private static let clockOrigin = ContinuousClock.now

    /// Seconds since the first session was created, on the monotonic clock.
    public static func monotonicSeconds() -> Double {
        let elapsed = ContinuousClock.now - clockOrigin
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    public var role: ControllerRole { roles.role(of: connectionID) }

    private func makeXID() -> UInt32 {
        defer { nextXID &+= 1 }
        return nextXID
    }

    /// Our HELLO, to send as soon as the connection opens.
    public func start() -> [UInt8] {
        let hello = OpenFlowMessage(version: supportedVersions.max() ?? OpenFlowVersion.v1_3, xid: makeXID(),
                                    body: .hello(Hello(versions: supportedVersions)))
        return (try? hello.encode()) ?? []
    }

    /// Feeds bytes read from the connection.
    public func receive(_ bytes: some Sequence<UInt8>) -> Output {
        var output = Output()
        guard state != .closed else { return output }
        framer.append(bytes)
        while true {
            let message: [UInt8]?
            do {
                message = try framer.nextMessage()
            } catch {
                close()
                output.close = true
                return output
            }
            guard let message else { break }
            handle(message, into: &output)
            if output.close {
                close()
                break
            }
        }
        return output
    }

    /// Keep-alive: call periodically. Sends ECHO_REQUEST after `echoInterval` of silence; closes after
    /// `echoTimeout` more without hearing from the peer, or if no HELLO arrived within `echoTimeout`.
    public func tick() -> Output {
        var output = Output()
        let now = clock()
        if state == .awaitingHello, now - lastReceived >= echoTimeout {
            // The peer never said HELLO.
            close()
            output.close = true
            return output
        }
        guard case .established(let version) = state else { return output }
        if let sent = echoSentAt {
            if now - sent >= echoTimeout {
                close()
                output.close = true
            }
        } else if now - lastReceived >= echoInterval {
            echoSentAt = now
            if let bytes = try? OpenFlowMessage(version: version, xid: makeXID(), body: .echoRequest([])).encode() {
                output.messages.append(bytes)
            }
        }
        return output
    }

    /// Encodes an asynchronous switch event (PACKET_IN, FLOW_REMOVED, PORT_STATUS) for this connection;
    /// nil if the connection is not established or its role does not receive the event (slaves get only
    /// PORT_STATUS, per the default asynchronous configuration).
    public func notify(_ event: MessageBody) -> [UInt8]? {
        guard case .established(let version) = state else { return nil }
        switch event {
        case .packetIn, .flowRemoved: if role == .slave { return nil }
        case .portStatus: break
        default: return nil
        }
        return try? OpenFlowMessage(version: version, xid: 0, body: event).encode()
    }

    public func close() {
        state = .closed
        roles.unregister(connectionID)
    }

    // MARK: dispatch

    private func send(_ body: MessageBody, xid: UInt32, version: UInt8, into output: inout Output) {
        do {
            output.messages.append(try OpenFlowMessage(version: version, xid: xid, body: body).encode())
        } catch {
            sendError(error, offending: [], xid: xid, version: version, into: &output)
        }
    }

    private func sendError(_ error: OpenFlowError, offending: [UInt8], xid: UInt32, version: UInt8, into output: inout Output) {
        let message = OpenFlowMessage(version: version, xid: xid, body: .error(ErrorMessage(error, offending: offending, version: version)))
        if let bytes = try? message.encode() { output.messages.append(bytes) }
    }

    private func handle(_ bytes: [UInt8], into output: inout Output) {
        lastReceived = clock()
        echoSentAt = nil
        guard let header = OpenFlowHeader(bytes) else { return }
        switch state {
        case .closed:
            return
        case .awaitingHello:
            negotiate(bytes, header: header, into: &output)
        case .established(let version):
            let message: OpenFlowMessage
            do throws(OpenFlowError) {
                guard header.version == version || header.type == MessageType.hello.rawValue else {
                    throw OpenFlowError(.badRequest, BadRequestCode.badVersion,
                                        "message version \(header.version) after negotiating \(version)")
                }
                message = try OpenFlowMessage.decode(bytes)
            } catch {
                sendError(error, offending: bytes, xid: header.xid, version: version, into: &output)
                return
            }
            do {
                try dispatch(message, version: version, into: &output)
            } catch {
                sendError(error, offending: bytes, xid: header.xid, version: version, into: &output)
            }
        }
    }

    private func negotiate(_ bytes: [UInt8], header: OpenFlowHeader, into output: inout Output) {
        let ourHighest = supportedVersions.max() ?? OpenFlowVersion.v1_3
        guard header.type == MessageType.hello.rawValue, case .hello(let hello)? = try? OpenFlowMessage.decode(bytes).body else {
            sendError(OpenFlowError(.helloFailed, HelloFailedCode.incompatible, "expected HELLO first"),
                      offending: bytes, xid: header.xid, version: ourHighest, into: &output)
            output.close = true
            return
        }
        let chosen: UInt8?
        if let theirs = hello.versions {
            chosen = supportedVersions.intersection(theirs).max()
        } else {
            let candidate = min(header.version, ourHighest)
            chosen = supportedVersions.contains(candidate) ? candidate : nil
        }
        guard let version = chosen else {
            sendError(OpenFlowError(.helloFailed, HelloFailedCode.incompatible,
                                    "no common OpenFlow version (we support \(supportedVersions.sorted()))"),
                      offending: bytes, xid: header.xid, version: min(header.version, ourHighest), into: &output)
            output.close = true
            return
        }
        state = .established(version: version)
    }

    private func requireWriter() throws(OpenFlowError) {
        if role == .slave {
            throw OpenFlowError(.badRequest, BadRequestCode.isSlave, "a slave controller cannot modify the switch")
        }
    }

    private func dispatch(_ message: OpenFlowMessage, version: UInt8, into output: inout Output) throws(OpenFlowError) {
        let xid = message.xid
        switch message.body {
        case .hello, .error, .echoReply:
            break  // a repeated HELLO is harmless; errors from the controller are not answered
        case .echoRequest(let data):
            send(.echoReply(data), xid: xid, version: version, into: &output)
        case .experimenter(let experimenter):
            if experimenter.experimenter == niciraExperimenterID {
                throw OpenFlowError(.badRequest, BadRequestCode.badExpType, "Nicira experimenter subtype \(experimenter.expType) unsupported")
            }
            throw OpenFlowError(.badRequest, BadRequestCode.badExperimenter,
                                "experimenter 0x\(String(experimenter.experimenter, radix: 16)) unsupported")
        case .oko(let oko):
            switch oko {
            case .loadFilterProgram, .updateMap: try requireWriter()
            case .dumpMapRequest: break
            case .dumpMapReply:
                throw OpenFlowError(.badRequest, BadRequestCode.badExpType, "DUMP_MAP_REPLY is sent by switches only")
            }
            for reply in try agent.handle(oko) {
                if case .dumpMapReply(let programID, let maps) = reply {
                    for part in OkoMessage.dumpMapReplies(programID: programID, maps: maps) {
                        send(.oko(part), xid: xid, version: version, into: &output)
                    }
                } else {
                    send(.oko(reply), xid: xid, version: version, into: &output)
                }
            }
        case .featuresRequest:
            send(.featuresReply(agent.features()), xid: xid, version: version, into: &output)
        case .getConfigRequest:
            send(.getConfigReply(agent.switchConfig()), xid: xid, version: version, into: &output)
        case .setConfig(let config):
            try agent.setSwitchConfig(config)
        case .flowMod(let flowMod):
            try requireWriter()
            try agent.apply(flowMod)
        case .groupMod(let groupMod):
            try requireWriter()
            try agent.apply(groupMod)
        case .packetOut(let packetOut):
            try requireWriter()
            try agent.execute(packetOut)
        case .portMod(let portMod):
            try requireWriter()
            try agent.apply(portMod)
        case .multipartRequest(let request):
            guard let body = try reassemble(request, xid: xid) else { return }
            if case .tableFeatures(let tables) = body, !tables.isEmpty { try requireWriter() }
            let reply = MultipartReply(body: try agent.multipart(body))
            // OpenFlow 1.0 flow entries are larger than 1.3's, which the fragment sizing measures: leave room.
            let limit = version == OpenFlowVersion.v1_0 ? OpenFlowHeader.maxMessageLength / 2 : OpenFlowHeader.maxMessageLength
            for fragment in try reply.fragments(maxMessageLength: limit) {
                send(.multipartReply(fragment), xid: xid, version: version, into: &output)
            }
        case .barrierRequest:
            agent.barrier()
            send(.barrierReply, xid: xid, version: version, into: &output)
        case .roleRequest(let request):
            send(.roleReply(try roles.request(connectionID, request)), xid: xid, version: version, into: &output)
        case .featuresReply, .getConfigReply, .packetIn, .flowRemoved, .portStatus, .multipartReply, .barrierReply,
             .roleReply:
            throw OpenFlowError(.badRequest, BadRequestCode.badType, "\(message.body.messageType) is sent by switches only")
        }
    }

    /// Gathers REQ_MORE fragments; returns the whole request body once the last fragment arrives.
    private func reassemble(_ request: MultipartRequest, xid: UInt32) throws(OpenFlowError) -> MultipartRequest.Body? {
        let more = request.flags & MultipartRequest.requestMore != 0
        var tables: [TableFeatures] = []
        if case .tableFeatures(let fragmentTables) = request.body { tables = fragmentTables }
        if var pending = pendingMultipart {
            guard pending.xid == xid, pending.type == request.body.type else {
                pendingMultipart = nil
                throw OpenFlowError(.badRequest, BadRequestCode.badMultipart,
                                    "multipart fragment xid \(xid) does not continue pending request \(pending.xid)")
            }
            pending.tables += tables
            pending.fragments += 1
            guard pending.fragments <= Self.maxMultipartFragments else {
                pendingMultipart = nil
                throw OpenFlowError(.badRequest, BadRequestCode.multipartBufferOverflow, "too many multipart fragments")
            }
            if more {
                pendingMultipart = pending
                return nil
            }
            pendingMultipart = nil
            return request.body.type == .tableFeatures ? .tableFeatures(pending.tables) : request.body
        }
        if more {
            pendingMultipart = (xid, request.body.type, tables, 1)
            return nil
        }
        return request.body
    }
}
