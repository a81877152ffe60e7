// End-to-end tests of OkoHTTP with real clients (curl, nghttp, openssl) against an in-process server.
import Foundation
import NIOPosix
import OkoHTTP
import Testing

@Suite(.serialized)
struct HTTPServerTests {
    @Test func http1KeepAliveServesTwoURLsOnOneConnection() async throws {
        let (server, port) = try await startServer()
        defer { Task { await server.shutdown(gracePeriod: .seconds(1)) } }
        let result = try await curl(["-v", "http://127.0.0.1:\(port)/one", "http://127.0.0.1:\(port)/two"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("path=/one"))
        #expect(result.stdout.contains("path=/two"))
        #expect(result.stdout.occurrences(of: "version=HTTP/1.1") == 2)
        #expect(result.stderr.contains("Re-using existing connection"))
        #expect(result.stderr.occurrences(of: "Connected to") == 1)
    }

    @Test func requestFieldsReachTheHandler() async throws {
        let (server, port) = try await startServer()
        defer { Task { await server.shutdown(gracePeriod: .seconds(1)) } }
        let result = try await curl([
            "-i", "-X", "PUT", "-H", "x-Test: Mixed Case", "--data-binary", "hello",
            "http://127.0.0.1:\(port)/a%20b/c?x=1&name=hello%20world&flag",
        ])
        #expect(result.stdout.hasPrefix("HTTP/1.1 200 OK"))
        #expect(result.stdout.contains("x-served-by: oko"))
        #expect(result.stdout.contains("method=PUT"))
        #expect(result.stdout.contains("path=/a b/c"))
        #expect(result.stdout.contains("body=5"))
        #expect(result.stdout.contains("x-test=Mixed Case"))
        #expect(result.stdout.contains("remote=127.0.0.1:"))
        #expect(result.stdout.contains("query:x=1\nquery:name=hello world\nquery:flag=\n"))
    }

    @Test func h2cUpgradeAnswersTheUpgradingRequestOverHTTP2() async throws {
        let (server, port) = try await startServer()
        defer { Task { await server.shutdown(gracePeriod: .seconds(1)) } }
        let result = try await curl([
            "-v", "--http2", "-w", "proto=%{http_version}\n", "http://127.0.0.1:\(port)/up", "http://127.0.0.1:\(port)/next",
        ])
        #expect(result.stderr.contains("101 Switching Protocols"))
        #expect(result.stdout.occurrences(of: "proto=2") == 2)
        #expect(result.stdout.contains("path=/up"))
        #expect(result.stdout.contains("path=/next"))
        #expect(result.stdout.occurrences(of: "version=HTTP/2") == 2)
    }

    @Test func http2PriorKnowledgeServesRequests() async throws {
        let (server, port) = try await startServer()
        defer { Task { await server.shutdown(gracePeriod: .seconds(1)) } }
        let result = try await curl([
            "--http2-prior-knowledge", "-w", "proto=%{http_version}\n", "-H", "X-Test: h2",
            "http://127.0.0.1:\(port)/p?q=2",
        ])
        #expect(result.stdout.contains("proto=2"))
        #expect(result.stdout.contains("version=HTTP/2"))
        #expect(result.stdout.contains("x-test=h2"))
        #expect(result.stdout.contains("query:q=2"))
    }

    @Test func nghttpClientMultiplexesStreamsAndSeesStreamLimit() async throws {
        let (server, port) = try await startServer { $0.maxConcurrentStreams = 7 }
        defer { Task { await server.shutdown(gracePeriod: .seconds(1)) } }
        let result = try await run("/usr/bin/nghttp", [
            "-v", "http://127.0.0.1:\(port)/s1", "http://127.0.0.1:\(port)/s2", "http://127.0.0.1:\(port)/s3",
        ])
        #expect(result.status == 0)
        #expect(result.stdout.contains("SETTINGS_MAX_CONCURRENT_STREAMS(0x03):7"))
        #expect(result.stdout.occurrences(of: ":status: 200") == 3)
        for path in ["/s1", "/s2", "/s3"] { #expect(result.stdout.contains("path=\(path)")) }
    }

    @Test func largeUploadsArriveIntactOverBothProtocols() async throws {
        let (server, port) = try await startServer()
        defer { Task { await server.shutdown(gracePeriod: .seconds(1)) } }
        let (file, bytes) = try makeTempFile(count: 1 << 20)
        defer { try? FileManager.default.removeItem(at: file) }
        let expected = "body=\(bytes.count)\nchecksum=\(checksum(bytes))"
        for mode in [["--http1.1"], ["--http2-prior-knowledge"], ["--http2"], ["--http1.1", "-H", "Transfer-Encoding: chunked"]] {
            let result = try await curl(mode + ["--data-binary", "@\(file.path)", "http://127.0.0.1:\(port)/upload"])
            #expect(result.stdout.contains(expected), "mode \(mode)")
        }
    }

    @Test func oversizedBodiesGet413NamingTheLimit() async throws {
        let (server, port) = try await startServer { $0.maxBodyBytes = 1000 }
        defer { Task { await server.shutdown(gracePeriod: .seconds(1)) } }
        let (file, _) = try makeTempFile(count: 5000)
        defer { try? FileManager.default.removeItem(at: file) }
        for mode in [["--http1.1"], ["--http2-prior-knowledge"], ["--http1.1", "-H", "Transfer-Encoding: chunked"]] {
            let result = try await curl(mode + ["-w", "\nstatus=%{http_code} type=%{content_type}", "--data-binary", "@\(file.path)",
                                                "http://127.0.0.1:\(port)/big"])
            #expect(result.stdout.contains("status=413 type=application/problem+json"), "mode \(mode): \(result.stdout)")
            // An RFC 9457 document whose detail names the limit.
            let document = result.stdout.split(separator: "\n").first.map(String.init) ?? ""
            let json = try JSONSerialization.jsonObject(with: Data(document.utf8)) as? [String: Any]
            #expect(json?["status"] as? Int == 413 && json?["title"] as? String == "Content Too Large", "mode \(mode): \(document)")
            #expect((json?["detail"] as? String ?? "").contains("1000 bytes"), "mode \(mode): \(document)")
        }
        let small = try await curl(["-w", "\nstatus=%{http_code}", "--data-binary", "small", "http://127.0.0.1:\(port)/ok"])
        #expect(small.stdout.contains("status=200"))
    }

    @Test func tooManyHeadersGet431() async throws {
        let (server, port) = try await startServer { $0.maxHeaderCount = 10 }
        defer { Task { await server.shutdown(gracePeriod: .seconds(1)) } }
        let headers = (0..<20).flatMap { ["-H", "X-Extra-\($0): v"] }
        for mode in ["--http1.1", "--http2-prior-knowledge"] {
            let result = try await curl([mode, "-w", "\nstatus=%{http_code}"] + headers + ["http://127.0.0.1:\(port)/h"])
            #expect(result.stdout.contains("status=431"), "mode \(mode)")
        }
        let huge = try await curl(["-w", "\nstatus=%{http_code}", "-H", "X-Huge: " + String(repeating: "a", count: 20000), "http://127.0.0.1:\(port)/h"])
        #expect(huge.stdout.contains("status=431"))
    }

    @Test func slowClientGets408AndIsDisconnected() async throws {
        let (server, port) = try await startServer { $0.requestTimeout = .milliseconds(300) }
        defer { Task { await server.shutdown(gracePeriod: .seconds(1)) } }
        let socket = try RawSocket(port: port, receiveTimeoutMs: 3000)
        let start = ContinuousClock.now
        socket.send("GET /slowloris HTTP/1.1\r\nHost: x\r\n")
        let (bytes, closed) = socket.readAll()
        let elapsed = ContinuousClock.now - start
        #expect(String(decoding: bytes, as: UTF8.self).hasPrefix("HTTP/1.1 408"))
        #expect(closed)
        #expect(elapsed < .seconds(2))
        // Idle connections that never send anything are closed too (here by the idle timeout).
        let (idleServer, idlePort) = try await startServer { $0.idleTimeout = .milliseconds(200) }
        defer { Task { await idleServer.shutdown(gracePeriod: .seconds(1)) } }
        let idle = try RawSocket(port: idlePort, receiveTimeoutMs: 3000)
        #expect(idle.readAll().closed)
    }

    @Test func slowHTTP2StreamClosesTheConnectionWithGoAway() async throws {
        let (server, port) = try await startServer { $0.requestTimeout = .milliseconds(300) }
        defer { Task { await server.shutdown(gracePeriod: .seconds(1)) } }
        let socket = try RawSocket(port: port, receiveTimeoutMs: 3000)
        let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
        let settings: [UInt8] = [0, 0, 0, 0x4, 0, 0, 0, 0, 0]
        // HEADERS (END_HEADERS, no END_STREAM) on stream 1: GET http://x/ in HPACK; the body never comes.
        let headers: [UInt8] = [0, 0, 6, 0x1, 0x4, 0, 0, 0, 1, 0x82, 0x86, 0x84, 0x41, 0x01, UInt8(ascii: "x")]
        let start = ContinuousClock.now
        socket.send(preface + settings + headers)
        let (bytes, closed) = socket.readAll()
        #expect(closed)
        #expect(containsFrame(bytes, type: 0x7))
        #expect(ContinuousClock.now - start < .seconds(2))
    }

    @Test func headAndHTTP10RequestsFollowTheirRules() async throws {
        let (server, port) = try await startServer()
        defer { Task { await server.shutdown(gracePeriod: .seconds(1)) } }
        let socket = try RawSocket(port: port, receiveTimeoutMs: 1500)
        socket.send("HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /old HTTP/1.0\r\n\r\n")
        let (bytes, closed) = socket.readAll()
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(closed)  // HTTP/1.0 without keep-alive closes after its response
        #expect(text.hasPrefix("HTTP/1.1 200 OK"))
        guard let second = text.range(of: "HTTP/1.0 200 OK") else {
            Issue.record("no HTTP/1.0 response in \(text.debugDescription)")
            return
        }
        let headResponse = text[..<second.lowerBound], oldResponse = text[second.lowerBound...]
        #expect(headResponse.contains("content-length: ") && !headResponse.contains("path="))  // HEAD: no body
        #expect(oldResponse.contains("path=/old") && oldResponse.contains("version=HTTP/1.0"))
        #expect(oldResponse.contains("connection: close"))
    }

    @Test func chunkedBodyWithExtensionsAndTrailersIsReassembled() async throws {
        let (server, port) = try await startServer()
        defer { Task { await server.shutdown(gracePeriod: .seconds(1)) } }
        let socket = try RawSocket(port: port, receiveTimeoutMs: 1500)
        socket.send("POST /chunks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        socket.send("5;name=value\r\nhello\r\n")
        socket.send("6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
        let (bytes, closed) = socket.readAll()
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(closed)
        #expect(text.hasPrefix("HTTP/1.1 200 OK"))
        #expect(text.contains("body=11\nchecksum=\(checksum(Array("hello world".utf8)))"))
    }

    @Test func expectContinueGets100BeforeTheBodyIsSent() async throws {
        let (server, port) = try await startServer()
        defer { Task { await server.shutdown(gracePeriod: .seconds(1)) } }
        let socket = try RawSocket(port: port, receiveTimeoutMs: 500)
        socket.send("PUT /c HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        let interim = String(decoding: socket.readAll().bytes, as: UTF8.self)
        #expect(interim == "HTTP/1.1 100 Continue\r\n\r\n")
        socket.send("data")
        let final = String(decoding: socket.readAll().bytes, as: UTF8.self)
        #expect(final.hasPrefix("HTTP/1.1 200 OK") && final.contains("body=4"))
    }

    @Test func malformedHTTP1GetsErrorAndServerKeepsServing() async throws {
        let (server, port) = try await startServer()
        defer { Task { await server.shutdown(gracePeriod: .seconds(1)) } }
        let cases: [(String, String)] = [
            ("\u{01}\u{02}garbage\u{7F}\r\n\r\n", "HTTP/1.1 400"),
            ("GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n", "HTTP/1.1 400"),
            ("GET / HTTP/9.9\r\nHost: x\r\n\r\n", "HTTP/1.1 505"),
            ("GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", "HTTP/1.1 400"),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.1 400"),
            ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n", "HTTP/1.1 400"),
            ("GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400"),  // no Host
        ]
        for (request, expectedPrefix) in cases {
            let socket = try RawSocket(port: port)
            socket.send(request)
            let (bytes, closed) = socket.readAll()
            #expect(String(decoding: bytes, as: UTF8.self).hasPrefix(expectedPrefix), "request \(request.debugDescription)")
            #expect(closed, "request \(request.debugDescription)")
        }
        let after = try await curl(["http://127.0.0.1:\(port)/still-alive"])
        #expect(after.stdout.contains("path=/still-alive"))
    }

    @Test func badHTTP2FramesCloseTheConnectionAndServerKeepsServing() async throws {
        let (server, port) = try await startServer()
        defer { Task { await server.shutdown(gracePeriod: .seconds(1)) } }
        let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
        // A SETTINGS frame on stream 1 (must be stream 0) and a frame with a length beyond the max size.
        let badFrames: [[UInt8]] = [
            [0, 0, 6, 0x4, 0, 0, 0, 0, 1, 0, 3, 0, 0, 0, 1],
            [0xFF, 0xFF, 0xFF, 0x0, 0, 0, 0, 0, 1] + [UInt8](repeating: 0, count: 64),
            [UInt8](repeating: 0xAB, count: 200),
        ]
        for frame in badFrames {
            let socket = try RawSocket(port: port)
            socket.send(preface + frame)
            let (bytes, closed) = socket.readAll()
            #expect(closed)
            // The server's answer holds a GOAWAY frame (type 0x7) after its SETTINGS.
            #expect(containsFrame(bytes, type: 0x7))
        }
        let truncatedPreface = try RawSocket(port: port)
        truncatedPreface.send("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
        #expect(truncatedPreface.readAll().closed)
        let after = try await curl(["--http2-prior-knowledge", "http://127.0.0.1:\(port)/still-alive"])
        #expect(after.stdout.contains("path=/still-alive"))
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        let (server, port) = try await startServer()
        defer { Task { await server.shutdown(gracePeriod: .seconds(1)) } }
        let socket = try RawSocket(port: port, receiveTimeoutMs: 1500)
        socket.send(
            "GET /first HTTP/1.1\r\nHost: x\r\n\r\nPOST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                + "GET /third HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let (bytes, closed) = socket.readAll()
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(closed)
        #expect(text.occurrences(of: "HTTP/1.1 200 OK") == 3)
        let first = text.range(of: "path=/first"), second = text.range(of: "path=/second"), third = text.range(of: "path=/third")
        #expect(first != nil && second != nil && third != nil)
        if let first, let second, let third {
            #expect(first.lowerBound < second.lowerBound && second.lowerBound < third.lowerBound)
        }
        #expect(text.contains("body=3"))
        #expect(text.contains("connection: close"))
    }

    @Test func connectionLimitRefusesExcessConnections() async throws {
        let (server, port) = try await startServer { $0.maxConnections = 1 }
        defer { Task { await server.shutdown(gracePeriod: .seconds(1)) } }
        let first = try RawSocket(port: port)
        first.send("GET /held HTTP/1.1\r\nHost: x\r\n")  // keeps the only slot busy
        try await Task.sleep(for: .milliseconds(100))
        let second = try RawSocket(port: port, receiveTimeoutMs: 2000)
        second.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        let (bytes, closed) = second.readAll()
        #expect(bytes.isEmpty)
        #expect(closed)
    }

    @Test func gracefulShutdownDrainsInFlightRequests() async throws {
        let (server, port) = try await startServer()
        let h1 = try launch("/usr/bin/curl", ["-s", "--max-time", "10", "http://127.0.0.1:\(port)/slow"])
        let h2 = try launch("/usr/bin/curl", ["-s", "--max-time", "10", "--http2-prior-knowledge", "http://127.0.0.1:\(port)/slow"])
        try await Task.sleep(for: .milliseconds(300))  // both requests are now inside the 800 ms handler
        let start = ContinuousClock.now
        await server.shutdown(gracePeriod: .seconds(5))
        let took = ContinuousClock.now - start
        let r1 = try await h1.finished(), r2 = try await h2.finished()
        #expect(r1.stdout == "slow done\n")
        #expect(r2.stdout == "slow done\n")
        #expect(took < .seconds(3))
        let refused = try await curl(["-w", "%{http_code}", "http://127.0.0.1:\(port)/"])
        #expect(refused.status != 0)
    }

    @Test func shutdownDeadlineClosesStuckRequests() async throws {
        let stuck = HTTPClosureHandler { _ in
            try? await Task.sleep(for: .seconds(30))
            return HTTPResponse(text: "late")
        }
        // A group the server does not own: the stuck task may still resume on it after the shutdown.
        var configuration = HTTPServerConfiguration(host: "127.0.0.1", port: 0)
        configuration.logger.logLevel = .critical
        let server = HTTPServer(configuration: configuration, handler: stuck, group: MultiThreadedEventLoopGroup.singleton)
        try await server.start()
        let port = server.port!
        let client = try launch("/usr/bin/curl", ["-s", "--max-time", "20", "http://127.0.0.1:\(port)/"])
        try await Task.sleep(for: .milliseconds(300))
        let start = ContinuousClock.now
        await server.shutdown(gracePeriod: .milliseconds(300))
        #expect(ContinuousClock.now - start < .seconds(2))
        let result = try await client.finished()
        #expect(result.status != 0)
    }
}

/// True when `bytes` (server output after the preface exchange) contains an HTTP/2 frame of `type`.
func containsFrame(_ bytes: [UInt8], type: UInt8) -> Bool {
    var offset = 0
    while offset + 9 <= bytes.count {
        let length = Int(bytes[offset]) << 16 | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2])
        if bytes[offset + 3] == type { return true }
        offset += 9 + length
    }
    return false
}

@Suite(.serialized)
struct HTTPServerTLSTests {
    /// A self-signed certificate for 127.0.0.1 made with openssl in a fresh temp directory.
    private func makeCertificate() async throws -> (cert: String, key: String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("oko-http-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let cert = dir.appendingPathComponent("cert.pem").path, key = dir.appendingPathComponent("key.pem").path
        let result = try await run("/usr/bin/openssl", [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ])
        #expect(result.status == 0)
        return (cert, key)
    }

    @Test func tlsNegotiatesH2AndHTTP1WithALPN() async throws {
        let (cert, key) = try await makeCertificate()
        let (server, port) = try await startServer { $0.tls = .init(certificatePath: cert, privateKeyPath: key) }
        defer { Task { await server.shutdown(gracePeriod: .seconds(1)) } }
        let h2 = try await curl(["-k", "-v", "--http2", "-w", "proto=%{http_version}\n", "https://127.0.0.1:\(port)/secure"])
        #expect(h2.stderr.contains("ALPN") && h2.stderr.contains("h2"))
        #expect(h2.stdout.contains("proto=2"))
        #expect(h2.stdout.contains("version=HTTP/2"))
        let h1 = try await curl(["-k", "--http1.1", "-w", "proto=%{http_version}\n", "https://127.0.0.1:\(port)/secure"])
        #expect(h1.stdout.contains("proto=1.1"))
        #expect(h1.stdout.contains("version=HTTP/1.1"))
        let plain = try await curl(["http://127.0.0.1:\(port)/"])
        #expect(!plain.stdout.contains("version="))
    }

    @Test func missingCertificateFailsStartWithClearError() async throws {
        var configuration = HTTPServerConfiguration(host: "127.0.0.1", port: 0)
        configuration.tls = .init(certificatePath: "/nonexistent/cert.pem", privateKeyPath: "/nonexistent/key.pem")
        let server = HTTPServer(configuration: configuration, handler: EchoHandler())
        await #expect(throws: HTTPServerError.self) { try await server.start() }
        await server.shutdown(gracePeriod: .milliseconds(10))
    }
}
