import Foundation
import Testing

/// A running okod (child process) with its management API and OpenFlow listener on ephemeral ports.
final class OpenFlowOkod {
    let process: ChildProcess
    let directory: URL
    let apiPort: Int
    let openflowPort: Int
    let token: String

    var target: String { "tcp:127.0.0.1:\(openflowPort)" }
    var api: String { "http://127.0.0.1:\(apiPort)/v1/bridges/br0" }

    /// Starts okod on `ports` (devargs) with `openflow` extra YAML keys; throws if it does not come up.
    init(label: String, ports: [String], openflow: String = "", flows: [String] = []) throws {
        directory = try TestEnvironment.temporaryDirectory(label)
        let tokens = directory.appendingPathComponent("tokens")
        let flowLines = flows.isEmpty ? "" : "    flows:\n" + flows.map { "      - \"\($0)\"\n" }.joined()
        let config = directory.appendingPathComponent("okod.yaml")
        try """
            dpdk:
              eal_args: ["-l", "0-1", "--no-pci"]
              mbufs: 8192
            stats_interval: 0
            api: {listen: "127.0.0.1:0", token_file: "\(tokens.path)"}
            openflow:
              listen: "127.0.0.1:0"
            \(openflow)
            bridges:
              - name: br0
                ports:
            \(ports.map { "      - devargs: \"\($0)\"" }.joined(separator: "\n"))
            \(flowLines)
            """.write(to: config, atomically: true, encoding: .utf8)
        process = try ChildProcess(TestEnvironment.executable("okod"), ["--config", config.path])
        guard process.waitForOutput(timeout: 30, { $0.contains("okod ready") }) else {
            throw OkodStartFailure(output: process.output)
        }
        let output = process.output
        func port(after marker: String) -> Int? {
            guard let line = output.split(separator: "\n").first(where: { $0.contains(marker) }),
                  let range = line.range(of: marker) else { return nil }
            let rest = line[range.upperBound...]
            return Int(rest.split(separator: ":").last?.prefix { $0.isNumber } ?? "")
        }
        guard let api = port(after: "management API listening on "),
              let openflowLine = output.split(separator: "\n").first(where: { $0.contains("OpenFlow 1.3 listening on ") }),
              let of = openflowLine.components(separatedBy: "listening on 127.0.0.1:").last.flatMap({ Int($0.prefix { $0.isNumber }) })
        else { throw OkodStartFailure(output: output) }
        apiPort = api
        openflowPort = of
        token = try String(contentsOf: tokens, encoding: .utf8).split(separator: "\n")
            .first { $0.hasPrefix("admin ") }.map { String($0.split(separator: " ")[1]) } ?? ""
    }

    /// Stops okod with SIGTERM; true if it exited cleanly in time.
    func stop() -> Bool {
        kill(process.process.processIdentifier, SIGTERM)
        let exited = process.waitForExit(timeout: 5) != nil
        try? FileManager.default.removeItem(at: directory)
        return exited && process.process.terminationStatus == 0
    }

    deinit {
        if process.process.isRunning { kill(process.process.processIdentifier, SIGKILL) }
    }

    /// GET on the REST API; the decoded JSON object.
    func get(_ path: String) throws -> [String: Any] {
        let (_, text) = try runToCompletion(URL(fileURLWithPath: "/usr/bin/curl"), ["-s", "--max-time", "5", api + path])
        return (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }
}

struct OkodStartFailure: Error, CustomStringConvertible {
    let output: String
    var description: String { "okod did not start:\n\(output)" }
}

/// Runs `timeout SECONDS command...` so that no child can hang a test; returns (status, stdout+stderr).
func runBounded(_ seconds: Int, _ arguments: [String]) throws -> (Int32, String) {
    try runToCompletion(URL(fileURLWithPath: "/usr/bin/timeout"), ["-k", "2", String(seconds)] + arguments)
}

/// Oko's OpenFlow extensions end to end against okod on DPDK ports, driven by the stdlib-only Python
/// client (scripts/oko_openflow.py) and by `okoctl of`: LOAD_FILTER_PROG shared with REST, a
/// `filter_prog` rule, UPDATE_MAP / DUMP_MAP, SEND_MAPS dumps at run time (rate-limited) and errors.
@Suite(.serialized)
struct OpenFlowExtensionTests {
    let client = TestEnvironment.packageRoot.appendingPathComponent("scripts/oko_openflow.py").path

    private func python(_ arguments: [String], seconds: Int = 20) throws -> (Int32, String) {
        try runBounded(seconds, ["python3", client] + arguments)
    }

    private func jsonLines(_ text: String) -> [[String: Any]] {
        text.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }
    }

    /// The value (little-endian u64 hex) of `key` in map 0 of a dump object, nil if absent.
    private func counter(in dump: [String: Any], key: String) -> UInt64? {
        let maps = dump["maps"] as? [[String: Any]] ?? []
        let entries = maps.first { ($0["map"] as? Int) == 0 }?["entries"] as? [[String: Any]] ?? []
        guard let hex = entries.first(where: { ($0["key"] as? String) == key })?["value"] as? String else { return nil }
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            bytes.append(UInt8(hex[index..<next], radix: 16) ?? 0)
            index = next
        }
        return bytes.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }

    @Test func extensionMessagesLoadAProgramFilterTrafficAndReportMaps() throws {
        let scratch = try TestEnvironment.temporaryDirectory("of-ext-src")
        defer { try? FileManager.default.removeItem(at: scratch) }
        guard let object = try compileExample("stateless-firewall", into: scratch) else {
            print("SKIPPED: clang is not installed")
            return
        }
        let input = scratch.appendingPathComponent("in.pcap")
        try makePcap(["demo", input.path, "--count", "400"])
        let okod = try OpenFlowOkod(label: "of-ext", ports: ["net_pcap0,rx_pcap=\(input.path),infinite_rx=1", "net_null0,no-rx=1"])
        defer { _ = okod.stop() }

        // A file that is not an ELF object: an Oko experimenter error, and nothing is loaded.
        let garbage = scratch.appendingPathComponent("garbage.o")
        try Data("not an object".utf8).write(to: garbage)
        let (badStatus, badOutput) = try python([okod.target, "load-filter-prog", "2", garbage.path])
        #expect(badStatus == 1)
        #expect(badOutput.contains("OFPET_EXPERIMENTER") && badOutput.contains("bad object"), "\(badOutput)")

        // LOAD_FILTER_PROG over OpenFlow is visible in REST under the same id.
        let (loadStatus, loadOutput) = try python([okod.target, "load-filter-prog", "1", object.path])
        #expect(loadStatus == 0, "\(loadOutput)")
        let programs = try okod.get("/programs")["programs"] as? [[String: Any]] ?? []
        #expect(programs.compactMap { $0["id"] as? Int } == [1], "REST programs: \(programs)")

        // UPDATE_MAP: block 10.0.0.2 (every IPv4 packet of the demo traffic) with a zero hit counter.
        let (updateStatus, updateOutput) = try python([okod.target, "update-map", "1", "0", "0a000002=0000000000000000"])
        #expect(updateStatus == 0, "\(updateOutput)")
        // A badly sized entry is refused and changes nothing.
        let (sizeStatus, sizeOutput) = try python([okod.target, "update-map", "1", "0", "0a000003=00"])
        #expect(sizeStatus == 1 && sizeOutput.contains("bad map entry"), "\(sizeOutput)")

        // filter_prog rule (ARP passes the program, output 2) and a SEND_MAPS rule for what it refuses.
        let (flowStatus, flowOutput) = try python([okod.target, "add-flow", "--priority", "10", "--in-port", "1",
                                                   "--filter-prog", "1", "--output", "2"])
        #expect(flowStatus == 0, "\(flowOutput)")
        let (sendStatus, sendOutput) = try python([okod.target, "add-flow", "--priority", "5", "--in-port", "1",
                                                   "--send-maps", "1:0", "--cookie", "0x5e"])
        #expect(sendStatus == 0, "\(sendOutput)")
        // SEND_MAPS naming a program that is not loaded: OFPET_BAD_ACTION / OFPBAC_BAD_ARGUMENT.
        let (unloadedStatus, unloadedOutput) = try python([okod.target, "add-flow", "--priority", "6", "--send-maps", "9:0"])
        #expect(unloadedStatus == 1 && unloadedOutput.contains("type 2 code 5"), "\(unloadedOutput)")

        // SEND_MAPS: asynchronous DUMP_MAP_REPLYs arrive with the blocked entry's growing counter, at most
        // 10 per second (DatapathAgent.sendMapsPerSecond).
        let started = Date()
        let (watchStatus, watchOutput) = try python([okod.target, "watch-maps", "--count", "100", "--wait", "2.5"])
        let watched = Date().timeIntervalSince(started)
        #expect(watchStatus == 0, "\(watchOutput)")
        let dumps = jsonLines(watchOutput)
        #expect(dumps.count >= 5, "SEND_MAPS dumps in \(watched) s: \(dumps.count)\n\(watchOutput.prefix(600))")
        #expect(Double(dumps.count) <= 10 * watched + 2, "rate limit exceeded: \(dumps.count) dumps in \(watched) s")
        let counts = dumps.compactMap { counter(in: $0, key: "0a000002") }
        #expect(counts.count == dumps.count && dumps.allSatisfy { ($0["program"] as? Int) == 1 })
        #expect((counts.last ?? 0) > (counts.first ?? 0), "the program's hit counter must grow: \(counts)")
        #expect(!jsonLines(watchOutput).contains { counter(in: $0, key: "0a000003") != nil }, "the refused update wrote an entry")

        // DUMP_MAP on request, through the Python client and through okoctl.
        let (dumpStatus, dumpOutput) = try python([okod.target, "dump-map", "1", "0"])
        #expect(dumpStatus == 0, "\(dumpOutput)")
        let requested = jsonLines(dumpOutput).first ?? [:]
        #expect((counter(in: requested, key: "0a000002") ?? 0) >= (counts.last ?? 1), "\(dumpOutput)")
        let okoctl = TestEnvironment.executable("okoctl").path
        let (ctlStatus, ctlOutput) = try runBounded(20, [okoctl, "of", "dump-map", okod.target, "1", "0", "--json"])
        #expect(ctlStatus == 0, "\(ctlOutput)")
        #expect((counter(in: jsonLines(ctlOutput).first ?? [:], key: "0a000002") ?? 0) > 0, "\(ctlOutput)")

        // The datapath obeyed the program: REST sees both OpenFlow rules with their counters.
        let flows = try okod.get("/flows")["flows"] as? [[String: Any]] ?? []
        func packets(_ priority: Int) -> Int {
            ((flows.first { ($0["priority"] as? Int) == priority }?["stats"] as? [String: Any])?["packets"] as? Int) ?? -1
        }
        #expect(packets(10) > 0 && packets(5) > 5 * packets(10), "ARP passes, IPv4 is refused: \(flows)")

        // okoctl of update-map resets the counter; okoctl reports a refused load with exit status 1.
        let (resetStatus, resetOutput) = try runBounded(20, [okoctl, "of", "update-map", okod.target, "1", "0",
                                                             "0a000009=0100000000000000"])
        #expect(resetStatus == 0, "\(resetOutput)")
        let (afterStatus, afterOutput) = try python([okod.target, "dump-map", "1"])
        #expect(afterStatus == 0 && counter(in: jsonLines(afterOutput).first ?? [:], key: "0a000009") == 1, "\(afterOutput)")
        let (refusedStatus, refusedOutput) = try runBounded(20, [okoctl, "of", "load-filter-prog", okod.target, "3", garbage.path])
        #expect(refusedStatus == 1 && refusedOutput.contains("OFPET_EXPERIMENTER code 1"), "\(refusedOutput)")
        let (unknownStatus, unknownOutput) = try runBounded(20, [okoctl, "of", "dump-map", okod.target, "7"])
        #expect(unknownStatus == 1 && unknownOutput.contains("no program 7"), "\(unknownOutput)")

        // A program loaded through REST is dumpable over OpenFlow (one catalogue).
        let (restLoad, restBody) = try runBounded(20, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT",
            "-H", "Authorization: Bearer \(okod.token)", "-H", "Content-Type: application/octet-stream",
            "--data-binary", "@\(object.path)", okod.api + "/programs/4"])
        #expect(restLoad == 0 && restBody == "201", "REST load: \(restBody)")
        let (restDump, restDumpOutput) = try python([okod.target, "dump-map", "4"])
        #expect(restDump == 0 && (jsonLines(restDumpOutput).first?["maps"] as? [Any])?.count == 1, "\(restDumpOutput)")
        #expect(okod.stop())
    }

    @Test func okoctlOfReportsBadTargetsAndUnreachableSwitchesWithItsExitCodes() throws {
        let okoctl = TestEnvironment.executable("okoctl").path
        let (usage, usageOutput) = try runBounded(20, [okoctl, "of", "dump-map", "127.0.0.1:6653", "1"])
        #expect(usage == 2 && usageOutput.contains("'127.0.0.1:6653' is not tcp:HOST:PORT"), "\(usageOutput)")
        // Port 9 (discard) on loopback: nothing listens there in the test environment.
        let (unreachable, unreachableOutput) = try runBounded(20, [okoctl, "of", "dump-map", "tcp:127.0.0.1:9", "1"])
        #expect(unreachable == 3 && unreachableOutput.contains("cannot reach the switch at tcp:127.0.0.1:9"), "\(unreachableOutput)")
        let (entry, entryOutput) = try runBounded(20, [okoctl, "of", "update-map", "tcp:127.0.0.1:9", "1", "0", "0a0000=zz"])
        #expect(entry == 2 && entryOutput.contains("value 'zz' is not hex"), "\(entryOutput)")
    }
}
