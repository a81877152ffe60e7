// End-to-end tests of the management API: a real OkoHTTP server on 127.0.0.1 (ephemeral port) serving
// ManagementAPI over a SwitchService with in-memory ports and a running PMD thread, driven by real curl
// subprocesses over HTTP/1.1 and HTTP/2 (prior knowledge).
import Foundation
import OkoAPI
import OkoDatapath
import OkoHTTP
import OkoSyntax
import Synchronization
import Testing

let adminToken = "admin-secret-0123456789abcdef"
let readToken = "read-secret-0123456789abcdef0"

struct CurlResult {
    var status: Int
    var body: String
    var headers: String
    var json: JSONValue? { try? JSONValue.parse(body) }
}

final class Harness: @unchecked Sendable {
    let ports = InMemoryPortFactory()
    let service: SwitchService
    let api: ManagementAPI
    let server: HTTPServer
    var pmd: PMDThread?
    var base: String { "http://127.0.0.1:\(server.port!)" }

    init(requireTokenForReads: Bool = false, maxBodyBytes: Int = 4 << 20, programs: (any ProgramCatalogue)? = nil) async throws {
        service = SwitchService(portFactory: ports, programs: programs)
        let tokens = try AccessControl.parse(tokenFile: "admin \(adminToken) ops-admin\nread \(readToken) monitor\n", path: "tokens")
        let access = AccessControl(tokens: tokens, requireTokenForReads: requireTokenForReads)
        api = ManagementAPI(service: service, access: access, maxBodyBytes: maxBodyBytes)
        server = HTTPServer(configuration: HTTPServerConfiguration(host: "127.0.0.1", port: 0), handler: api)
        try await server.start()
    }

    func startPMD(bridge: String) throws {
        let p = PMDThread(bridges: [try service.bridge(named: bridge)])
        service.register(pmd: p)
        p.start()
        pmd = p
    }

    func stop() async {
        pmd?.stop()
        await server.shutdown(gracePeriod: .seconds(1))
    }

    /// Runs curl; `token` nil sends no Authorization header.
    func curl(_ method: String, _ path: String, body: String? = nil, contentType: String? = "application/json",
              token: String? = adminToken, accept: String? = nil, http2: Bool = false) throws -> CurlResult {
        let headerFile = FileManager.default.temporaryDirectory.appendingPathComponent("oko-api-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: headerFile) }
        var args = ["-s", "-S", "-X", method, "-D", headerFile.path, "-w", "\n%{http_code}", base + path]
        if http2 { args.append("--http2-prior-knowledge") }
        if let token { args += ["-H", "Authorization: Bearer \(token)"] }
        if let accept { args += ["-H", "Accept: \(accept)"] }
        if let body {
            args += ["--data-binary", body]
            args += ["-H", "Content-Type: \(contentType ?? "")"]
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = args
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        let split = text.range(of: "\n", options: .backwards)!
        let headers = (try? String(contentsOf: headerFile, encoding: .utf8)) ?? ""
        return CurlResult(status: Int(text[split.upperBound...])!, body: String(text[..<split.lowerBound]), headers: headers)
    }
}

/// A 64-byte IPv4/UDP frame.
func udpFrame(sourcePort: UInt16 = 1234) -> [UInt8] {
    var f: [UInt8] = [0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]
    f += [0x45, 0, 0, 50, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]
    f += [UInt8(sourcePort >> 8), UInt8(sourcePort & 0xff), 0, 53, 0, 30, 0, 0]
    f += [UInt8](repeating: 0xab, count: 64 - f.count)
    return f
}

/// Value of a sample line `name{labels} value` in a Prometheus scrape.
func metricValue(_ scrape: String, _ name: String, containing labels: [String]) -> Double? {
    for line in scrape.split(separator: "\n") where line.hasPrefix(name + "{") || line.hasPrefix(name + " ") {
        if labels.allSatisfy({ line.contains($0) }), let v = line.split(separator: " ").last.flatMap({ Double($0) }) { return v }
    }
    return nil
}

final class RunFlag: Sendable {
    let running = Atomic<Bool>(true)
}

func waitUntil(_ condition: () -> Bool) async {
    for _ in 0..<400 where !condition() { try? await Task.sleep(for: .milliseconds(10)) }
}

@Suite(.serialized) struct ManagementAPITests {
    @Test func switchingThroughRulesAddedAsTextAndJSONIsVisibleInFlowsPortsAndMetrics() async throws {
        let h = try await Harness()
        defer { Task { await h.stop() } }
        #expect(try h.curl("POST", "/v1/bridges", body: #"{"name":"br0","datapath_id":"0x2a"}"#).status == 201)
        let p1 = try h.curl("POST", "/v1/bridges/br0/ports", body: #"{"devargs":"memory0","name":"p1"}"#)
        #expect(p1.status == 201)
        #expect(p1.json?["ofport"]?.unsignedValue == 1)
        #expect(p1.headers.lowercased().contains("location: /v1/bridges/br0/ports/1"))
        #expect(try h.curl("POST", "/v1/bridges/br0/ports", body: #"{"devargs":"memory1","name":"p2"}"#, http2: true).status == 201)
        try h.startPMD(bridge: "br0")

        let text = try h.curl("POST", "/v1/bridges/br0/flows", body: "priority=1,in_port=1,actions=output:2\n", contentType: "text/plain")
        #expect(text.status == 201, "\(text.body)")
        let json = try h.curl("POST", "/v1/bridges/br0/flows",
                              body: #"{"priority":5,"match":{"in_port":2,"eth_type":"0x0800","ipv4_dst":"10.0.0.0/8"},"actions":[{"type":"output","port":1}]}"#,
                              http2: true)
        #expect(json.status == 201, "\(json.body)")

        let list = try h.curl("GET", "/v1/bridges/br0/flows")
        guard case .array(let flows)? = list.json?["flows"] else { Issue.record("no flows array: \(list.body)"); return }
        #expect(flows.count == 2)
        for f in flows {
            for key in ["id", "table", "priority", "cookie", "match", "instructions", "stats"] { #expect(f[key] != nil, "Flow lacks \(key)") }
        }
        let asText = try h.curl("GET", "/v1/bridges/br0/flows", accept: "text/plain", http2: true)
        #expect(asText.status == 200)
        // ovs-ofctl dump-flows spelling: actions after a space, OpenFlow 1.0 names for IPv4 fields.
        #expect(asText.body.contains("priority=1,in_port=1 actions=output:2"), "\(asText.body)")
        #expect(asText.body.contains("priority=5,ip,in_port=2,nw_dst=10.0.0.0/8 actions=output:1"), "\(asText.body)")
        let textRule = flows.first { $0["priority"]?.unsignedValue == 1 }
        #expect(textRule?["match"] == .object([("in_port", .unsigned(1))]))
        #expect(textRule?["origin"]?.stringValue == "rest")
        #expect(textRule?["actions"] == .array([.object([("type", .string("output")), ("port", .unsigned(2))])]))

        let rx = try #require(h.ports.port(named: "p1"))
        let tx = try #require(h.ports.port(named: "p2"))
        for i in 0..<10 { #expect(rx.inject(udpFrame(sourcePort: UInt16(1000 + i)))) }
        var received: [[UInt8]] = []
        await waitUntil { received += tx.takeTransmitted(); return received.count >= 10 }
        #expect(received.count == 10)
        #expect(received.first == udpFrame(sourcePort: 1000))

        let rule = try #require(try h.curl("GET", "/v1/bridges/br0/flows?in_port=1").json?["flows"])
        guard case .array(let selected) = rule, selected.count == 1 else { Issue.record("filter by in_port: \(rule)"); return }
        let id = try #require(selected[0]["id"]?.unsignedValue)
        #expect(selected[0]["stats"]?["packets"]?.unsignedValue == 10)
        #expect(selected[0]["stats"]?["bytes"]?.unsignedValue == 640)
        let one = try h.curl("GET", "/v1/bridges/br0/flows/\(id)")
        #expect(one.json?["stats"]?["packets"]?.unsignedValue == 10)
        let port2 = try h.curl("GET", "/v1/bridges/br0/ports/2")
        #expect(port2.json?["stats"]?["tx_packets"]?.unsignedValue == 10)
        let port1 = try h.curl("GET", "/v1/bridges/br0/ports/1")
        #expect(port1.json?["stats"]?["rx_packets"]?.unsignedValue == 10)

        let scrape = try h.curl("GET", "/metrics").body
        #expect(metricValue(scrape, "oko_rule_packets_total", containing: [#"bridge="br0""#, #"rule="\#(id)""#]) == 10)
        #expect(metricValue(scrape, "oko_port_tx_packets_total", containing: [#"port_name="p2""#]) == 10)
        #expect(metricValue(scrape, "oko_port_rx_packets_total", containing: [#"port_name="p1""#]) == 10)
        #expect(metricValue(scrape, "oko_pmd_upcalls_total", containing: [#"pmd="0""#]) ?? 0 >= 1)
        #expect(metricValue(scrape, "oko_api_requests_total", containing: [#"method="POST""#, #"code="201""#]) == 5)

        let bridge = try h.curl("GET", "/v1/bridges/br0")
        #expect(bridge.json?["flows"]?.unsignedValue == 2)
        #expect(bridge.json?["ports"]?.unsignedValue == 2)
        #expect(bridge.json?["datapath_id"]?.stringValue == "0x2a")
    }

    @Test func errorStatusesComeAsProblemDocuments() async throws {
        let h = try await Harness(maxBodyBytes: 4096)
        defer { Task { await h.stop() } }
        #expect(try h.curl("POST", "/v1/bridges", body: #"{"name":"br0"}"#).status == 201)
        _ = try h.curl("POST", "/v1/bridges/br0/ports", body: #"{"devargs":"memory0"}"#)

        func expectProblem(_ r: CurlResult, _ status: Int, mentioning: String, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(r.status == status, "\(r.body)", sourceLocation: sourceLocation)
            #expect(r.headers.lowercased().contains("content-type: application/problem+json"), sourceLocation: sourceLocation)
            #expect(r.json?["status"]?.unsignedValue == UInt64(status), sourceLocation: sourceLocation)
            #expect(r.json?["title"]?.stringValue != nil, sourceLocation: sourceLocation)
            #expect(r.json?["detail"]?.stringValue?.contains(mentioning) == true, "\(r.body)", sourceLocation: sourceLocation)
        }
        expectProblem(try h.curl("POST", "/v1/bridges", body: #"{"name": "#), 400, mentioning: "invalid JSON")
        expectProblem(try h.curl("POST", "/v1/bridges", body: #"{"name":"x","colour":1}"#), 400, mentioning: "colour")
        expectProblem(try h.curl("POST", "/v1/bridges/br0/flows", body: #"{"match":{"ipv4_dts":"1.2.3.4"}}"#), 400, mentioning: "ipv4_dts")
        expectProblem(try h.curl("GET", "/v1/bridges/nope"), 404, mentioning: "nope")
        expectProblem(try h.curl("GET", "/v1/bridges/br0/flows/99"), 404, mentioning: "99")
        let notAllowed = try h.curl("PUT", "/v1/bridges/br0", body: "{}")
        expectProblem(notAllowed, 405, mentioning: "PUT")
        #expect(notAllowed.headers.lowercased().contains("allow: delete, get"))
        expectProblem(try h.curl("POST", "/v1/bridges", body: #"{"name":"br0"}"#), 409, mentioning: "already exists")
        let big = #"{"name":""# + String(repeating: "a", count: 5000) + #""}"#
        expectProblem(try h.curl("POST", "/v1/bridges", body: big), 413, mentioning: "4096")
        expectProblem(try h.curl("POST", "/v1/bridges", body: "name=x", contentType: "application/x-www-form-urlencoded"), 415,
                      mentioning: "application/x-www-form-urlencoded")
        expectProblem(try h.curl("POST", "/v1/bridges/br0/flows", body: "in_port=1,actions=output:7", contentType: "text/plain"), 422,
                      mentioning: "port 7")
        expectProblem(try h.curl("POST", "/v1/bridges/br0/flows", body: "in_port=1,actions=output:2", contentType: "text/plain", http2: true),
                      422, mentioning: "port 2")
        #expect(try h.curl("POST", "/v1/bridges/br0/flows", body: "priority=4,in_port=1,actions=drop", contentType: "text/plain").status == 201)
        expectProblem(try h.curl("POST", "/v1/bridges/br0/flows",
                                 body: #"{"priority":4,"check_overlap":true,"match":{"in_port":1,"eth_type":2048},"actions":[]}"#),
                      409, mentioning: "overlapping")
        // OkoSyntax checks OpenFlow prerequisites while parsing, so a missing one is a 400 naming the field.
        expectProblem(try h.curl("POST", "/v1/bridges/br0/flows", body: #"{"match":{"tcp_dst":80},"actions":[]}"#), 400, mentioning: "tcp_dst")
        #expect(try h.curl("DELETE", "/v1/bridges/br0/flows").json?["deleted"]?.unsignedValue == 1)
        // All-or-nothing: the second rule is refused, so the first one is not kept either.
        let bulk = try h.curl("POST", "/v1/bridges/br0/flows",
                              body: #"{"flows":[{"priority":3,"match":{"in_port":1},"actions":[]},{"match":{"in_port":1},"actions":[{"type":"output","port":9}]}]}"#)
        expectProblem(bulk, 422, mentioning: "flows[1]")
        #expect(try h.curl("GET", "/v1/bridges/br0/flows").json?["flows"] == .array([]))
    }

    @Test func accessControlSeparatesAdminReadAndAnonymous() async throws {
        let h = try await Harness(requireTokenForReads: true)
        defer { Task { await h.stop() } }
        let anonymous = try h.curl("GET", "/v1/bridges", token: nil)
        #expect(anonymous.status == 401)
        #expect(anonymous.headers.lowercased().contains("content-type: application/problem+json"))
        #expect(try h.curl("GET", "/v1/bridges", token: "wrong-token-000000000000").status == 401)
        #expect(try h.curl("GET", "/v1/bridges", token: readToken).status == 200)
        let forbidden = try h.curl("POST", "/v1/bridges", body: #"{"name":"br0"}"#, token: readToken, http2: true)
        #expect(forbidden.status == 403)
        #expect(forbidden.json?["detail"]?.stringValue?.contains("admin") == true)
        #expect(try h.curl("POST", "/v1/bridges", body: #"{"name":"br0"}"#, token: nil).status == 401)
        #expect(try h.curl("POST", "/v1/bridges", body: #"{"name":"br0"}"#).status == 201)
        #expect(try h.curl("GET", "/healthz", token: nil).status == 200)
        let scrape = try h.curl("GET", "/metrics", token: readToken).body
        #expect(metricValue(scrape, "oko_api_auth_refusals_total", containing: []) == 4)

        let open = try await Harness(requireTokenForReads: false)
        defer { Task { await open.stop() } }
        #expect(try open.curl("GET", "/v1/bridges", token: nil).status == 200)
        #expect(try open.curl("POST", "/v1/bridges", body: #"{"name":"br0"}"#, token: nil).status == 401)
    }

    @Test func flowListingPagesWithAnOpaqueCursor() async throws {
        let h = try await Harness()
        defer { Task { await h.stop() } }
        _ = try h.curl("POST", "/v1/bridges", body: #"{"name":"br0"}"#)
        _ = try h.curl("POST", "/v1/bridges/br0/ports", body: #"{"devargs":"memory0"}"#)
        let lines = (1...25).map { "priority=\($0),in_port=1,actions=drop" }.joined(separator: "\n")
        let added = try h.curl("POST", "/v1/bridges/br0/flows", body: lines, contentType: "text/plain")
        #expect(added.status == 201)
        var seen: [UInt64] = []
        var cursor: String?
        var pages = 0
        repeat {
            let page = try h.curl("GET", "/v1/bridges/br0/flows?limit=10" + (cursor.map { "&cursor=\($0)" } ?? ""), http2: pages % 2 == 1)
            #expect(page.status == 200)
            guard case .array(let flows)? = page.json?["flows"] else { Issue.record("\(page.body)"); return }
            seen += flows.compactMap { $0["id"]?.unsignedValue }
            cursor = page.json?["next"]?.stringValue
            pages += 1
        } while cursor != nil && pages < 10
        #expect(pages == 3)
        #expect(seen.count == 25)
        #expect(Set(seen).count == 25)
        #expect(try h.curl("GET", "/v1/bridges/br0/flows?cursor=bogus").status == 400)
        #expect(try h.curl("GET", "/v1/bridges/br0/flows?limit=0").status == 400)

        // Delete by match with a priority filter (strict) and then everything else.
        let strict = try h.curl("DELETE", "/v1/bridges/br0/flows?strict=true&priority=7&in_port=1")
        #expect(strict.json?["deleted"]?.unsignedValue == 1)
        let rest = try h.curl("DELETE", "/v1/bridges/br0/flows?in_port=1")
        #expect(rest.json?["deleted"]?.unsignedValue == 24)
    }

    @Test func modifyAndDeleteSingleRulesKeepIdsAndCounters() async throws {
        let h = try await Harness()
        defer { Task { await h.stop() } }
        _ = try h.curl("POST", "/v1/bridges", body: #"{"name":"br0"}"#)
        _ = try h.curl("POST", "/v1/bridges/br0/ports", body: #"{"devargs":"memory0"}"#)
        _ = try h.curl("POST", "/v1/bridges/br0/ports", body: #"{"devargs":"memory1"}"#)
        let added = try h.curl("POST", "/v1/bridges/br0/flows", body: "priority=9,tcp,tcp_dst=80,actions=output:2", contentType: "text/plain")
        #expect(added.status == 201, "\(added.body)")
        let id = try #require(added.json?["flows"].flatMap { if case .array(let a) = $0 { a.first?["id"]?.unsignedValue } else { nil } })
        let patched = try h.curl("PATCH", "/v1/bridges/br0/flows/\(id)", body: #"{"actions":[{"type":"output","port":1}]}"#)
        #expect(patched.status == 200, "\(patched.body)")
        #expect(patched.json?["text"]?.stringValue?.contains("actions=output:1") == true, "\(patched.body)")
        // The list renders rules from a cache; a changed rule must come back changed.
        let listed = try h.curl("GET", "/v1/bridges/br0/flows?tcp_dst=80")
        #expect(listed.body.contains("actions=output:1") && !listed.body.contains("actions=output:2"), "\(listed.body)")
        let byMatch = try h.curl("PATCH", "/v1/bridges/br0/flows", body: "tcp,actions=output:2", contentType: "text/plain")
        #expect(byMatch.json?["modified"]?.unsignedValue == 1, "\(byMatch.body)")
        let text = try h.curl("GET", "/v1/bridges/br0/flows/\(id)", accept: "text/plain")
        #expect(text.body.contains("tcp,tp_dst=80"), "\(text.body)")
        #expect(text.body.contains("actions=output:2"))
        let trace = try h.curl("POST", "/v1/bridges/br0/trace", body: #"{"in_port":1,"packet":"\#(udpFrame().map { String(format: "%02x", $0) }.joined())"}"#)
        #expect(trace.status == 200, "\(trace.body)")
        guard case .array(let missSteps)? = trace.json?["steps"] else { Issue.record("no steps: \(trace.body)"); return }
        #expect(missSteps.first?["flow"] == nil, "a UDP frame must miss the tcp rule: \(trace.body)")
        let hit = try h.curl("POST", "/v1/bridges/br0/trace", body: #"{"in_port":1,"fields":{"eth_type":"0x0800","ip_proto":6,"tcp_dst":80}}"#)
        #expect(hit.status == 200, "\(hit.body)")
        guard case .array(let hitSteps)? = hit.json?["steps"] else { Issue.record("no steps: \(hit.body)"); return }
        #expect(hitSteps.first?["flow"]?.unsignedValue == id, "\(hit.body)")
        #expect(hit.json?["actions"] == .array([.object([("type", .string("output")), ("port", .unsigned(2))])]), "\(hit.body)")
        #expect(hit.json?["outputs"] == .array([.unsigned(2)]), "\(hit.body)")
        #expect(try h.curl("DELETE", "/v1/bridges/br0/flows/\(id)").status == 204)
        #expect(try h.curl("GET", "/v1/bridges/br0/flows/\(id)").status == 404)
        #expect(try h.curl("DELETE", "/v1/bridges/br0/ports/2").status == 204)
        #expect(try h.curl("GET", "/v1/bridges/br0/ports/2").status == 404)
        #expect(try h.curl("DELETE", "/v1/bridges/br0").status == 204)
        #expect(try h.curl("GET", "/v1/bridges").json?["bridges"] == .array([]))
    }

    @Test func metricsScrapeTakenWhilePacketsFlowPassesPromtool() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool") else {
            print("promtool not installed; skipping the promtool check")
            return
        }
        let h = try await Harness()
        defer { Task { await h.stop() } }
        _ = try h.curl("POST", "/v1/bridges", body: #"{"name":"br0"}"#)
        _ = try h.curl("POST", "/v1/bridges/br0/ports", body: #"{"devargs":"memory0","name":"in"}"#)
        _ = try h.curl("POST", "/v1/bridges/br0/ports", body: #"{"devargs":"memory1","name":"out"}"#)
        _ = try h.curl("POST", "/v1/bridges/br0/flows", body: "in_port=1,actions=output:2", contentType: "text/plain")
        try h.startPMD(bridge: "br0")
        let rx = try #require(h.ports.port(named: "in"))
        let tx = try #require(h.ports.port(named: "out"))
        let sending = RunFlag()
        let sender = Task.detached {
            var i = 0
            while sending.running.load(ordering: .relaxed) {
                _ = rx.inject(udpFrame(sourcePort: UInt16(truncatingIfNeeded: i)))
                i += 1
                if i % 50 == 0 { _ = tx.takeTransmitted(); try? await Task.sleep(for: .milliseconds(1)) }
            }
        }
        // Scrape only once traffic is visibly flowing, and while it still flows.
        await waitUntil { (try? h.service.port(bridge: "br0", number: 2).statistics.txPackets) ?? 0 > 100 }
        let scrape = try h.curl("GET", "/metrics", http2: true)
        sending.running.store(false, ordering: .relaxed)
        await sender.value
        #expect(metricValue(scrape.body, "oko_port_tx_packets_total", containing: [#"port_name="out""#]) ?? 0 > 100)
        #expect(scrape.headers.contains("text/plain; version=0.0.4"))
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("oko-scrape-\(UUID().uuidString).prom")
        try scrape.body.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/promtool")
        process.arguments = ["check", "metrics"]
        process.standardInput = try FileHandle(forReadingFrom: file)
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let report = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "promtool: \(report)")
        #expect(scrape.body.contains("oko_rule_packets_total{"))
    }
    @Test func multiplexedHTTP2RequestsOnOneConnectionAllApply() async throws {
        let h = try await Harness()
        defer { Task { await h.stop() } }
        _ = try h.curl("POST", "/v1/bridges", body: #"{"name":"br0"}"#)
        _ = try h.curl("POST", "/v1/bridges/br0/ports", body: #"{"devargs":"memory0"}"#)
        let bodyFile = FileManager.default.temporaryDirectory.appendingPathComponent("oko-h2load-\(UUID().uuidString)")
        try "priority=100,in_port=1,actions=drop".write(to: bodyFile, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: bodyFile) }
        // h2load: 40 POSTs over one HTTP/2 connection, up to 20 streams at a time (same rule: add replaces it).
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/h2load")
        process.arguments = ["-n", "40", "-c", "1", "-m", "20", "-d", bodyFile.path,
                             "-H", "authorization: Bearer \(adminToken)", "-H", "content-type: text/plain",
                             h.base + "/v1/bridges/br0/flows"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let report = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(report.contains("40 succeeded"), "\(report)")
        #expect(report.contains("status codes: 0 2xx") == false, "\(report)")
        let scrape = try h.curl("GET", "/metrics").body
        #expect(metricValue(scrape, "oko_api_requests_total", containing: [#"method="POST""#, #"code="201""#]) == 42, "\(scrape)")
        guard case .array(let flows)? = try h.curl("GET", "/v1/bridges/br0/flows").json?["flows"] else {
            Issue.record("no flows")
            return
        }
        #expect(flows.count == 1)
    }
}
