// okoctl: the operator's command line for okod, with the verbs of ovs-ofctl and ovs-vsctl.
//
// Every command talks to okod's REST API (see openapi/openapi.yaml), except `prog verify` and
// `prog run`, which work offline on an ELF file. Output is a human-readable table by default and the
// API's JSON with `--json`. Exit codes: 0 success, 1 refused by okod, 2 usage, 3 okod unreachable,
// 4 okod failed, 5 local failure (file unreadable, program refused offline).
import ArgumentParser
import Foundation
import OkoAPI
import OkoSyntax

struct ConnectionOptions: ParsableArguments {
    @Option(name: .long, help: "okod's API address (default: $OKO_SERVER or http://127.0.0.1:8080).")
    var server: String?

    @Option(name: .long, help: "API bearer token (default: $OKO_TOKEN, else the first admin token of the token file).")
    var token: String?

    @Option(name: .long, help: "Token file to read (default: $OKO_TOKEN_FILE, okod.yaml's api.token_file, or \(TokenDiscovery.defaultTokenFile)).")
    var tokenFile: String?

    @Flag(name: .long, help: "Print the API's JSON instead of tables.")
    var json = false

    func client() throws -> APIClient {
        let address = server ?? ProcessInfo.processInfo.environment["OKO_SERVER"] ?? "http://127.0.0.1:8080"
        guard let url = URL(string: address.contains("://") ? address : "http://\(address)") else {
            throw OkoctlError.usage("bad server address '\(address)'")
        }
        return APIClient(server: url, token: TokenDiscovery.find(token: token, tokenFile: tokenFile))
    }
}

/// Runs `body`, printing errors as `okoctl: ...` and exiting with the error's code.
func perform(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as OkoctlError {
        FileHandle.standardError.write(Data("okoctl: \(error.description)\n".utf8))
        throw ExitCode(error.exitCode)
    } catch let error as FlowSyntaxError {
        FileHandle.standardError.write(Data("okoctl: \(error.description)\n".utf8))
        throw ExitCode(2)
    }
}

func printJSON(_ response: APIResponse) {
    if let json = response.json { print(json.prettyText, terminator: "") } else { print(response.text) }
}

/// A plain text table with left-aligned columns.
func printTable(_ header: [String], _ rows: [[String]]) {
    var widths = header.map(\.count)
    for row in rows { for (index, cell) in row.enumerated() where index < widths.count { widths[index] = max(widths[index], cell.count) } }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { index, cell in
            index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }.joined(separator: "  ")
    }
    print(line(header))
    for row in rows { print(line(row)) }
}

func describe(_ value: JSONValue?) -> String {
    guard let value else { return "-" }
    switch value {
    case .string(let s): return s
    case .integer(let v): return String(v)
    case .unsigned(let v): return String(v)
    case .double(let v): return String(v)
    case .bool(let b): return b ? "yes" : "no"
    case .null: return "-"
    default: return value.text
    }
}

func readFile(_ path: String) throws -> Data {
    guard let data = FileManager.default.contents(atPath: path) else { throw OkoctlError.local("cannot read '\(path)'") }
    return data
}

@main
struct Okoctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "okoctl",
        abstract: "Manage an Oko switch: bridges, ports, flow rules, filter programs and their maps.",
        discussion: """
            Examples:
              okoctl add-br br0
              okoctl add-port br0 net_af_packet0,iface=veth0
              clang -O2 -target bpf -g -c rate-limiter.c -o rate-limiter.o
              okoctl load-filter-prog br0 1 rate-limiter.o
              okoctl add-flow br0 "priority=1,in_port=1,filter_prog=1,actions=output:2"
              okoctl dump-flows br0
              okoctl dump-map br0 1 rate_limits
              okoctl snapshot-maps br0 1
              okoctl prog verify rate-limiter.o

            The API token is found by itself: --token, $OKO_TOKEN, --token-file, $OKO_TOKEN_FILE, the
            token_file of okod's configuration ($OKO_CONFIG, else /etc/oko/okod.yaml), then okod's default
            token file /var/lib/oko/api.tokens (first admin token).

            Exit codes:
              0 success
              1 refused by okod (4xx: bad rule, unknown bridge, limit exceeded, ...)
              2 usage error (bad arguments or rule syntax; nothing was sent)
              3 okod unreachable
              4 okod failed (5xx)
              5 local failure (file unreadable, program refused offline)
            """,
        subcommands: [
            Show.self, AddBridge.self, DeleteBridge.self, AddPort.self, DeletePort.self, DumpPorts.self,
            DumpFlows.self, AddFlow.self, AddFlows.self, ModifyFlows.self, DeleteFlows.self,
            LoadFilterProgram.self, DumpMap.self, UpdateMap.self, SnapshotMaps.self, Trace.self, Prog.self,
            OpenFlowCommands.self,
        ])
}

struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show bridges with their ports and programs.")
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        try await perform {
            let client = try connection.client()
            let bridges = try await client.send("GET", "/v1/bridges")
            if connection.json { return printJSON(bridges) }
            guard case .array(let list)? = bridges.json?["bridges"] else { throw OkoctlError.local("unexpected answer: \(bridges.text)") }
            for bridge in list {
                let name = describe(bridge["name"])
                print("bridge \(name) (datapath_id \(describe(bridge["datapath_id"])), \(describe(bridge["flows"])) flows, \(describe(bridge["programs"])) programs)")
                let ports = try await client.send("GET", "/v1/bridges/\(name)/ports")
                if case .array(let portList)? = ports.json?["ports"] {
                    for port in portList {
                        print("  port \(describe(port["ofport"])): \(describe(port["name"])) [\(describe(port["devargs"]))] link \(port["link_up"] == .bool(true) ? "up" : "down")")
                    }
                }
            }
        }
    }
}

struct AddBridge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add-br", abstract: "Create a bridge.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Bridge name.") var bridge: String

    func run() async throws {
        try await perform {
            let body = JSONValue.object([("name", .string(bridge))]).text
            let response = try await connection.client().send("POST", "/v1/bridges", body: Data(body.utf8))
            connection.json ? printJSON(response) : print("bridge \(bridge) created")
        }
    }
}

struct DeleteBridge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "del-br", abstract: "Delete a bridge with its ports, rules and programs.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Bridge name.") var bridge: String

    func run() async throws {
        try await perform {
            _ = try await connection.client().send("DELETE", "/v1/bridges/\(bridge)")
            print("bridge \(bridge) deleted")
        }
    }
}

struct AddPort: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add-port", abstract: "Attach a DPDK port (devargs such as net_af_packet0,iface=veth0 or a PCI address).")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Bridge name.") var bridge: String
    @Argument(help: "DPDK devargs.") var devargs: String
    @Option(help: "Requested OpenFlow port number.") var ofport: UInt32?

    func run() async throws {
        try await perform {
            var pairs: [(String, JSONValue)] = [("devargs", .string(devargs))]
            if let ofport { pairs.append(("ofport", .integer(Int64(ofport)))) }
            let response = try await connection.client().send("POST", "/v1/bridges/\(bridge)/ports", body: Data(JSONValue.object(pairs).text.utf8))
            connection.json ? printJSON(response) : print("port \(describe(response.json?["ofport"])) added to \(bridge)")
        }
    }
}

struct DeletePort: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "del-port", abstract: "Detach a port.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Bridge name.") var bridge: String
    @Argument(help: "OpenFlow port number.") var port: UInt32

    func run() async throws {
        try await perform {
            _ = try await connection.client().send("DELETE", "/v1/bridges/\(bridge)/ports/\(port)")
            print("port \(port) removed from \(bridge)")
        }
    }
}

struct DumpPorts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dump-ports", abstract: "Show port counters.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Bridge name.") var bridge: String

    func run() async throws {
        try await perform {
            let response = try await connection.client().send("GET", "/v1/bridges/\(bridge)/ports")
            if connection.json { return printJSON(response) }
            guard case .array(let ports)? = response.json?["ports"] else { throw OkoctlError.local("unexpected answer: \(response.text)") }
            printTable(["PORT", "NAME", "RX_PKTS", "RX_BYTES", "RX_DROP", "TX_PKTS", "TX_BYTES", "TX_DROP"], ports.map { port in
                let stats = port["stats"]
                return [describe(port["ofport"]), describe(port["name"]), describe(stats?["rx_packets"]), describe(stats?["rx_bytes"]),
                        describe(stats?["rx_dropped"]), describe(stats?["tx_packets"]), describe(stats?["tx_bytes"]), describe(stats?["tx_dropped"])]
            })
        }
    }
}

/// Query parameters that select rules: the match of an ovs-ofctl filter plus table/cookie.
func flowFilterQuery(_ filter: String?) throws -> [(String, String)] {
    guard let filter, !filter.isEmpty else { return [] }
    let spec = try FlowSpec(ofctlText: filter, requireActions: false)
    var query = spec.match.map { ($0.name, $0.value) }
    if filter.contains("table=") { query.append(("table", String(spec.table))) }
    if filter.contains("priority=") { query.append(("priority", String(spec.priority))) }
    if filter.contains("cookie=") {
        query.append(("cookie", "0x" + String(spec.cookie, radix: 16)))
        query.append(("cookie_mask", "0x" + String(spec.cookieMask ?? .max, radix: 16)))
    }
    return query
}

struct DumpFlows: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dump-flows", abstract: "List flow rules, optionally those a match selects.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Bridge name.") var bridge: String
    @Argument(help: "Optional filter in ovs-ofctl syntax, e.g. 'table=0,in_port=1'.") var filter: String?

    func run() async throws {
        try await perform {
            let client = try connection.client()
            var query = try flowFilterQuery(filter)
            var cursor: String?
            repeat {
                if let cursor { query.removeAll { $0.0 == "cursor" }; query.append(("cursor", cursor)) }
                let page = try await client.send("GET", "/v1/bridges/\(bridge)/flows", query: query)
                if connection.json {
                    printJSON(page)
                } else if case .array(let flows)? = page.json?["flows"] {
                    for flow in flows {
                        let stats = flow["stats"]
                        let text = flow["text"]?.stringValue ?? (try? FlowSpec(json: flow).ofctlText) ?? flow.text
                        print(" id=\(describe(flow["id"])), duration=\(describe(stats?["duration_seconds"]))s, n_packets=\(describe(stats?["packets"])), n_bytes=\(describe(stats?["bytes"])), \(text)")
                    }
                }
                cursor = page.json?["next"]?.stringValue
            } while cursor != nil
        }
    }
}

struct AddFlow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add-flow", abstract: "Add a flow rule in ovs-ofctl syntax.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Bridge name.") var bridge: String
    @Argument(help: "The rule, e.g. 'priority=1,in_port=1,filter_prog=1,actions=output:2'.") var flow: String

    func run() async throws {
        try await perform {
            let spec = try FlowSpec(ofctlText: flow)  // refuse bad syntax before contacting okod
            let response = try await connection.client().send("POST", "/v1/bridges/\(bridge)/flows", body: Data(spec.json.text.utf8))
            connection.json ? printJSON(response) : print("flow added")
        }
    }
}

struct AddFlows: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add-flows", abstract: "Add the rules of a file (one per line), in batches, with progress.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Bridge name.") var bridge: String
    @Argument(help: "File of rules in ovs-ofctl syntax ('-' for standard input).") var file: String
    @Option(help: "Rules per request.") var batch: Int = 5000

    func run() async throws {
        try await perform {
            let data = file == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try readFile(file)
            let flows = try FlowSpec.parseOfctlLines(String(decoding: data, as: UTF8.self))
            let client = try connection.client()
            let interactive = isatty(STDERR_FILENO) != 0
            var sent = 0
            for start in stride(from: 0, to: flows.count, by: max(1, batch)) {
                let chunk = flows[start..<min(flows.count, start + max(1, batch))]
                let body = JSONValue.object([("flows", .array(chunk.map(\.json)))]).text
                _ = try await client.send("POST", "/v1/bridges/\(bridge)/flows", body: Data(body.utf8))
                sent += chunk.count
                if interactive {
                    let width = 40, done = flows.isEmpty ? width : width * sent / flows.count
                    FileHandle.standardError.write(Data("\r[\(String(repeating: "#", count: done))\(String(repeating: " ", count: width - done))] \(sent)/\(flows.count)".utf8))
                }
            }
            if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
            print("\(sent) flows added")
        }
    }
}

struct ModifyFlows: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "mod-flows", abstract: "Replace the actions of the rules a match selects.")
    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Only the rule with exactly this match and priority.") var strict = false
    @Argument(help: "Bridge name.") var bridge: String
    @Argument(help: "Match and new actions, e.g. 'in_port=1,actions=output:3'.") var flow: String

    func run() async throws {
        try await perform {
            let spec = try FlowSpec(ofctlText: flow)
            let response = try await connection.client().send(
                "PATCH", "/v1/bridges/\(bridge)/flows", query: strict ? [("strict", "true")] : [], body: Data(spec.json.text.utf8))
            connection.json ? printJSON(response) : print("\(describe(response.json?["modified"])) flows modified")
        }
    }
}

struct DeleteFlows: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "del-flows", abstract: "Delete the rules a match selects (all without a match).")
    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Only the rule with exactly this match and priority.") var strict = false
    @Argument(help: "Bridge name.") var bridge: String
    @Argument(help: "Optional match in ovs-ofctl syntax.") var filter: String?

    func run() async throws {
        try await perform {
            var query = try flowFilterQuery(filter)
            if strict { query.append(("strict", "true")) }
            let response = try await connection.client().send("DELETE", "/v1/bridges/\(bridge)/flows", query: query)
            connection.json ? printJSON(response) : print("\(describe(response.json?["deleted"])) flows deleted")
        }
    }
}

struct LoadFilterProgram: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load-filter-prog", abstract: "Load (or replace) filter program ID from an ELF object built by clang -target bpf.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Bridge name.") var bridge: String
    @Argument(help: "Program id (the N of filter_prog=N).") var id: UInt16
    @Argument(help: "ELF object file.") var file: String
    @Option(help: "ELF section or function of the entry point.") var section: String?
    @Flag(help: "Keep the old maps' contents where definitions match.") var keepMaps = false

    func run() async throws {
        try await perform {
            var query: [(String, String)] = []
            if let section { query.append(("section", section)) }
            if keepMaps { query.append(("keep_maps", "true")) }
            let response = try await connection.client().send(
                "PUT", "/v1/bridges/\(bridge)/programs/\(id)", query: query, body: try readFile(file), contentType: "application/octet-stream")
            if connection.json { return printJSON(response) }
            let program = response.json
            print("program \(id) \(response.status == 201 ? "loaded" : "replaced"): section \(describe(program?["section"])), \(describe(program?["instructions"])) instructions")
            if case .array(let maps)? = program?["maps"] {
                printTable(["MAP", "TYPE", "KEY", "VALUE", "MAX_ENTRIES"], maps.map {
                    [describe($0["name"]), describe($0["type"]), describe($0["key_size"]), describe($0["value_size"]), describe($0["max_entries"])]
                })
            }
        }
    }
}

struct DumpMap: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dump-map", abstract: "Print a program's map entries.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Bridge name.") var bridge: String
    @Argument(help: "Program id.") var program: UInt16
    @Argument(help: "Map name or index.") var map: String
    @Option(help: "Only the entry with this hex key.") var key: String?

    func run() async throws {
        try await perform {
            let client = try connection.client()
            var query: [(String, String)] = key.map { [("key", $0)] } ?? []
            var rows: [[String]] = []
            var cursor: String?
            repeat {
                if let cursor { query.removeAll { $0.0 == "cursor" }; query.append(("cursor", cursor)) }
                let page = try await client.send("GET", "/v1/bridges/\(bridge)/programs/\(program)/maps/\(map)", query: query)
                if connection.json { printJSON(page) }
                if case .array(let entries)? = page.json?["entries"] {
                    rows += entries.map { entry in
                        [entry["key_typed"].map(describe) ?? describe(entry["key"]), entry["value_typed"].map(describe) ?? describe(entry["value"])]
                    }
                }
                cursor = page.json?["next"]?.stringValue
            } while cursor != nil
            if !connection.json { printTable(["KEY", "VALUE"], rows) }
        }
    }
}

struct UpdateMap: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "update-map", abstract: "Create or update one map entry (hex key and value).")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Bridge name.") var bridge: String
    @Argument(help: "Program id.") var program: UInt16
    @Argument(help: "Map name or index.") var map: String
    @Argument(help: "Key as hex bytes (e.g. 0a000001).") var key: String
    @Argument(help: "Value as hex bytes.") var value: String

    func run() async throws {
        try await perform {
            let body = JSONValue.object([("entries", .array([.object([("key", .string(key)), ("value", .string(value))])]))])
            _ = try await connection.client().send("PUT", "/v1/bridges/\(bridge)/programs/\(program)/maps/\(map)", body: Data(body.text.utf8))
            print("entry updated")
        }
    }
}

struct SnapshotMaps: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot-maps", abstract: "Save a program's map contents in okod's store (restored when okod starts).")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Bridge name.") var bridge: String
    @Argument(help: "Program id.") var program: UInt16

    func run() async throws {
        try await perform {
            let response = try await connection.client().send("POST", "/v1/bridges/\(bridge)/programs/\(program)/maps/snapshot")
            if connection.json { return printJSON(response) }
            print("\(describe(response.json?["entries"])) entries of \(describe(response.json?["maps"])) maps saved")
        }
    }
}

struct Trace: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show how the pipeline handles a packet (no side effects on counters).")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Bridge name.") var bridge: String
    @Argument(help: "Ingress OpenFlow port.") var inPort: UInt32
    @Argument(help: "Packet bytes in hex.") var packet: String

    func run() async throws {
        try await perform {
            let body = JSONValue.object([("in_port", .integer(Int64(inPort))), ("packet", .string(packet))])
            let response = try await connection.client().send("POST", "/v1/bridges/\(bridge)/trace", body: Data(body.text.utf8))
            if connection.json { return printJSON(response) }
            if case .array(let steps)? = response.json?["steps"] {
                for step in steps {
                    print("table \(describe(step["table"])): \(step["rule"].map(describe) ?? "miss")")
                    if case .array(let programs)? = step["programs"] {
                        for program in programs { print("    filter_prog \(describe(program["id"])) returned \(describe(program["result"]))") }
                    }
                }
            }
            if case .array(let actions)? = response.json?["actions"] {
                print("actions: " + (actions.isEmpty ? "drop" : actions.map(\.text).joined(separator: ", ")))
            }
        }
    }
}
