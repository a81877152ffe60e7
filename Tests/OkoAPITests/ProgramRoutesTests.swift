// End-to-end tests of the program and map routes: examples/bpf programs compiled with clang at test time,
// loaded over REST with curl, used by rules on a bridge with a running PMD; maps read and written while
// packets flow.
import Foundation
import OkoAPI
import OkoDatapath
import OkoSyntax
import Testing

enum CompiledPrograms {
    static let clang = "/usr/bin/clang"
    static var available: Bool { FileManager.default.isExecutableFile(atPath: clang) }
    static let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("examples/bpf")

    struct CompileError: Error, CustomStringConvertible { let description: String }

    /// Compiles `source` (a path) with `clang -O2 -target bpf -g` and returns the object's path.
    static func compile(_ source: String) throws -> String {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("oko-api-\(UUID().uuidString).o").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: clang)
        process.arguments = ["-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-I", examples.path, "-c", source, "-o", output]
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let message = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CompileError(description: "clang failed on \(source): \(String(decoding: message, as: UTF8.self))")
        }
        return output
    }

    static func example(_ name: String) throws -> String { try compile(examples.appendingPathComponent("\(name).c").path) }

    static func source(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("oko-api-\(UUID().uuidString).c").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try compile(path)
    }
}

/// `udpFrame` sent to 10.0.0.`lastOctet` (the IPv4 checksum is not checked by the datapath).
func udpFrame(toHost lastOctet: UInt8, sourcePort: UInt16 = 1234) -> [UInt8] {
    var f = udpFrame(sourcePort: sourcePort)
    f[33] = lastOctet
    return f
}

@Suite(.serialized) struct ProgramRoutesTests {
    func harnessWithBridge() async throws -> Harness {
        let h = try await Harness(programs: LoadedProgramCatalogue())
        #expect(try h.curl("POST", "/v1/bridges", body: #"{"name":"br0"}"#).status == 201)
        #expect(try h.curl("POST", "/v1/bridges/br0/ports", body: #"{"devargs":"memory0","name":"p1"}"#).status == 201)
        #expect(try h.curl("POST", "/v1/bridges/br0/ports", body: #"{"devargs":"memory1","name":"p2"}"#).status == 201)
        return h
    }

    @Test func statelessFirewallLoadedOverRESTDropsBlockedDestinationsAndCountsThemInItsMap() async throws {
        guard CompiledPrograms.available else { print("ProgramRoutesTests: skipping, \(CompiledPrograms.clang) is absent"); return }
        let object = try CompiledPrograms.example("stateless-firewall")
        defer { try? FileManager.default.removeItem(atPath: object) }
        let h = try await harnessWithBridge()
        defer { Task { await h.stop() } }

        #expect(try h.curl("PUT", "/v1/bridges/br0/programs/4", body: "@" + object, contentType: "text/plain").status == 415)
        let put = try h.curl("PUT", "/v1/bridges/br0/programs/4", body: "@" + object, contentType: "application/octet-stream")
        #expect(put.status == 201, "\(put.body)")
        #expect(put.json?["section"]?.stringValue == "oko/filter")
        #expect((put.json?["instructions"]?.unsignedValue ?? 0) > 0)
        guard case .array(let maps)? = put.json?["maps"], let blocked = maps.first else { Issue.record("no maps: \(put.body)"); return }
        #expect(blocked["name"]?.stringValue == "blocked")
        #expect(blocked["key_size"]?.unsignedValue == 4)
        #expect(blocked["value_size"]?.unsignedValue == 8)
        #expect(blocked["value_type"]?["size"]?.unsignedValue == 8, "\(put.body)")

        // Block 10.0.0.2 with a zero hit counter.
        let update = try h.curl("PUT", "/v1/bridges/br0/programs/4/maps/blocked",
                                body: #"{"entries":[{"key":"0a000002","value":"0000000000000000"}]}"#)
        #expect(update.status == 200, "\(update.body)")
        #expect(update.json?["updated"]?.unsignedValue == 1)

        let unknown = try h.curl("POST", "/v1/bridges/br0/flows", body: "priority=1,in_port=1,filter_prog=9,actions=output:2\n", contentType: "text/plain")
        #expect(unknown.status == 422, "\(unknown.body)")
        let rules = try h.curl("POST", "/v1/bridges/br0/flows",
                               body: "priority=1,in_port=1,filter_prog=4,actions=output:2\npriority=0,actions=drop\n", contentType: "text/plain")
        #expect(rules.status == 201, "\(rules.body)")
        // Rules name the operator's id; the datapath's own id stays internal.
        let listed = try h.curl("GET", "/v1/bridges/br0/flows", accept: "text/plain")
        #expect(listed.body.contains("filter_prog=4"), "\(listed.body)")
        try h.startPMD(bridge: "br0")

        let rx = try #require(h.ports.port(named: "p1"))
        let tx = try #require(h.ports.port(named: "p2"))
        for i in 0..<3 { #expect(rx.inject(udpFrame(toHost: 2, sourcePort: UInt16(2000 + i)))) }
        for i in 0..<4 { #expect(rx.inject(udpFrame(toHost: 3, sourcePort: UInt16(3000 + i)))) }
        var received: [[UInt8]] = []
        await waitUntil { received += tx.takeTransmitted(); return received.count >= 4 }
        // Give the blocked packets (already queued before the allowed ones finished) time to be judged.
        try await Task.sleep(for: .milliseconds(100))
        received += tx.takeTransmitted()
        #expect(received.count == 4)
        #expect(received.allSatisfy { $0[33] == 3 })

        // The blocked destination's hit counter (little-endian u64) reads back through the API.
        let entry = try h.curl("GET", "/v1/bridges/br0/programs/4/maps/blocked?key=0a000002")
        #expect(entry.status == 200, "\(entry.body)")
        guard case .array(let entries)? = entry.json?["entries"] else { Issue.record("no entries: \(entry.body)"); return }
        #expect(entries.first?["value"]?.stringValue == "0300000000000000")
        #expect(entries.first?["value_typed"]?.unsignedValue == 3, "\(entry.body)")
        let page = try h.curl("GET", "/v1/bridges/br0/programs/4/maps/0?limit=10")
        #expect(page.json?["map"]?["entries"]?.unsignedValue == 1)

        // Unblocking through the API lets the next packets to 10.0.0.2 through.
        let removal = try h.curl("DELETE", "/v1/bridges/br0/programs/4/maps/blocked?key=0a000002")
        #expect(removal.json?["deleted"]?.unsignedValue == 1)
        for i in 0..<2 { #expect(rx.inject(udpFrame(toHost: 2, sourcePort: UInt16(4000 + i)))) }
        var after: [[UInt8]] = []
        await waitUntil { after += tx.takeTransmitted(); return after.count >= 2 }
        #expect(after.count == 2)
        #expect(after.allSatisfy { $0[33] == 2 })

        let described = try h.curl("GET", "/v1/bridges/br0/programs/4?disassemble=true")
        #expect(described.json?["referenced_by"]?.unsignedValue == 1)
        #expect((described.json?["stats"]?["matches"]?.unsignedValue ?? 0) >= 6)
        if case .array(let lines)? = described.json?["disassembly"] { #expect(!lines.isEmpty) } else { Issue.record("no disassembly") }
        let metrics = try h.curl("GET", "/metrics").body
        #expect((metricValue(metrics, "oko_program_runs_total", containing: [#"program="4""#]) ?? 0) >= 9)
        #expect(metricValue(metrics, "oko_map_entries", containing: [#"map="blocked""#]) == 0)

        let list = try h.curl("GET", "/v1/bridges/br0/programs")
        if case .array(let programs)? = list.json?["programs"] { #expect(programs.count == 1) } else { Issue.record("no list: \(list.body)") }
        #expect(try h.curl("DELETE", "/v1/bridges/br0/programs/4").status == 409)
    }

    /// The firewall with a different hit increment (observable new code), and one whose `blocked` map has
    /// another value size (cannot keep the old map).
    static func firewallVariant(increment: Int, valueType: String = "__u64") throws -> String {
        try CompiledPrograms.source("""
            #include "oko.h"
            struct {
                __uint(type, BPF_MAP_TYPE_HASH);
                __uint(max_entries, 4096);
                __type(key, __be32);
                __type(value, \(valueType));
            } blocked SEC(".maps");
            OKO_PROGRAM(stateless_firewall_v2) {
                if (oko_ethertype(pkt, len) != OKO_ETH_P_IP) return 1;
                if (len < OKO_ETH_HLEN + sizeof(struct oko_ipv4)) return 0;
                struct oko_ipv4 *ip = pkt + OKO_ETH_HLEN;
                __be32 destination = ip->destination;
                \(valueType) *hits = bpf_map_lookup_elem(&blocked, &destination);
                if (hits) { __sync_fetch_and_add(hits, \(increment)); return 0; }
                return 1;
            }
            char LICENSE[] SEC("license") = "GPL";
            """)
    }

    @Test func replacingAProgramRulesUseSwapsItInPlaceAndKeepsMatchingMapsWhenAsked() async throws {
        guard CompiledPrograms.available else { print("ProgramRoutesTests: skipping, \(CompiledPrograms.clang) is absent"); return }
        let v1 = try CompiledPrograms.example("stateless-firewall")
        let v2 = try Self.firewallVariant(increment: 2)
        let narrow = try Self.firewallVariant(increment: 1, valueType: "__u32")
        defer { for f in [v1, v2, narrow] { try? FileManager.default.removeItem(atPath: f) } }
        let h = try await harnessWithBridge()
        defer { Task { await h.stop() } }
        #expect(try h.curl("PUT", "/v1/bridges/br0/programs/4", body: "@" + v1, contentType: "application/octet-stream").status == 201)
        _ = try h.curl("PUT", "/v1/bridges/br0/programs/4/maps/blocked", body: #"{"entries":[{"key":"0a000002","value":"0000000000000000"}]}"#)
        #expect(try h.curl("POST", "/v1/bridges/br0/flows", body: "priority=1,in_port=1,filter_prog=4,actions=output:2\npriority=0,actions=drop\n",
                           contentType: "text/plain").status == 201)
        try h.startPMD(bridge: "br0")
        let rx = try #require(h.ports.port(named: "p1"))
        let tx = try #require(h.ports.port(named: "p2"))
        func hits() throws -> UInt64? {
            guard let hex = try h.curl("GET", "/v1/bridges/br0/programs/4/maps/blocked?key=0a000002").json?["entries"]?.firstValueHex
            else { return nil }
            return UInt64(littleEndianHex: hex)
        }
        /// Sends `blocked` packets to 10.0.0.2 and `allowed` to 10.0.0.3; returns how many left port 2 once
        /// the blocked ones are counted.
        func exchange(blocked: Int, allowed: Int, base: UInt16, expectHits: UInt64) async throws -> Int {
            for i in 0..<blocked { #expect(rx.inject(udpFrame(toHost: 2, sourcePort: base + UInt16(i)))) }
            for i in 0..<allowed { #expect(rx.inject(udpFrame(toHost: 3, sourcePort: base + 100 + UInt16(i)))) }
            var received: [[UInt8]] = []
            var counted: UInt64? = nil
            for _ in 0..<300 {
                received += tx.takeTransmitted()
                counted = try hits()
                if received.count >= allowed && counted == expectHits { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(counted == expectHits)
            return received.count
        }
        #expect(try await exchange(blocked: 3, allowed: 2, base: 1000, expectHits: 3) == 2)

        // Replaced while rules use it: 200, the rule still names program 4, the map kept its entry and count,
        // and the new code (increment 2) runs from now on.
        let replaced = try h.curl("PUT", "/v1/bridges/br0/programs/4?keep_maps=true", body: "@" + v2, contentType: "application/octet-stream")
        #expect(replaced.status == 200, "\(replaced.body)")
        #expect(replaced.json?["function"]?.stringValue == "stateless_firewall_v2")
        #expect(replaced.json?["referenced_by"]?.unsignedValue == 1)
        #expect((replaced.json?["stats"]?["runs"]?.unsignedValue ?? 0) >= 5, "statistics continue: \(replaced.body)")
        #expect(try h.curl("GET", "/v1/bridges/br0/flows", accept: "text/plain").body.contains("filter_prog=4"))
        #expect(try hits() == 3)
        #expect(try await exchange(blocked: 2, allowed: 1, base: 2000, expectHits: 7) == 1)

        // A map of the same name with another definition cannot be kept: 409 naming it; nothing changes.
        let mismatch = try h.curl("PUT", "/v1/bridges/br0/programs/4?keep_maps=true", body: "@" + narrow, contentType: "application/octet-stream")
        #expect(mismatch.status == 409, "\(mismatch.body)")
        #expect(mismatch.json?["detail"]?.stringValue?.contains("blocked") == true, "\(mismatch.body)")
        #expect(mismatch.json?["detail"]?.stringValue?.contains("value size 4") == true, "\(mismatch.body)")
        #expect(try h.curl("GET", "/v1/bridges/br0/programs/4").json?["function"]?.stringValue == "stateless_firewall_v2")

        // Without keep_maps the new program starts with empty maps: 10.0.0.2 is no longer blocked.
        #expect(try h.curl("PUT", "/v1/bridges/br0/programs/4", body: "@" + v1, contentType: "application/octet-stream").status == 200)
        #expect(try hits() == nil)
        for i in 0..<2 { #expect(rx.inject(udpFrame(toHost: 2, sourcePort: UInt16(3000 + i)))) }
        var passed: [[UInt8]] = []
        await waitUntil { passed += tx.takeTransmitted(); return passed.count >= 2 }
        #expect(passed.count == 2)
        #expect(try h.curl("DELETE", "/v1/bridges/br0/programs/4").status == 409)
    }

    @Test func rateLimiterConfiguredThroughItsMapLimitsASourceAndCountsDrops() async throws {
        guard CompiledPrograms.available else { print("ProgramRoutesTests: skipping, \(CompiledPrograms.clang) is absent"); return }
        let object = try CompiledPrograms.example("rate-limiter")
        defer { try? FileManager.default.removeItem(atPath: object) }
        let h = try await harnessWithBridge()
        defer { Task { await h.stop() } }
        #expect(try h.curl("PUT", "/v1/bridges/br0/programs/2", body: "@" + object, contentType: "application/octet-stream").status == 201)
        let maps = try h.curl("GET", "/v1/bridges/br0/programs/2/maps")
        guard case .array(let list)? = maps.json?["maps"] else { Issue.record("no maps: \(maps.body)"); return }
        #expect(Set(list.compactMap { $0["name"]?.stringValue }) == ["config", "buckets", "drops"])
        // 1 packet per second with a burst of 3, given as typed JSON (encoded through the object's BTF).
        let config = try h.curl("PUT", "/v1/bridges/br0/programs/2/maps/config",
                                body: #"{"entries":[{"key_typed":0,"value_typed":{"rate":1,"burst":3}}]}"#)
        #expect(config.status == 200, "\(config.body)")
        let stored = try h.curl("GET", "/v1/bridges/br0/programs/2/maps/config?key=00000000").json?["entries"]?.firstValueHex
        #expect(stored == "01000000000000000300000000000000")
        #expect(try h.curl("PUT", "/v1/bridges/br0/programs/2/maps/config",
                           body: #"{"entries":[{"key_typed":0,"value_typed":{"rate":1,"speed":3}}]}"#).status == 400)
        #expect(try h.curl("POST", "/v1/bridges/br0/flows",
                           body: "priority=1,in_port=1,filter_prog=2,actions=output:2\npriority=0,actions=drop\n", contentType: "text/plain").status == 201)
        try h.startPMD(bridge: "br0")
        let rx = try #require(h.ports.port(named: "p1"))
        let tx = try #require(h.ports.port(named: "p2"))
        for i in 0..<10 { #expect(rx.inject(udpFrame(sourcePort: UInt16(5000 + i)))) }
        func drops() throws -> UInt64? {
            guard let hex = try h.curl("GET", "/v1/bridges/br0/programs/2/maps/drops?key=00000000").json?["entries"]?.firstValueHex else { return nil }
            return UInt64(littleEndianHex: hex)
        }
        var received: [[UInt8]] = []
        var dropped: UInt64 = 0
        for _ in 0..<200 {
            received += tx.takeTransmitted()
            dropped = try drops() ?? 0
            if UInt64(received.count) + dropped >= 10 { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        // The burst passes; a second pass of the bucket may add one token if the injection was slow.
        #expect((3...4).contains(received.count), "\(received.count) packets left port 2")
        #expect(UInt64(received.count) + dropped == 10)

        // Raising the rate through the config map lets the same source through again.
        #expect(try h.curl("PUT", "/v1/bridges/br0/programs/2/maps/config",
                           body: #"{"entries":[{"key":"00000000","value":"40420f00000000006400000000000000"}]}"#).status == 200)
        try await Task.sleep(for: .milliseconds(20))
        for i in 0..<5 { #expect(rx.inject(udpFrame(sourcePort: UInt16(6000 + i)))) }
        var more: [[UInt8]] = []
        await waitUntil { more += tx.takeTransmitted(); return more.count >= 5 }
        #expect(more.count == 5)
        #expect(try drops() == dropped)
    }

    @Test func replacingAnUnusedProgramKeepsMatchingMapsOnlyWhenAsked() async throws {
        guard CompiledPrograms.available else { print("ProgramRoutesTests: skipping, \(CompiledPrograms.clang) is absent"); return }
        let object = try CompiledPrograms.example("stateless-firewall")
        defer { try? FileManager.default.removeItem(atPath: object) }
        let h = try await harnessWithBridge()
        defer { Task { await h.stop() } }
        #expect(try h.curl("PUT", "/v1/bridges/br0/programs/7", body: "@" + object, contentType: "application/octet-stream").status == 201)
        _ = try h.curl("PUT", "/v1/bridges/br0/programs/7/maps/blocked", body: #"{"entries":[{"key":"0a000009","value":"0500000000000000"}]}"#)

        let kept = try h.curl("PUT", "/v1/bridges/br0/programs/7?keep_maps=true", body: "@" + object, contentType: "application/octet-stream")
        #expect(kept.status == 200, "\(kept.body)")
        #expect(try h.curl("GET", "/v1/bridges/br0/programs/7/maps/blocked?key=0a000009").json?["entries"]?.arrayCount == 1)

        #expect(try h.curl("PUT", "/v1/bridges/br0/programs/7", body: "@" + object, contentType: "application/octet-stream").status == 200)
        #expect(try h.curl("GET", "/v1/bridges/br0/programs/7/maps/blocked?key=0a000009").status == 404)
        #expect(try h.curl("DELETE", "/v1/bridges/br0/programs/7").status == 204)
        #expect(try h.curl("GET", "/v1/bridges/br0/programs/7").status == 404)
    }

    @Test func unsafeAndMalformedObjectsAreRefusedWithProblems() async throws {
        guard CompiledPrograms.available else { print("ProgramRoutesTests: skipping, \(CompiledPrograms.clang) is absent"); return }
        // Reads packet bytes without checking the length: the verifier must refuse it.
        let unsafe = try CompiledPrograms.source("""
            #include "oko.h"
            OKO_PROGRAM(unchecked) { return *(__u64 *)((char *)pkt + 40); }
            char LICENSE[] SEC("license") = "GPL";
            """)
        defer { try? FileManager.default.removeItem(atPath: unsafe) }
        let h = try await harnessWithBridge()
        defer { Task { await h.stop() } }
        let refused = try h.curl("PUT", "/v1/bridges/br0/programs/2", body: "@" + unsafe, contentType: "application/octet-stream")
        #expect(refused.status == 422, "\(refused.body)")
        #expect(refused.json?["instruction"]?.unsignedValue != nil, "\(refused.body)")
        #expect(refused.json?["detail"]?.stringValue?.contains("verifier") == true)
        let garbage = try h.curl("PUT", "/v1/bridges/br0/programs/2", body: "not an elf object", contentType: "application/octet-stream")
        #expect(garbage.status == 400, "\(garbage.body)")
        #expect(try h.curl("GET", "/v1/bridges/br0/programs/2").status == 404)
    }
}

extension JSONValue {
    var arrayCount: Int? { if case .array(let a) = self { a.count } else { nil } }
    var firstValueHex: String? { if case .array(let a) = self { a.first?["value"]?.stringValue } else { nil } }
}

extension UInt64 {
    /// Parses a little-endian hex byte string (as maps hold native x86 integers).
    init?(littleEndianHex hex: String) {
        guard hex.count == 16 else { return nil }
        var value: UInt64 = 0
        let chars = Array(hex)
        for i in stride(from: 14, through: 0, by: -2) {
            guard let byte = UInt8(String(chars[i...i + 1]), radix: 16) else { return nil }
            value = value << 8 | UInt64(byte)
        }
        self = value
    }
}
