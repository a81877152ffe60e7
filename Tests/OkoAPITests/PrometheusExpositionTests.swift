import Foundation
import Testing
@testable import OkoAPI

struct PrometheusExpositionTests {
    private func sampleFamilies() -> [MetricFamily] {
        var rx = MetricFamily(name: "oko_port_rx_packets_total", help: "Packets received on a port.", kind: .counter)
        rx.add(UInt64(123), [("bridge", "br0"), ("port", "1")])
        rx.add(UInt64(0), [("bridge", "br \"quoted\"\\ and\nnewline"), ("port", "2")])
        var up = MetricFamily(name: "oko_up", help: "1 when okod runs.\nSecond line with \\ backslash.", kind: .gauge)
        up.add(1.0)
        var ratio = MetricFamily(name: "oko_program_run_seconds_total", help: "Time spent in programs.", kind: .counter)
        ratio.add(0.25, [("program", "1")])
        let empty = MetricFamily(name: "oko_rule_packets_total", help: "Packets that hit a rule.", kind: .counter)
        return [rx, up, ratio, empty]
    }

    @Test func rendersHelpTypeAndEscapedLabels() {
        let text = PrometheusExposition.render(sampleFamilies())
        #expect(text.contains("# TYPE oko_port_rx_packets_total counter\n"))
        #expect(text.contains("oko_port_rx_packets_total{bridge=\"br0\",port=\"1\"} 123\n"))
        #expect(text.contains("oko_port_rx_packets_total{bridge=\"br \\\"quoted\\\"\\\\ and\\nnewline\",port=\"2\"} 0\n"))
        #expect(text.contains("# HELP oko_up 1 when okod runs.\\nSecond line with \\\\ backslash.\n"))
        #expect(text.contains("oko_program_run_seconds_total{program=\"1\"} 0.25\n"))
    }

    @Test func metricNamesAreCheckedAgainstThePrometheusGrammar() {
        for valid in ["oko_up", "_x", "a:b_c9", "OKO"] { #expect(MetricFamily.isValidName(valid), "\(valid)") }
        for invalid in ["", "9lives", "oko-up", "ökö", "oko up", "oko_é"] { #expect(!MetricFamily.isValidName(invalid), "\(invalid)") }
    }

    @Test func largeAndNegativeValuesKeepTheirFormat() {
        var family = MetricFamily(name: "oko_test", help: "h", kind: .gauge)
        family.add(-3.0)
        family.add(1e20)
        family.add(UInt64(999_999_999_999_999))
        let text = PrometheusExposition.render([family])
        #expect(text.contains("oko_test -3\n") && text.contains("oko_test 1e+20\n") && text.contains("oko_test 999999999999999\n"), "\(text)")
    }

    @Test func promtoolAcceptsTheOutput() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool") else {
            Issue.record("promtool is not installed (apt-get install prometheus)")
            return
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/promtool")
        process.arguments = ["check", "metrics"]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        input.fileHandleForWriting.write(Data(PrometheusExposition.render(sampleFamilies()).utf8))
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
        let report = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 0, "promtool: \(report)")
        #expect(report.isEmpty, "promtool lint findings: \(report)")
    }

    @Test func rejectsInvalidMetricNames() {
        #expect(MetricFamily.isValidName("oko_port_rx_packets_total"))
        #expect(!MetricFamily.isValidName("9lives"))
        #expect(!MetricFamily.isValidName("oko-port"))
        #expect(!MetricFamily.isValidName(""))
    }
}
