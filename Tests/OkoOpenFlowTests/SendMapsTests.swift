import Foundation
import OkoDatapath
import Testing
@testable import OkoOpenFlow

/// SEND_MAPS through the real agent and datapath (inline PMD): the action survives translation both ways,
/// packets that hit the rule queue a notice naming the rule's program, maps and cookie, and a burst of
/// packets queues only as many notices as the per-rule rate limit allows.
@Suite struct SendMapsTests {
    @Test func packetsHittingASendMapsRuleQueueRateLimitedNotices() throws {
        let sw = try AgentSwitch()
        let sendMaps = Action.sendMaps(programID: 3, mapIDs: [0, 2])
        try sw.agent.apply(FlowMod(cookie: 0x5e, command: .add, priority: 7, match: Match([.inPort(1)]),
                                   instructions: [.applyActions([sendMaps, .output(port: 2, maxLength: 0)])]))
        try sw.agent.barrier()  // the bridge coalesces publications: a barrier puts the rule in effect
        guard case .flow(let stats) = try sw.agent.multipart(.flow(FlowStatsRequest())) else {
            Issue.record("no flow stats")
            return
        }
        #expect(stats.first?.instructions == [.applyActions([sendMaps, .output(port: 2, maxLength: 0)])])

        // A burst well inside one rate-limit interval (1/10 s): every packet is forwarded, one notice queued.
        let frame = Frames.udp(dport: 7, payloadLength: 20)
        let started = Date()
        for _ in 0..<50 { sw.ports[0].inject(frame) }
        let forwarded = sw.transmitted(on: 2, expecting: 50)
        let burst = Date().timeIntervalSince(started)
        #expect(forwarded.count == 50)
        let notices = sw.bridge.takeMapsNotices()
        if burst < 0.1 { #expect(notices.count == 1, "\(notices.count) notices in \(burst) s") }
        #expect(notices.first == MapsNotice(program: 3, maps: [0, 2], table: 0, cookie: 0x5e))

        // After the interval the next packet queues another notice.
        Thread.sleep(forTimeInterval: 0.15)
        sw.ports[0].inject(frame)
        _ = sw.transmitted(on: 2)
        #expect(sw.bridge.takeMapsNotices().count == 1)
    }

    @Test func sendMapsWithoutMapsIsRefused() throws {
        let sw = try AgentSwitch()
        #expect(throws: OpenFlowError(.badAction, BadActionCode.badArgument, "")) {
            try sw.agent.apply(FlowMod(command: .add, priority: 7,
                                       instructions: [.applyActions([.sendMaps(programID: 3, mapIDs: [])])]))
        }
    }
}
