// Audit of OpenFlow changes: every FLOW_MOD, GROUP_MOD, PORT_MOD and Oko extension change logs one line
// to the "oko.audit" logger (REST changes are logged there by the management API), with who (the
// OpenFlow connection), what, and the result; the log handler adds when.
//
// `AuditingAgent` wraps the shared `DatapathAgent` once per controller connection (the listener asks its
// factory for an agent per connection), so the connection number identifies the controller. Calls are
// forwarded unchanged, on the connection's event loop.
import Logging
import OkoOpenFlow
import Synchronization

final class AuditingAgent: SwitchAgent, @unchecked Sendable {
    private static let connections = Atomic<Int>(0)
    private let agent: DatapathAgent
    private let audit: Logger
    private let who: String

    init(agent: DatapathAgent, audit: Logger) {
        self.agent = agent
        self.audit = audit
        self.who = "openflow-connection-\(Self.connections.add(1, ordering: .relaxed).newValue)"
    }

    /// `what` is built only when the audit level is enabled (describing a match is not free).
    private func log<T>(_ what: @autoclosure () -> String, _ body: () throws(OpenFlowError) -> T) throws(OpenFlowError) -> T {
        do {
            let value = try body()
            audit.info("audit", metadata: ["who": .string(who), "what": .string(what()), "result": .string("ok")])
            return value
        } catch {
            audit.info("audit", metadata: ["who": .string(who), "what": .string(what()), "result": .string("refused: \(error.reason)")])
            throw error
        }
    }

    func features() -> SwitchFeatures { agent.features() }
    func switchConfig() -> SwitchConfig { agent.switchConfig() }
    func setSwitchConfig(_ config: SwitchConfig) throws(OpenFlowError) { try agent.setSwitchConfig(config) }

    func apply(_ flowMod: FlowMod) throws(OpenFlowError) {
        try log("FLOW_MOD \(flowMod.command) table=\(flowMod.tableID) priority=\(flowMod.priority) match=\(flowMod.match)") {
            () throws(OpenFlowError) in try agent.apply(flowMod)
        }
    }

    func apply(_ groupMod: GroupMod) throws(OpenFlowError) {
        try log("GROUP_MOD \(groupMod.command) group=\(groupMod.groupID)") { () throws(OpenFlowError) in try agent.apply(groupMod) }
    }

    func execute(_ packetOut: PacketOut) throws(OpenFlowError) { try agent.execute(packetOut) }

    func apply(_ portMod: PortMod) throws(OpenFlowError) {
        try log("PORT_MOD port=\(portMod.portNumber) config=\(portMod.config) mask=\(portMod.mask)") {
            () throws(OpenFlowError) in try agent.apply(portMod)
        }
    }

    func multipart(_ request: MultipartRequest.Body) throws(OpenFlowError) -> MultipartReply.Body { try agent.multipart(request) }

    func handle(_ message: OkoMessage) throws(OpenFlowError) -> [OkoMessage] {
        switch message {
        case .loadFilterProgram, .updateMap:
            return try log("OKO \(String(describing: message).prefix(60))") { () throws(OpenFlowError) in try agent.handle(message) }
        default:
            return try agent.handle(message)
        }
    }

    func barrier() throws(OpenFlowError) { try agent.barrier() }
}
