// `/metrics` rendered straight into one byte buffer. A scrape reads every counter at request time (ports,
// rules, programs, poll-mode threads, the API's own), but the family headers are built once, each port's
// label set is rendered once per scrape and reused by its eight families, and rule counters come from
// `SwitchService.ruleCounters` (no spec rendering). The text is byte for byte what
// `PrometheusExposition.renderUTF8(metricFamilies())` gives; a test compares the two.
import OkoDatapath
import Synchronization

/// Size of the last scrape, to reserve the next one's buffer in one go.
private let lastScrapeBytes = Atomic<Int>(0)

/// One metric family's constant parts.
struct MetricHeader: Sendable {
    let name: [UInt8]
    let header: [UInt8]
    init(_ name: String, _ help: String, _ kind: MetricFamily.Kind) {
        precondition(MetricFamily.isValidName(name), "invalid metric name \(name)")
        self.name = Array(name.utf8)
        header = PrometheusExposition.header(name: name, help: help, kind: kind)
    }
}

enum MetricHeaders {
    static let up = MetricHeader("oko_up", "1 while okod runs.", .gauge)
    static let ready = MetricHeader("oko_ready", "1 once the datapath is up and the configuration restored.", .gauge)
    static let port: [MetricHeader] = [
        MetricHeader("oko_port_rx_packets_total", "Packets received on a port.", .counter),
        MetricHeader("oko_port_tx_packets_total", "Packets sent on a port.", .counter),
        MetricHeader("oko_port_rx_bytes_total", "Bytes received on a port.", .counter),
        MetricHeader("oko_port_tx_bytes_total", "Bytes sent on a port.", .counter),
        MetricHeader("oko_port_rx_dropped_total", "Packets missed by the NIC.", .counter),
        MetricHeader("oko_port_tx_dropped_total", "Packets refused on transmit.", .counter),
        MetricHeader("oko_port_rx_errors_total", "Receive errors reported by the port (including malformed headers).", .counter),
        MetricHeader("oko_port_tx_errors_total", "Transmit errors reported by the port.", .counter),
    ]
    static let rulePackets = MetricHeader("oko_rule_packets_total", "Packets that hit a rule.", .counter)
    static let ruleBytes = MetricHeader("oko_rule_bytes_total", "Bytes that hit a rule.", .counter)
    static let programRuns = MetricHeader("oko_program_runs_total", "Filter program runs.", .counter)
    static let programMatches = MetricHeader("oko_program_matches_total", "Filter program runs that returned 1.", .counter)
    static let programSeconds = MetricHeader("oko_program_run_seconds_total", "Time spent running a filter program.", .counter)
    static let pmd: [MetricHeader] = [
        MetricHeader("oko_pmd_busy_seconds_total", "Poll-mode thread time spent on iterations that had packets.", .counter),
        MetricHeader("oko_pmd_idle_seconds_total", "Poll-mode thread time spent on iterations without packets.", .counter),
        MetricHeader("oko_pmd_emc_hits_total", "Exact-match cache hits.", .counter),
        MetricHeader("oko_pmd_megaflow_hits_total", "Megaflow cache hits.", .counter),
        MetricHeader("oko_pmd_upcalls_total", "Classifier lookups (cache misses).", .counter),
        MetricHeader("oko_pmd_packets_total", "Packets processed by a poll-mode thread.", .counter),
    ]
}

extension ManagementAPI {
    /// The samples of one bridge, read once per scrape.
    private struct BridgeSample {
        /// `bridge="<name>"`
        var bridgeLabel: [UInt8]
        /// Per port: `{bridge="..",port="..",port_name=".."}` and the eight port counters in family order.
        var ports: [(labels: [UInt8], values: [Double])]
        var rules: [(id: UInt64, table: UInt8, packets: UInt64, bytes: UInt64)]
        var programs: [(id: UInt32, statistics: FilterProgramStatistics)]
    }

    /// The `/metrics` body (Prometheus text format 0.0.4).
    func renderMetrics() -> [UInt8] {
        var bridges: [BridgeSample] = []
        for name in service.bridgeNames() {
            guard let bridge = try? service.bridge(named: name) else { continue }
            var bridgeLabel: [UInt8] = []
            PrometheusExposition.appendLabel("bridge", name, to: &bridgeLabel)
            var ports: [(labels: [UInt8], values: [Double])] = []
            for p in bridge.ports() {
                var labels: [UInt8] = [UInt8(ascii: "{")]
                labels.append(contentsOf: bridgeLabel)
                labels.append(contentsOf: #",port=""#.utf8)
                appendDecimal(UInt64(p.number), negative: false, to: &labels)
                labels.append(contentsOf: #"","#.utf8)
                PrometheusExposition.appendLabel("port_name", p.name, to: &labels)
                labels.append(UInt8(ascii: "}"))
                let values: [Double] = [
                    Double(p.rxPackets), Double(p.txPackets), Double(p.rxBytes), Double(p.txBytes),
                    Double(p.backend.rxDrops), Double(p.txDrops), Double(p.backend.errors + p.rxErrors), 0,
                ]
                ports.append((labels, values))
            }
            let rules = (try? service.ruleCounters(bridge: name)) ?? []
            let programs: [(id: UInt32, statistics: FilterProgramStatistics)] = service.programs == nil ? bridge.programs().sorted { $0.key < $1.key }.map { (id: $0.key, statistics: $0.value) } : []
            bridges.append(BridgeSample(bridgeLabel: bridgeLabel, ports: ports, rules: rules, programs: programs))
        }

        var out: [UInt8] = []
        // The previous scrape's size is a good guess for this one (no regrowing and copying on the way).
        out.reserveCapacity(max(lastScrapeBytes.load(ordering: .relaxed) + 256,
                                4096 + bridges.reduce(0) { $0 + $1.ports.count * 1000 + $1.rules.count * 200 + $1.programs.count * 300 }))
        out.append(contentsOf: MetricHeaders.up.header)
        out.append(contentsOf: MetricHeaders.up.name)
        PrometheusExposition.appendValue(1, to: &out)
        out.append(contentsOf: MetricHeaders.ready.header)
        out.append(contentsOf: MetricHeaders.ready.name)
        PrometheusExposition.appendValue(service.ready.load(ordering: .relaxed) ? 1 : 0, to: &out)

        for (index, family) in MetricHeaders.port.enumerated() {
            out.append(contentsOf: family.header)
            for bridge in bridges {
                for port in bridge.ports {
                    out.append(contentsOf: family.name)
                    out.append(contentsOf: port.labels)
                    PrometheusExposition.appendValue(port.values[index], to: &out)
                }
            }
        }
        for (family, packets) in [(MetricHeaders.rulePackets, true), (MetricHeaders.ruleBytes, false)] {
            out.append(contentsOf: family.header)
            for bridge in bridges {
                for rule in bridge.rules {
                    out.append(contentsOf: family.name)
                    out.append(UInt8(ascii: "{"))
                    out.append(contentsOf: bridge.bridgeLabel)
                    out.append(contentsOf: #",table=""#.utf8)
                    appendDecimal(UInt64(rule.table), negative: false, to: &out)
                    out.append(contentsOf: #"",rule=""#.utf8)
                    appendDecimal(rule.id, negative: false, to: &out)
                    out.append(contentsOf: #""}"#.utf8)
                    PrometheusExposition.appendValue(Double(packets ? rule.packets : rule.bytes), to: &out)
                }
            }
        }
        if let catalogue = service.programs {
            for family in catalogue.metricFamilies() { PrometheusExposition.append(family, to: &out) }
        } else {
            for (family, value) in [
                (MetricHeaders.programRuns, { (s: FilterProgramStatistics) in Double(s.runs) }),
                (MetricHeaders.programMatches, { (s: FilterProgramStatistics) in Double(s.matches) }),
                (MetricHeaders.programSeconds, { (s: FilterProgramStatistics) in Double(s.totalNanoseconds) / 1e9 }),
            ] {
                out.append(contentsOf: family.header)
                for bridge in bridges {
                    for program in bridge.programs {
                        out.append(contentsOf: family.name)
                        out.append(UInt8(ascii: "{"))
                        out.append(contentsOf: bridge.bridgeLabel)
                        out.append(contentsOf: #",program=""#.utf8)
                        appendDecimal(UInt64(program.id), negative: false, to: &out)
                        out.append(contentsOf: #""}"#.utf8)
                        PrometheusExposition.appendValue(value(program.statistics), to: &out)
                    }
                }
            }
        }
        let pmds = service.pmdThreads.map { (index: $0.index, statistics: $0.statistics) }
        for (index, family) in MetricHeaders.pmd.enumerated() {
            out.append(contentsOf: family.header)
            for pmd in pmds {
                let s = pmd.statistics
                out.append(contentsOf: family.name)
                out.append(contentsOf: #"{pmd=""#.utf8)
                appendDecimal(UInt64(pmd.index), negative: pmd.index < 0, to: &out)
                out.append(contentsOf: #""}"#.utf8)
                let value: Double = switch index {
                case 0: Double(s.busyNanoseconds) / 1e9
                case 1: Double(s.idleNanoseconds) / 1e9
                case 2: Double(s.emcHits)
                case 3: Double(s.megaflowHits)
                case 4: Double(s.upcalls)
                default: Double(s.packets)
                }
                PrometheusExposition.appendValue(value, to: &out)
            }
        }
        for family in apiMetricFamilies() { PrometheusExposition.append(family, to: &out) }
        lastScrapeBytes.store(out.count, ordering: .relaxed)
        return out
    }
}
