import Foundation
import Testing

/// kill -9 at random moments during a stream of REST and OpenFlow changes (and now and then during the
/// restore at start-up): after each restart every acknowledged change is present, nothing refused or
/// never sent is, and the store always opens.
///
/// Precisely: a REST change is acknowledged by its 2xx response, an OpenFlow FLOW_MOD by the BARRIER_REPLY
/// that follows it. A change whose request was sent but whose acknowledgement never arrived (in flight at
/// the kill) may be present or absent; the next round continues from what okod actually restored.
@Suite(.serialized)
struct CrashConsistencyTests {
    /// What the clients know: acknowledged state plus the changes whose outcome is unknown.
    final class Model: @unchecked Sendable {
        let lock = NSLock()
        var rules = Set<String>()            // "priority/nw_dst"
        var uncertainRules = Set<String>()   // rules an in-flight change touched
        var refusedRules = Set<String>()     // rules whose add was refused: must never appear
        var ports = Set<String>()            // port names
        var uncertainPorts = Set<String>()
        var programs = Set<Int>()
        var uncertainPrograms = Set<Int>()
        var acknowledged = 0

        @discardableResult
        func with<T>(_ body: (Model) -> T) -> T {
            lock.lock()
            defer { lock.unlock() }
            return body(self)
        }
    }

    @Test(.timeLimit(.minutes(5)))
    func everyAcknowledgedChangeSurvivesSIGKILLAndNothingElseAppears() throws {
        let directory = try TestEnvironment.temporaryDirectory("crash")
        defer { try? FileManager.default.removeItem(at: directory) }
        let tokenFile = directory.appendingPathComponent("tokens")
        let object = try compileExample("stateless-firewall", into: directory)
        let objectBytes = try object.map { [UInt8](try Data(contentsOf: $0)) }
        let config = try writeTestConfig("""
            \(okodTestPreamble(tokenFile: tokenFile))
            store: {path: "\(directory.path)/state/okod.db"}
            bridges:
              - name: br0
                ports:
                  - {devargs: "net_null0,no-rx=1", ofport: 1}
                  - {devargs: "net_null1,no-rx=1", ofport: 2}
            """, in: directory)

        let model = Model()
        var generator = SystemRandomNumberGenerator()
        var nextPortDevice = 10
        var nextAddress = 1
        let started = Date()
        var round = 0
        var totalAcknowledged = 0
        // Bounded: at most 10 kills and about 100 seconds.
        while round < 10 && Date().timeIntervalSince(started) < 100 {
            if round % 3 == 2 {
                // Also kill it while it restores (before it is ready): nothing may be lost by that either.
                let early = try ChildProcess(TestEnvironment.executable("okod"), ["--config", config.path])
                Thread.sleep(forTimeInterval: Double.random(in: 0.02...0.4, using: &generator))
                kill(early.process.processIdentifier, SIGKILL)
                _ = early.waitForExit(timeout: 10)
            }
            guard let okod = try RunningOkod.start(config: config, tokenFile: tokenFile) else { return }
            if round > 0 { try verifyAndResolve(model, okod, round: round) }
            round += 1

            let stop = Stop()
            let restDone = DispatchSemaphore(value: 0), openflowDone = DispatchSemaphore(value: 0)
            let portBase = nextPortDevice, addressBase = nextAddress
            nextPortDevice += 200
            nextAddress += 2000
            Thread.detachNewThread {
                Self.restStream(okod, model, stop, objectBytes: objectBytes, portBase: portBase, addressBase: addressBase)
                restDone.signal()
            }
            Thread.detachNewThread {
                Self.openflowStream(okod, model, stop, addressBase: addressBase + 1000)
                openflowDone.signal()
            }
            Thread.sleep(forTimeInterval: Double.random(in: 0.5...2.5, using: &generator))
            okod.kill9()
            stop.set()
            restDone.wait()
            openflowDone.wait()
            totalAcknowledged = model.with { $0.acknowledged }
        }
        // The last restart: everything acknowledged is back, and it stays after a clean stop and start.
        guard let okod = try RunningOkod.start(config: config, tokenFile: tokenFile) else { return }
        try verifyAndResolve(model, okod, round: round)
        #expect(okod.terminate(), "clean stop: \(okod.child.output.suffix(2000))")
        guard let again = try RunningOkod.start(config: config, tokenFile: tokenFile) else { return }
        try verifyAndResolve(model, again, round: round + 1)
        #expect(again.terminate())
        #expect(round >= 3, "the loop must kill okod several times (\(round))")
        #expect(totalAcknowledged >= 20, "too few acknowledged changes to mean anything: \(totalAcknowledged)")
        print("crash consistency: \(round) kills, \(totalAcknowledged) acknowledged changes, \(model.rules.count) rules, \(model.ports.count) extra ports, \(model.programs.count) programs at the end")
    }

    final class Stop: @unchecked Sendable {
        private let lock = NSLock()
        private var stopped = false
        func set() { lock.lock(); stopped = true; lock.unlock() }
        var isSet: Bool { lock.lock(); defer { lock.unlock() }; return stopped }
    }

    private static func address(_ n: Int) -> String { "10.\(n >> 16 & 255).\(n >> 8 & 255).\(n & 255)" }

    /// Sequential REST changes: add/delete rules (and one refused add now and then), add/remove ports,
    /// load/unload programs. Each is recorded acknowledged, refused, or uncertain (no response).
    private static func restStream(_ okod: RunningOkod, _ model: Model, _ stop: Stop, objectBytes: [UInt8]?,
                                   portBase: Int, addressBase: Int) {
        var generator = SystemRandomNumberGenerator()
        var portDevice = portBase, addressIndex = addressBase
        while !stop.isSet {
            let choice = Int.random(in: 0..<100, using: &generator)
            if choice < 45 {
                // Add a rule.
                let key = "100/\(address(addressIndex))"
                addressIndex += 1
                let text = "priority=100,ip,nw_dst=\(address(addressIndex - 1)),actions=output:2"
                model.with { $0.uncertainRules.insert(key) }
                guard let r = try? okod.request("POST", "/v1/bridges/br0/flows", body: Array(text.utf8), contentType: "text/plain") else { return }
                model.with { m in
                    m.uncertainRules.remove(key)
                    if r.status == 201 { m.rules.insert(key); m.acknowledged += 1 } else { m.refusedRules.insert(key) }
                }
            } else if choice < 50 {
                // A rule the datapath refuses (no port 99): changes nothing.
                let key = "100/\(address(addressIndex))"
                let text = "priority=100,ip,nw_dst=\(address(addressIndex)),actions=output:99"
                addressIndex += 1
                model.with { $0.uncertainRules.insert(key) }
                guard let r = try? okod.request("POST", "/v1/bridges/br0/flows", body: Array(text.utf8), contentType: "text/plain") else { return }
                model.with { m in
                    m.uncertainRules.remove(key)
                    if r.status == 201 { m.rules.insert(key) } else { m.refusedRules.insert(key) }
                }
            } else if choice < 70 {
                // Delete a REST rule that is known to exist.
                guard let key = model.with({ $0.rules.filter { $0.hasPrefix("100/") }.randomElement() }) else { continue }
                let ip = key.dropFirst(4)
                model.with { $0.uncertainRules.insert(key) }
                guard let r = try? okod.request("DELETE", "/v1/bridges/br0/flows?strict=true&priority=100&eth_type=0x0800&ipv4_dst=\(ip)") else { return }
                model.with { m in
                    m.uncertainRules.remove(key)
                    if r.status == 200 { m.rules.remove(key); m.acknowledged += 1 }
                }
            } else if choice < 82 {
                // Add a port, or remove an extra one.
                if Bool.random(using: &generator), let name = model.with({ $0.ports.randomElement() }) {
                    guard let list = try? okod.json("/v1/bridges/br0/ports"),
                          let number = (list["ports"] as? [[String: Any]])?.first(where: { ($0["name"] as? String) == name })?["ofport"] as? Int
                    else { return }
                    model.with { $0.uncertainPorts.insert(name) }
                    guard let r = try? okod.request("DELETE", "/v1/bridges/br0/ports/\(number)") else { return }
                    model.with { m in
                        m.uncertainPorts.remove(name)
                        if r.status == 204 { m.ports.remove(name); m.acknowledged += 1 }
                    }
                } else {
                    let name = "extra\(portDevice)"
                    let body = #"{"devargs": "net_null\#(portDevice),no-rx=1", "name": "\#(name)"}"#
                    portDevice += 1
                    model.with { $0.uncertainPorts.insert(name) }
                    guard let r = try? okod.request("POST", "/v1/bridges/br0/ports", body: Array(body.utf8), contentType: "application/json") else { return }
                    model.with { m in
                        m.uncertainPorts.remove(name)
                        if r.status == 201 { m.ports.insert(name); m.acknowledged += 1 }
                    }
                }
            } else if let objectBytes {
                // Load (or replace) or unload a program.
                let id = Int.random(in: 1...3, using: &generator)
                let loaded = model.with { $0.programs.contains(id) }
                model.with { $0.uncertainPrograms.insert(id) }
                let unload = loaded && Bool.random(using: &generator)
                let r = unload
                    ? try? okod.request("DELETE", "/v1/bridges/br0/programs/\(id)")
                    : try? okod.request("PUT", "/v1/bridges/br0/programs/\(id)", body: objectBytes, contentType: "application/octet-stream")
                guard let r else { return }
                model.with { m in
                    m.uncertainPrograms.remove(id)
                    if (200..<300).contains(r.status) {
                        if unload { m.programs.remove(id) } else { m.programs.insert(id) }
                        m.acknowledged += 1
                    }
                }
            }
        }
    }

    /// OpenFlow: a few FLOW_MODs (adds, and strict deletes of acknowledged OpenFlow rules), then a barrier;
    /// they become acknowledged when the barrier reply arrives.
    private static func openflowStream(_ okod: RunningOkod, _ model: Model, _ stop: Stop, addressBase: Int) {
        guard let port = okod.openflowPort, let client = try? OpenFlowTestClient(port: port) else { return }
        var generator = SystemRandomNumberGenerator()
        var addressIndex = addressBase
        while !stop.isSet {
            var added: [String] = [], deleted: [String] = []
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                if Int.random(in: 0..<4, using: &generator) == 0,
                   let key = model.with({ m in m.rules.filter { $0.hasPrefix("200/") && !deleted.contains($0) }.randomElement() }) {
                    let octets = key.dropFirst(4).split(separator: ".").compactMap { UInt8($0) }
                    model.with { $0.uncertainRules.insert(key) }
                    guard (try? client.flowMod(command: 4, priority: 200, ipv4Destination: octets, outPort: 0)) != nil else { return }
                    deleted.append(key)
                } else {
                    let ip = address(addressIndex)
                    addressIndex += 1
                    let key = "200/\(ip)"
                    model.with { $0.uncertainRules.insert(key) }
                    guard (try? client.flowMod(command: 0, priority: 200, ipv4Destination: ip.split(separator: ".").compactMap { UInt8($0) },
                                                outPort: 2)) != nil else { return }
                    added.append(key)
                }
            }
            guard let ok = try? client.barrier() else { return }
            model.with { m in
                for key in added + deleted { m.uncertainRules.remove(key) }
                if ok {
                    for key in added { m.rules.insert(key) }
                    for key in deleted { m.rules.remove(key) }
                    m.acknowledged += added.count + deleted.count
                }
            }
            if !ok { Issue.record("an OpenFlow batch was refused") }
        }
    }

    /// Checks okod's restored state against the model, then takes what okod has as the new model.
    private func verifyAndResolve(_ model: Model, _ okod: RunningOkod, round: Int) throws {
        let listing = try okod.request("GET", "/v1/bridges/br0/flows?limit=10000", accept: "text/plain")
        #expect(listing.status == 200)
        let rules = ruleDestinations(listing.body)
        let ports = Set(((try okod.json("/v1/bridges/br0/ports"))["ports"] as? [[String: Any]] ?? [])
            .compactMap { $0["name"] as? String }.filter { $0.hasPrefix("extra") })
        let programs = Set(((try okod.json("/v1/bridges/br0/programs"))["programs"] as? [[String: Any]] ?? [])
            .compactMap { $0["id"] as? Int })
        model.with { m in
            let lostRules = m.rules.subtracting(m.uncertainRules).subtracting(rules)
            #expect(lostRules.isEmpty, "round \(round): acknowledged rules lost: \(lostRules.sorted())")
            let extraRules = rules.subtracting(m.rules).subtracting(m.uncertainRules)
            #expect(extraRules.isEmpty, "round \(round): rules nobody had acknowledged: \(extraRules.sorted())")
            let refused = rules.intersection(m.refusedRules)
            #expect(refused.isEmpty, "round \(round): refused rules present: \(refused.sorted())")
            let lostPorts = m.ports.subtracting(m.uncertainPorts).subtracting(ports)
            let extraPorts = ports.subtracting(m.ports).subtracting(m.uncertainPorts)
            #expect(lostPorts.isEmpty && extraPorts.isEmpty, "round \(round): ports lost \(lostPorts.sorted()), unexpected \(extraPorts.sorted())")
            let lostPrograms = m.programs.subtracting(m.uncertainPrograms).subtracting(programs)
            let extraPrograms = programs.subtracting(m.programs).subtracting(m.uncertainPrograms)
            #expect(lostPrograms.isEmpty && extraPrograms.isEmpty, "round \(round): programs lost \(lostPrograms.sorted()), unexpected \(extraPrograms.sorted())")
            m.rules = rules
            m.ports = ports
            m.programs = programs
            m.uncertainRules.removeAll()
            m.uncertainPorts.removeAll()
            m.uncertainPrograms.removeAll()
        }
    }
}
