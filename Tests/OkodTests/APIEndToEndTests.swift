import Foundation
import Testing

/// The management API of a running okod with DPDK ports (net_pcap replaying traffic forever into a
/// net_null sink), exercised with real clients: curl (HTTP/1.1, h2c upgrade and prior knowledge,
/// parallel multiplexed transfers, TLS), nghttp, promtool. OkodProcessTests covers the classic
/// workflow (program, map, filter_prog rule); these tests cover the protocol and error surface.
@Suite(.serialized)
struct APIEndToEndTests {
    /// An okod child process serving the API, stopped (SIGTERM) by `stop()` or at deinit.
    final class RunningOkod {
        let directory: URL
        let process: ChildProcess
        let port: Int
        let adminToken: String
        let readToken = "read-token-0123456789abcdef"
        let scheme: String

        var base: String { "\(scheme)://127.0.0.1:\(port)" }
        var admin: [String] { ["-H", "Authorization: Bearer \(adminToken)"] }

        /// Starts okod with a bridge br0 whose port 1 replays traffic and whose port 2 is a sink;
        /// `apiExtra` is added to the `api` mapping (e.g. TLS keys).
        init(label: String, apiExtra: String = "", scheme: String = "http", directory given: URL? = nil) throws {
            directory = try given ?? TestEnvironment.temporaryDirectory(label)
            self.scheme = scheme
            let input = directory.appendingPathComponent("in.pcap")
            try makePcap(["demo", input.path, "--count", "400"])
            adminToken = "admin-token-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
            let tokens = "admin \(adminToken) tester\nread \(readToken) reader\n"
            try tokens.write(to: directory.appendingPathComponent("tokens"), atomically: true, encoding: .utf8)
            let config = directory.appendingPathComponent("okod.yaml")
            try """
                dpdk:
                  eal_args: ["-l", "0-1", "--no-pci", "--no-huge", "-m", "256"]
                  mbufs: 4096
                stats_interval: 0
                api: {listen: "127.0.0.1:0", token_file: "\(directory.path)/tokens"\(apiExtra)}
                openflow: {listen: "127.0.0.1:0"}
                limits: {max_request_body_bytes: 4194304}
                bridges:
                  - name: br0
                    ports:
                      - devargs: "net_pcap0,rx_pcap=\(input.path),infinite_rx=1"
                      - devargs: "net_null0,no-rx=1"
                    flows:
                      - "priority=10,in_port=1,actions=output:2"
                """.write(to: config, atomically: true, encoding: .utf8)
            process = try ChildProcess(TestEnvironment.executable("okod"), ["--config", config.path])
            guard process.waitForOutput(timeout: 60, { $0.contains("okod ready") }),
                let line = process.output.split(separator: "\n").first(where: { $0.contains("management API listening on") }),
                let port = line.split(separator: ":").last.flatMap({ Int($0) })
            else {
                kill(process.process.processIdentifier, SIGKILL)
                throw OkodDidNotStart(output: process.output)
            }
            self.port = port
        }

        func stop() {
            guard process.process.isRunning else { return }
            kill(process.process.processIdentifier, SIGTERM)
            _ = process.waitForExit(timeout: 5)
        }

        deinit {
            stop()
            try? FileManager.default.removeItem(at: directory)
        }
    }

    struct OkodDidNotStart: Error, CustomStringConvertible {
        let output: String
        var description: String { "okod did not start:\n\(output)" }
    }

    /// One curl transfer: status, negotiated HTTP version, content type, body.
    struct Transfer {
        var status: Int
        var version: String
        var contentType: String
        var body: String
        var exitCode: Int32

        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:] }
    }

    /// Runs curl for one URL (the last argument); the write-out trailer carries status, version and type.
    static func curl(_ arguments: [String]) throws -> Transfer {
        let marker = "\n@@curl@@"
        let (exitCode, output) = try runToCompletion(
            URL(fileURLWithPath: "/usr/bin/curl"),
            ["-sS", "-o", "-", "-w", "\(marker)%{http_code} %{http_version} %{content_type}"] + arguments)
        guard let range = output.range(of: marker, options: .backwards) else {
            return Transfer(status: 0, version: "", contentType: "", body: output, exitCode: exitCode)
        }
        let trailer = output[range.upperBound...].split(separator: " ", maxSplits: 2).map(String.init)
        return Transfer(
            status: Int(trailer.first ?? "") ?? 0, version: trailer.count > 1 ? trailer[1] : "",
            contentType: trailer.count > 2 ? trailer[2].trimmingCharacters(in: .whitespacesAndNewlines) : "",
            body: String(output[..<range.lowerBound]), exitCode: exitCode)
    }

    // MARK: protocols

    @Test func curlGetsTheSameAnswerOverHTTP1AndEveryHTTP2Mode() throws {
        let okod = try RunningOkod(label: "api-proto")
        let url = "\(okod.base)/v1/bridges/br0/flows"
        var bodies: [String] = []
        for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2"), ("--http2-prior-knowledge", "2")] {
            let t = try Self.curl([flag, "-H", "Accept: text/plain", url])
            #expect(t.status == 200, "\(flag): \(t.body)")
            #expect(t.version == version, "\(flag) negotiated HTTP/\(t.version)")
            #expect(t.contentType.hasPrefix("text/plain"))
            bodies.append(t.body)
        }
        #expect(bodies[0].contains("priority=10,in_port=1 actions=output:2"), "flows: \(bodies[0])")
        #expect(Set(bodies).count == 1, "every protocol version must serve the same rules: \(bodies)")

        // A change over HTTP/2 (upgrade carries no body, so prior knowledge), read back over HTTP/1.1.
        let added = try Self.curl(okod.admin + ["--http2-prior-knowledge", "-X", "POST", "-H", "Content-Type: application/json",
            "--data", #"{"priority": 20, "match": {"in_port": 2}, "actions": [{"type": "drop"}]}"#, url])
        #expect(added.status == 201, "add: \(added.body)")
        #expect(added.version == "2")
        let listed = try Self.curl(["--http1.1", url]).json["flows"] as? [[String: Any]] ?? []
        #expect(listed.contains { ($0["priority"] as? Int) == 20 }, "listed: \(listed)")
    }

    @Test func nghttpFetchesOverPriorKnowledgeAndUpgrade() throws {
        let okod = try RunningOkod(label: "api-nghttp")
        for upgrade in [false, true] {
            let (status, output) = try runToCompletion(
                URL(fileURLWithPath: "/usr/bin/nghttp"),
                (upgrade ? ["-u"] : []) + ["-v", "\(okod.base)/healthz", "\(okod.base)/v1/bridges/br0/ports"])
            #expect(status == 0, "nghttp\(upgrade ? " -u" : ""): \(output.suffix(2000))")
            #expect(output.components(separatedBy: ":status: 200").count - 1 == 2, "two 200 responses: \(output.suffix(3000))")
            #expect(output.contains(#""status":"ok""#), "healthz body: \(output.suffix(2000))")
            #expect(output.contains(#""devargs":"net_null0,no-rx=1""#), "ports body: \(output.suffix(2000))")
            if upgrade { #expect(output.contains("HTTP Upgrade response")) }
        }
    }

    /// curl -Z multiplexes the transfers on one HTTP/2 connection; every one must complete with its own
    /// body (responses of different sizes interleave, many larger than one DATA frame or the window).
    ///
    /// The connection is set up by h2c upgrade: Debian 12's curl 7.88.1 cannot reuse a prior-knowledge
    /// connection for a second transfer (curl/curl#10634, fixed in curl 8.0), and fails those with
    /// "Error in the HTTP2 framing layer" against any server (nghttpd too) -- that was the -Z failure
    /// reported against okod. nghttp below multiplexes over prior knowledge.
    @Test func parallelMultiplexedTransfersAllComplete() throws {
        let okod = try RunningOkod(label: "api-parallel")
        // Enough rules that the flows list spans several DATA frames.
        let rules = (1...200).map { "priority=\($0 + 100),in_port=1,udp,udp_dst=\($0),actions=output:2" }.joined(separator: "\n")
        let added = try Self.curl(okod.admin + ["-X", "POST", "-H", "Content-Type: text/plain", "--data-binary", rules,
                                                "\(okod.base)/v1/bridges/br0/flows"])
        #expect(added.status == 201, "\(added.body.prefix(500))")
        let paths = ["/metrics", "/v1/bridges/br0/flows", "/healthz", "/v1/bridges/br0/ports", "/v1/bridges"]
        let urls = (0..<30).map { "\(okod.base)\(paths[$0 % paths.count])" }
        let directory = okod.directory
        var arguments = ["-sS", "-Z", "--parallel-max", "30", "--http2"]
        for (index, url) in urls.enumerated() {
            arguments += ["-o", directory.appendingPathComponent("out\(index)").path, "-w", "%{http_code} %{http_version} %{size_download}\n", url]
        }
        let (status, output) = try runToCompletion(URL(fileURLWithPath: "/usr/bin/curl"), arguments)
        #expect(status == 0, "curl -Z: \(output)")
        // curl 7.88 prints its parallel progress meter even with -s (merged into the output here): skip it.
        let lines = output.split(separator: "\n").filter { $0.range(of: #"^[0-9]{3} "#, options: .regularExpression) != nil }
        #expect(lines.count == urls.count, "one result per transfer: \(output)")
        #expect(lines.allSatisfy { $0.hasPrefix("200 2 ") }, "every transfer must be an HTTP/2 200: \(output)")
        for (index, url) in urls.enumerated() {
            let body = (try? String(contentsOf: directory.appendingPathComponent("out\(index)"), encoding: .utf8)) ?? ""
            if url.hasSuffix("/flows") {
                #expect((try? JSONSerialization.jsonObject(with: Data(body.utf8))) != nil, "transfer \(index) body is not JSON")
                #expect(body.contains("udp_dst") && body.count > 40_000, "transfer \(index): \(body.count) bytes")
            } else if url.hasSuffix("/metrics") {
                #expect(body.contains("oko_api_requests_total"), "transfer \(index): \(body.prefix(200))")
            } else {
                #expect((try? JSONSerialization.jsonObject(with: Data(body.utf8))) != nil, "transfer \(index) body is not JSON: \(body.prefix(200))")
            }
        }
        // Prior knowledge, multiplexed by nghttp with small windows (2^14 per stream, 2^15 per connection), so
        // the large responses wait for WINDOW_UPDATEs.
        let (nghttpStatus, nghttp) = try runToCompletion(URL(fileURLWithPath: "/usr/bin/nghttp"), [
            "-s", "-w", "14", "-W", "15", "\(okod.base)/v1/bridges/br0/flows", "\(okod.base)/metrics",
            "\(okod.base)/v1/bridges/br0/flows?limit=10", "\(okod.base)/healthz",
        ])
        #expect(nghttpStatus == 0, "nghttp: \(nghttp)")
        #expect(nghttp.components(separatedBy: "  200 ").count - 1 == 4, "four 200 responses: \(nghttp)")
    }

    // MARK: errors

    @Test func everyErrorStatusIsAProblemDocument() throws {
        let okod = try RunningOkod(label: "api-errors")
        let flows = "\(okod.base)/v1/bridges/br0/flows"
        func expectProblem(_ t: Transfer, _ status: Int, _ detail: String, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(t.status == status, "expected \(status): \(t.body)", sourceLocation: sourceLocation)
            #expect(t.contentType == "application/problem+json", "content type \(t.contentType)", sourceLocation: sourceLocation)
            let json = t.json
            #expect(json["status"] as? Int == status, sourceLocation: sourceLocation)
            #expect(json["title"] is String && json["type"] is String, sourceLocation: sourceLocation)
            #expect((json["detail"] as? String ?? "").contains(detail), "detail: \(json["detail"] ?? "none")", sourceLocation: sourceLocation)
        }
        let json = ["-H", "Content-Type: application/json"]
        // 400: malformed JSON, and a bad query parameter.
        expectProblem(try Self.curl(okod.admin + json + ["--data", #"{"priority": "#, flows]), 400, "invalid JSON")
        expectProblem(try Self.curl(["\(flows)?table=999"]), 400, "table")
        // 401 without a token, 403 with a read-only one.
        expectProblem(try Self.curl(json + ["--data", #"{"actions": []}"#, flows]), 401, "bearer token")
        expectProblem(try Self.curl(["-H", "Authorization: Bearer \(okod.readToken)"] + json + ["--data", #"{"actions": []}"#, flows]),
                      403, "scope 'read'")
        // 404: unknown bridge, rule, resource.
        expectProblem(try Self.curl(["\(okod.base)/v1/bridges/nosuch/flows"]), 404, "nosuch")
        expectProblem(try Self.curl(["\(flows)/987654"]), 404, "987654")
        expectProblem(try Self.curl(["\(okod.base)/v2/anything"]), 404, "/v2/anything")
        // 409: the bridge exists already.
        expectProblem(try Self.curl(okod.admin + json + ["--data", #"{"name": "br0"}"#, "\(okod.base)/v1/bridges"]), 409, "already exists")
        // 413: a body over the configured limit (limits.max_request_body_bytes, 4 MiB here).
        let big = okod.directory.appendingPathComponent("big.json")
        try Data(repeating: UInt8(ascii: " "), count: 5 << 20).write(to: big)
        expectProblem(try Self.curl(okod.admin + json + ["--data-binary", "@\(big.path)", flows]), 413, "exceeds the limit")
        // 415: a media type the route does not take.
        expectProblem(try Self.curl(okod.admin + ["-H", "Content-Type: application/xml", "--data", "<flow/>", flows]), 415, "application/xml")
        // 422: a rule naming a program that is not loaded.
        expectProblem(try Self.curl(okod.admin + ["-H", "Content-Type: text/plain", "--data", "in_port=1,filter_prog=7,actions=drop", flows]),
                      422, "filter_prog=7")
        // 405 with Allow.
        let wrongMethod = try Self.curl(okod.admin + ["-X", "PUT", "\(okod.base)/v1/bridges"])
        #expect(wrongMethod.status == 405 && wrongMethod.contentType == "application/problem+json")
    }

    @Test func refusedProgramGets422WithTheInstructionIndex() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/clang") else {
            print("SKIPPED: clang is not installed")
            return
        }
        let okod = try RunningOkod(label: "api-422")
        // Reads packet byte 100 without checking the length: the verifier must refuse the load.
        let source = okod.directory.appendingPathComponent("unchecked.c")
        try """
            #include "oko.h"
            OKO_PROGRAM(unchecked) {
                unsigned char *p = pkt;
                return p[100] == 7;
            }
            char LICENSE[] SEC("license") = "GPL";
            """.write(to: source, atomically: true, encoding: .utf8)
        let object = okod.directory.appendingPathComponent("unchecked.o")
        let (clangStatus, clangOutput) = try runToCompletion(URL(fileURLWithPath: "/usr/bin/clang"), [
            "-O2", "-g", "-target", "bpf", "-I", TestEnvironment.packageRoot.appendingPathComponent("examples/bpf").path,
            "-I/usr/include/x86_64-linux-gnu", "-c", source.path, "-o", object.path,
        ])
        #expect(clangStatus == 0, "clang: \(clangOutput)")
        let t = try Self.curl(okod.admin + ["-X", "PUT", "-H", "Content-Type: application/octet-stream", "--data-binary",
                                            "@\(object.path)", "\(okod.base)/v1/bridges/br0/programs/3"])
        #expect(t.status == 422, "\(t.body)")
        #expect(t.contentType == "application/problem+json")
        let instruction = t.json["instruction"] as? Int
        #expect(instruction != nil, "the problem names the refused instruction: \(t.body)")
        if let instruction {
            #expect((t.json["detail"] as? String ?? "").contains("\(instruction)"), "detail names instruction \(instruction): \(t.body)")
        }
        // Nothing was installed.
        #expect(try Self.curl(["\(okod.base)/v1/bridges/br0/programs/3"]).status == 404)
        // An ELF upload with the wrong media type is 415, garbage bytes are 422 or 400, never 5xx.
        #expect(try Self.curl(okod.admin + ["-X", "PUT", "-H", "Content-Type: text/plain", "--data-binary", "@\(object.path)",
                                            "\(okod.base)/v1/bridges/br0/programs/3"]).status == 415)
        let garbage = try Self.curl(okod.admin + ["-X", "PUT", "-H", "Content-Type: application/octet-stream", "--data", "not an ELF",
                                                  "\(okod.base)/v1/bridges/br0/programs/3"])
        #expect([400, 422].contains(garbage.status), "\(garbage.body)")
    }

    // MARK: metrics

    @Test func metricsScrapedWhileTrafficFlowsPassPromtool() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool") else {
            Issue.record("promtool is not installed (apt-get install prometheus)")
            return
        }
        let okod = try RunningOkod(label: "api-metrics")
        func received(_ scrape: String) -> Double {
            scrape.split(separator: "\n").first { $0.hasPrefix("oko_port_rx_packets_total{bridge=\"br0\",port=\"1\",") }
                .flatMap { $0.split(separator: " ").last }.flatMap { Double($0) } ?? -1
        }
        let first = try Self.curl(["\(okod.base)/metrics"])
        Thread.sleep(forTimeInterval: 0.5)
        let second = try Self.curl(["--http2-prior-knowledge", "\(okod.base)/metrics"])
        #expect(first.status == 200 && second.status == 200)
        #expect(second.contentType.hasPrefix("text/plain; version=0.0.4"), "content type \(second.contentType)")
        #expect(received(first.body) > 0 && received(second.body) > received(first.body),
                "traffic must flow between the scrapes: \(received(first.body)) then \(received(second.body))")
        for name in ["oko_pmd_packets_total", "oko_rule_packets_total", "oko_api_requests_total", "oko_up", "oko_ready"] {
            #expect(second.body.contains("\n\(name)"), "\(name) missing")
        }
        let scrape = okod.directory.appendingPathComponent("scrape.txt")
        try second.body.write(to: scrape, atomically: true, encoding: .utf8)
        let (status, lint) = try runToCompletion(URL(fileURLWithPath: "/bin/sh"), ["-c", "promtool check metrics < '\(scrape.path)'"])
        #expect(status == 0, "promtool check metrics: \(lint)")
        // /readyz and /healthz need no token.
        #expect(try Self.curl(["\(okod.base)/readyz"]).json["status"] as? String == "ok")
        #expect(try Self.curl(["\(okod.base)/healthz"]).status == 200)
    }

    // MARK: TLS

    /// A self-signed certificate for 127.0.0.1 made with openssl; returns (certificate, key) paths.
    static func makeCertificate(in directory: URL, name: String = "api") throws -> (String, String) {
        let cert = directory.appendingPathComponent("\(name).crt").path, key = directory.appendingPathComponent("\(name).key").path
        let (status, output) = try runToCompletion(URL(fileURLWithPath: "/usr/bin/openssl"), [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", key, "-out", cert,
        ])
        guard status == 0 else { throw OkodDidNotStart(output: "openssl: \(output)") }
        return (cert, key)
    }

    @Test func tlsServesHTTP2ByALPNAndHTTP1() throws {
        let directory = try TestEnvironment.temporaryDirectory("api-tls")
        let (cert, key) = try Self.makeCertificate(in: directory)
        let okod = try RunningOkod(
            label: "api-tls", apiExtra: ", tls: {certificate: \"\(cert)\", private_key: \"\(key)\"}", scheme: "https",
            directory: directory)
        #expect(okod.process.output.contains("management API uses TLS"))
        let url = "\(okod.base)/v1/bridges/br0/ports"
        let h2 = try Self.curl(["--cacert", cert, "--http2", url])
        #expect(h2.status == 200 && h2.version == "2", "HTTP/2 over TLS: \(h2.version) \(h2.body)")
        #expect((h2.json["ports"] as? [Any])?.count == 2)
        let h1 = try Self.curl(["--cacert", cert, "--http1.1", url])
        #expect(h1.status == 200 && h1.version == "1.1", "HTTP/1.1 over TLS: \(h1.version) \(h1.body)")
        #expect((h1.json["ports"] as? [Any])?.count == 2)
        let change = try Self.curl(okod.admin + ["--cacert", cert, "--http2", "-X", "POST", "-H", "Content-Type: text/plain",
                                                 "--data", "priority=30,in_port=2,actions=drop", "\(okod.base)/v1/bridges/br0/flows"])
        #expect(change.status == 201, "\(change.body)")
        // The certificate is checked: without the CA curl refuses; cleartext gets no HTTP answer.
        #expect(try Self.curl([url]).exitCode != 0)
        #expect(try Self.curl(["http://127.0.0.1:\(okod.port)/healthz"]).status != 200)
        // Parallel transfers multiplexed on one TLS connection.
        var parallel = ["-sS", "-Z", "--cacert", cert, "--http2"]
        for index in 0..<12 {
            parallel += ["-o", "/dev/null", "-w", "%{http_code} %{http_version}\n", index % 2 == 0 ? url : "\(okod.base)/metrics"]
        }
        let (parallelStatus, parallelOutput) = try runToCompletion(URL(fileURLWithPath: "/usr/bin/curl"), parallel)
        #expect(parallelStatus == 0 && parallelOutput.components(separatedBy: "200 2\n").count - 1 == 12, "curl -Z over TLS: \(parallelOutput)")
        let (nghttpStatus, nghttp) = try runToCompletion(URL(fileURLWithPath: "/usr/bin/nghttp"), ["-v", "\(okod.base)/healthz"])
        #expect(nghttpStatus == 0 && nghttp.contains("recv (stream_id=13) :status: 200"), "nghttp over TLS: \(nghttp.suffix(1500))")
    }

    @Test func badTLSFilesAreConfigurationErrorsNamingTheKey() throws {
        let directory = try TestEnvironment.temporaryDirectory("api-badtls")
        defer { try? FileManager.default.removeItem(at: directory) }
        let (cert, key) = try Self.makeCertificate(in: directory)
        let (_, otherKey) = try Self.makeCertificate(in: directory, name: "other")
        let garbage = directory.appendingPathComponent("garbage.pem")
        try "not a certificate\n".write(to: garbage, atomically: true, encoding: .utf8)
        let cases: [(String, String)] = [
            ("{certificate: \"/nonexistent/api.crt\", private_key: \"\(key)\"}", "api.tls.certificate: file '/nonexistent/api.crt' does not exist"),
            ("{certificate: \"\(cert)\", private_key: \"/nonexistent/api.key\"}", "api.tls.private_key: file '/nonexistent/api.key' does not exist"),
            ("{certificate: \"\(garbage.path)\", private_key: \"\(key)\"}", "api.tls.certificate: '\(garbage.path)' is not a readable PEM certificate"),
            ("{certificate: \"\(cert)\", private_key: \"\(garbage.path)\"}", "api.tls.private_key: '\(garbage.path)' is not a readable, unencrypted PEM private key"),
            ("{certificate: \"\(cert)\", private_key: \"\(otherKey)\"}", "api.tls: private key '\(otherKey)' does not match certificate"),
            ("{certificate: \"\(cert)\"}", "api.tls: missing key 'private_key'"),
            ("{certificate: \"\(cert)\", private_key: \"\(key)\", ciphers: all}", "api.tls: unknown key 'ciphers'"),
        ]
        for (tls, expected) in cases {
            let config = directory.appendingPathComponent("okod.yaml")
            try "api: {listen: \"127.0.0.1:0\", tls: \(tls)}\n".write(to: config, atomically: true, encoding: .utf8)
            let (status, output) = try runToCompletion(TestEnvironment.executable("okod"), ["--config", config.path, "--check-config"])
            #expect(status == 2, "\(tls): exit \(status), \(output)")
            #expect(output.contains(expected), "\(tls): \(output)")
        }
    }
}
