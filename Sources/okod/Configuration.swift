// okod's configuration file (YAML).
//
// Design note: the file is parsed into a YAML node tree and walked by hand rather than decoded with
// Codable, so that every mistake is reported with its path (`bridges[0].ports[1]: unknown key
// 'devarg'`) and unknown keys are errors instead of being silently ignored.
import Foundation
import OkoStore
import OkoHTTP
import OkoSyntax
import Yams

struct ConfigurationError: Error, CustomStringConvertible {
    let description: String
    init(_ path: String, _ message: String) {
        description = path.isEmpty ? message : "\(path): \(message)"
    }
}

struct Configuration {
    struct Port {
        var name: String?
        var devargs: String
        var ofport: UInt32?
    }

    struct Bridge {
        var name: String
        var ports: [Port]
        /// Rules in ovs-ofctl syntax, installed at start.
        var flows: [FlowSpec] = []
    }

    var ealArguments: [String] = ["-l", "0-1", "--no-pci"]
    var mbufs: UInt32 = 16384
    var pmdCores: [UInt32] = []
    var apiListen = "127.0.0.1:8080"
    var apiTokenFile = "/var/lib/oko/api.tokens"
    /// PEM certificate chain and private key of the API; when set the API speaks TLS only (ALPN h2, http/1.1).
    var apiTLS: HTTPServerConfiguration.TLS?
    var openflowListen = "127.0.0.1:6653"
    /// The bridge the OpenFlow listener serves (default: the first configured bridge).
    var openflowBridge: String?
    /// Controllers okod connects to itself (`tcp:HOST:PORT`), reconnecting with exponential back-off.
    var openflowControllers: [(host: String, port: Int)] = []
    /// Longest wait between reconnection attempts to a controller, in seconds.
    var openflowReconnectMaxSeconds: Double = 8
    var logLevel = "info"
    var statsInterval: Double = 5
    var bridges: [Bridge] = []
    /// The configuration store (SQLite); nil: `okod.db` beside the API token file.
    var storePath: String?
    var snapshotMapsOnShutdown = true
    /// `store.sync`: fsync every acknowledged change (full, the default) or leave it to the OS (normal).
    var storeDurability = ConfigurationStore.Durability.full
    var limits = Limits()

    /// Operator limits (`limits:`); exceeding one is refused with an error naming the key.
    struct Limits {
        var maxELFBytes = 16 << 20
        var maxInstructions = 1_000_000
        var maxProgramsPerBridge = 64
        var maxMapMemoryBytes: UInt64 = 1 << 30
        var maxRulesPerTable = 1_000_000
        var maxRequestBodyBytes = 64 << 20
    }

    /// Where the store lives: `store.path`, else beside the token file (/var/lib/oko/okod.db by default).
    var resolvedStorePath: String {
        storePath ?? URL(fileURLWithPath: apiTokenFile).deletingLastPathComponent().appendingPathComponent("okod.db").path
    }

    static func load(path: String) throws -> Configuration {
        let url = URL(fileURLWithPath: path)
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw ConfigurationError("", "cannot read configuration file '\(path)'")
        }
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch {
            throw ConfigurationError("", "'\(path)' is not valid YAML: \(error)")
        }
        let configDirectory = url.deletingLastPathComponent().standardizedFileURL.path
        return try parse(node ?? Node.mapping([:]), configDirectory: configDirectory)
    }

    static func parse(_ root: Node, configDirectory: String) throws -> Configuration {
        var config = Configuration()
        let top = try Fields(root, path: "")
        if let dpdk = try top.mapping("dpdk") {
            if let args = try dpdk.strings("eal_args") { config.ealArguments = args }
            if let mbufs = try dpdk.integer("mbufs", range: 1024...4_000_000) { config.mbufs = UInt32(mbufs) }
            try dpdk.finish(allowed: ["eal_args", "mbufs"])
        }
        if let cores = try top.integers("pmd_cores") { config.pmdCores = cores.map { UInt32($0) } }
        if let api = try top.mapping("api") {
            if let listen = try api.string("listen") { config.apiListen = try validateListen(listen, path: api.path + ".listen") }
            if let tokenFile = try api.string("token_file") {
                config.apiTokenFile = tokenFile.replacingOccurrences(of: "${config_dir}", with: configDirectory)
            }
            if let tls = try api.mapping("tls") {
                config.apiTLS = try parseTLS(tls, configDirectory: configDirectory)
            }
            try api.finish(allowed: ["listen", "token_file", "tls"])
        }
        if let openflow = try top.mapping("openflow") {
            if let listen = try openflow.string("listen") {
                config.openflowListen = try validateListen(listen, path: openflow.path + ".listen")
            }
            config.openflowBridge = try openflow.string("bridge")
            if let controllers = try openflow.strings("controllers") {
                config.openflowControllers = try controllers.enumerated().map { index, target in
                    try validateController(target, path: openflow.path + ".controllers[\(index)]")
                }
            }
            if let seconds = try openflow.number("reconnect_max_seconds") {
                guard seconds >= 0.1 && seconds <= 3600 else {
                    throw ConfigurationError(openflow.path + ".reconnect_max_seconds", "\(seconds) is not within 0.1...3600")
                }
                config.openflowReconnectMaxSeconds = seconds
            }
            try openflow.finish(allowed: ["listen", "bridge", "controllers", "reconnect_max_seconds"])
        }
        if let level = try top.string("log_level") {
            let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
            guard levels.contains(level) else {
                throw ConfigurationError("log_level", "'\(level)' is not one of \(levels.joined(separator: ", "))")
            }
            config.logLevel = level
        }
        if let interval = try top.number("stats_interval") { config.statsInterval = interval }
        if let store = try top.mapping("store") {
            if let path = try store.string("path") {
                guard !path.isEmpty else { throw ConfigurationError("store.path", "must not be empty") }
                config.storePath = path.replacingOccurrences(of: "${config_dir}", with: configDirectory)
            }
            if let snapshot = try store.boolean("snapshot_maps_on_shutdown") { config.snapshotMapsOnShutdown = snapshot }
            if let sync = try store.string("sync") {
                guard let durability = ConfigurationStore.Durability(rawValue: sync) else {
                    throw ConfigurationError("store.sync", "'\(sync)' is not one of full, normal")
                }
                config.storeDurability = durability
            }
            try store.finish(allowed: ["path", "snapshot_maps_on_shutdown", "sync"])
        }
        if let limits = try top.mapping("limits") {
            let big = 1...(1 << 40)
            if let v = try limits.integer("max_elf_bytes", range: 1...(1 << 30)) { config.limits.maxELFBytes = v }
            if let v = try limits.integer("max_instructions", range: 1...10_000_000) { config.limits.maxInstructions = v }
            if let v = try limits.integer("max_programs_per_bridge", range: 0...65535) { config.limits.maxProgramsPerBridge = v }
            if let v = try limits.integer("max_map_memory_bytes", range: big) { config.limits.maxMapMemoryBytes = UInt64(v) }
            if let v = try limits.integer("max_rules_per_table", range: 0...100_000_000) { config.limits.maxRulesPerTable = v }
            if let v = try limits.integer("max_request_body_bytes", range: 1024...(1 << 30)) { config.limits.maxRequestBodyBytes = v }
            try limits.finish(allowed: [
                "max_elf_bytes", "max_instructions", "max_programs_per_bridge", "max_map_memory_bytes",
                "max_rules_per_table", "max_request_body_bytes",
            ])
        }
        if let bridges = try top.sequence("bridges") {
            var names = Set<String>()
            for (index, node) in bridges.enumerated() {
                let path = "bridges[\(index)]"
                let fields = try Fields(node, path: path)
                guard let name = try fields.string("name"), !name.isEmpty else {
                    throw ConfigurationError(path, "missing key 'name'")
                }
                guard names.insert(name).inserted else { throw ConfigurationError(path, "duplicate bridge name '\(name)'") }
                var bridge = Bridge(name: name, ports: [])
                var ofports = Set<UInt32>()
                for (portIndex, portNode) in (try fields.sequence("ports") ?? []).enumerated() {
                    let portPath = "\(path).ports[\(portIndex)]"
                    let portFields = try Fields(portNode, path: portPath)
                    guard let devargs = try portFields.string("devargs") else {
                        throw ConfigurationError(portPath, "missing key 'devargs'")
                    }
                    let resolved = try validateDevargs(
                        devargs.replacingOccurrences(of: "${config_dir}", with: configDirectory), path: portPath + ".devargs")
                    var port = Port(name: try portFields.string("name"), devargs: resolved, ofport: nil)
                    if let ofport = try portFields.integer("ofport", range: 1...0xffff_ff00) {
                        guard ofports.insert(UInt32(ofport)).inserted else {
                            throw ConfigurationError(portPath, "duplicate ofport \(ofport)")
                        }
                        port.ofport = UInt32(ofport)
                    }
                    try portFields.finish(allowed: ["name", "devargs", "ofport"])
                    bridge.ports.append(port)
                }
                for (flowIndex, text) in (try fields.strings("flows") ?? []).enumerated() {
                    do {
                        bridge.flows.append(try FlowSpec(ofctlText: text))
                    } catch {
                        throw ConfigurationError("\(path).flows[\(flowIndex)]", "\(error)")
                    }
                }
                try fields.finish(allowed: ["name", "ports", "flows"])
                config.bridges.append(bridge)
            }
        }
        try top.finish(allowed: [
            "dpdk", "pmd_cores", "api", "openflow", "log_level", "stats_interval", "bridges", "store", "limits",
        ])
        return config
    }

    /// `api.tls`: both files are required and loaded now, so a bad certificate or key is a configuration
    /// error naming its key rather than a failure at the first TLS handshake.
    private static func parseTLS(_ tls: Fields, configDirectory: String) throws -> HTTPServerConfiguration.TLS {
        func path(_ key: String) throws -> String {
            guard let value = try tls.string(key), !value.isEmpty else {
                throw ConfigurationError(tls.path, "missing key '\(key)' (TLS needs 'certificate' and 'private_key', PEM files)")
            }
            let resolved = value.replacingOccurrences(of: "${config_dir}", with: configDirectory)
            guard FileManager.default.isReadableFile(atPath: resolved) else {
                throw ConfigurationError("\(tls.path).\(key)", "file '\(resolved)' does not exist or is not readable")
            }
            return resolved
        }
        let settings = HTTPServerConfiguration.TLS(certificatePath: try path("certificate"), privateKeyPath: try path("private_key"))
        try tls.finish(allowed: ["certificate", "private_key"])
        do {
            try settings.validate()
        } catch {
            switch error {
            case .certificate(let why): throw ConfigurationError("\(tls.path).certificate", why)
            case .privateKey(let why): throw ConfigurationError("\(tls.path).private_key", why)
            case .mismatch(let why): throw ConfigurationError(tls.path, why)
            }
        }
        return settings
    }

    /// Checks `HOST:PORT` syntax.
    /// An active controller target `tcp:HOST:PORT` (IPv6 hosts in brackets).
    static func validateController(_ value: String, path: String) throws -> (host: String, port: Int) {
        guard value.hasPrefix("tcp:") else {
            throw ConfigurationError(path, "'\(value)' is not tcp:HOST:PORT (only tcp is supported)")
        }
        let rest = String(value.dropFirst(4))
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port)
        else { throw ConfigurationError(path, "'\(value)' is not tcp:HOST:PORT") }
        var host = String(rest[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw ConfigurationError(path, "'\(value)' has no host") }
        return (host, port)
    }

    static func validateListen(_ value: String, path: String) throws -> String {
        guard let colon = value.lastIndex(of: ":"), let port = Int(value[value.index(after: colon)...]),
            (0...65535).contains(port), colon != value.startIndex
        else {
            throw ConfigurationError(path, "'\(value)' is not HOST:PORT")
        }
        return value
    }

    /// Catches devargs mistakes that DPDK would report obscurely or not at all: an empty device name,
    /// unknown virtual device drivers, and pcap files that do not exist.
    static func validateDevargs(_ devargs: String, path: String) throws -> String {
        let parts = devargs.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard let device = parts.first, !device.isEmpty, !device.contains(" ") else {
            throw ConfigurationError(path, "'\(devargs)' does not start with a device name")
        }
        let isPCI = device.range(of: #"^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$"#, options: .regularExpression) != nil
        if !isPCI {
            let drivers = ["net_pcap", "net_af_packet", "net_af_xdp", "net_tap", "net_ring", "net_null", "net_memif",
                           "net_vhost", "net_virtio_user", "net_bonding", "eth_pcap", "eth_af_packet", "net_ring"]
            let driver = device.prefix { !$0.isNumber }
            guard drivers.contains(String(driver)) else {
                throw ConfigurationError(path, "'\(device)' is neither a PCI address nor a known virtual device (\(drivers.filter { $0.hasPrefix("net_") }.joined(separator: ", ")) followed by a number)")
            }
            guard device.count > driver.count else {
                throw ConfigurationError(path, "virtual device '\(device)' needs an instance number, e.g. '\(device)0'")
            }
        }
        for part in parts.dropFirst() {
            guard let equals = part.firstIndex(of: "=") else {
                throw ConfigurationError(path, "argument '\(part)' in '\(devargs)' is not KEY=VALUE")
            }
            let key = part[..<equals], value = String(part[part.index(after: equals)...])
            if key == "rx_pcap" {
                guard FileManager.default.isReadableFile(atPath: value) else {
                    throw ConfigurationError(path, "pcap file '\(value)' does not exist or is not readable")
                }
            }
            if key == "tx_pcap" {
                let directory = URL(fileURLWithPath: value).deletingLastPathComponent().path
                guard FileManager.default.fileExists(atPath: directory) else {
                    throw ConfigurationError(path, "directory of pcap output '\(value)' does not exist")
                }
            }
        }
        return devargs
    }
}

/// A YAML mapping being read field by field; `finish` rejects the keys nobody asked for.
private final class Fields {
    let path: String
    private var values: [String: Node] = [:]

    init(_ node: Node, path: String) throws {
        self.path = path
        guard case .mapping(let mapping) = node else {
            throw ConfigurationError(path, "expected a mapping of keys to values")
        }
        for (key, value) in mapping {
            guard let name = key.string else { throw ConfigurationError(path, "keys must be strings") }
            values[name] = value
        }
    }

    private var consumed = Set<String>()

    private func take(_ key: String) -> Node? {
        consumed.insert(key)
        guard let node = values[key] else { return nil }
        if case .scalar(let scalar) = node, scalar.tag == .init(.null) || scalar.string == "~" { return nil }
        return node
    }

    private func sub(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func string(_ key: String) throws -> String? {
        guard let node = take(key) else { return nil }
        guard case .scalar(let scalar) = node else { throw ConfigurationError(sub(key), "expected a string") }
        return scalar.string
    }

    func number(_ key: String) throws -> Double? {
        guard let text = try string(key) else { return nil }
        guard let value = Double(text), value >= 0 else { throw ConfigurationError(sub(key), "'\(text)' is not a non-negative number") }
        return value
    }

    func boolean(_ key: String) throws -> Bool? {
        guard let text = try string(key) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw ConfigurationError(sub(key), "'\(text)' is not true or false")
        }
    }

    func integer(_ key: String, range: ClosedRange<Int>) throws -> Int? {
        guard let text = try string(key) else { return nil }
        guard let value = Int(text), range.contains(value) else {
            throw ConfigurationError(sub(key), "'\(text)' is not an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }

    func sequence(_ key: String) throws -> [Node]? {
        guard let node = take(key) else { return nil }
        guard case .sequence(let sequence) = node else { throw ConfigurationError(sub(key), "expected a list") }
        return Array(sequence)
    }

    func strings(_ key: String) throws -> [String]? {
        try sequence(key)?.enumerated().map { index, node in
            guard case .scalar(let scalar) = node else { throw ConfigurationError("\(sub(key))[\(index)]", "expected a string") }
            return scalar.string
        }
    }

    func integers(_ key: String) throws -> [Int]? {
        try strings(key)?.enumerated().map { index, text in
            guard let value = Int(text), value >= 0 else { throw ConfigurationError("\(sub(key))[\(index)]", "'\(text)' is not a core number") }
            return value
        }
    }

    func mapping(_ key: String) throws -> Fields? {
        guard let node = take(key) else { return nil }
        return try Fields(node, path: sub(key))
    }

    func finish(allowed: Set<String>) throws {
        for key in values.keys.sorted() where !allowed.contains(key) {
            throw ConfigurationError(path, "unknown key '\(key)' (allowed: \(allowed.sorted().joined(separator: ", ")))")
        }
    }
}
