// Helpers for the OkoHTTP tests: an in-process server on 127.0.0.1 with an ephemeral port, real client
// programs (curl, nghttp, openssl) run as subprocesses, and a raw TCP socket for malformed input.
import Foundation
import NIOCore
import OkoHTTP
#if canImport(Glibc)
import Glibc
#endif

/// Echo handler: describes the request it saw, so tests can check what reached the handler.
struct EchoHandler: HTTPHandler {
    func handle(_ request: HTTPRequest) async -> HTTPResponse {
        if request.path == "/slow" {
            try? await Task.sleep(for: .milliseconds(800))
            return HTTPResponse(text: "slow done\n")
        }
        var sum: UInt32 = 0
        for byte in request.body { sum = sum &* 31 &+ UInt32(byte) }
        var lines = [
            "method=\(request.method)",
            "path=\(request.path)",
            "version=\(request.version.rawValue)",
            "body=\(request.body.count)",
            "checksum=\(sum)",
            "x-test=\(request.headers["X-TEST"] ?? "-")",
            "remote=\(request.remoteAddress ?? "-")",
        ]
        for item in request.queryItems { lines.append("query:\(item.name)=\(item.value)") }
        return HTTPResponse(status: 200, headers: ["x-served-by": "oko"], text: lines.joined(separator: "\n") + "\n")
    }
}

func checksum(_ bytes: [UInt8]) -> UInt32 {
    var sum: UInt32 = 0
    for byte in bytes { sum = sum &* 31 &+ UInt32(byte) }
    return sum
}

/// Starts a server on an ephemeral port; `configure` adjusts limits for a test.
func startServer(
    handler: any HTTPHandler = EchoHandler(), _ configure: (inout HTTPServerConfiguration) -> Void = { _ in }
) async throws -> (HTTPServer, Int) {
    var configuration = HTTPServerConfiguration(host: "127.0.0.1", port: 0)
    configuration.logger.logLevel = .critical
    configure(&configuration)
    let server = HTTPServer(configuration: configuration, handler: handler)
    try await server.start()
    return (server, server.port!)
}

struct ProcessResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs a program to completion without blocking a concurrency thread; output goes through temp files.
func run(_ executable: String, _ arguments: [String], timeout: Double = 30) async throws -> ProcessResult {
    let process = try launch(executable, arguments)
    let deadline = Date().addingTimeInterval(timeout)
    while process.process.isRunning {
        if Date() > deadline { process.process.terminate() }
        try await Task.sleep(for: .milliseconds(10))
    }
    return process.result()
}

final class LaunchedProcess: @unchecked Sendable {
    let process = Process()
    let outURL: URL
    let errURL: URL
    init(outURL: URL, errURL: URL) {
        self.outURL = outURL
        self.errURL = errURL
    }

    func result() -> ProcessResult {
        process.waitUntilExit()
        let out = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(at: outURL)
        try? FileManager.default.removeItem(at: errURL)
        return ProcessResult(status: process.terminationStatus, stdout: out, stderr: err)
    }

    func finished(timeout: Double = 30) async throws -> ProcessResult {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() > deadline { process.terminate() }
            try await Task.sleep(for: .milliseconds(10))
        }
        return result()
    }
}

func launch(_ executable: String, _ arguments: [String]) throws -> LaunchedProcess {
    let dir = FileManager.default.temporaryDirectory
    let id = UUID().uuidString
    let launched = LaunchedProcess(
        outURL: dir.appendingPathComponent("oko-http-\(id).out"), errURL: dir.appendingPathComponent("oko-http-\(id).err"))
    _ = FileManager.default.createFile(atPath: launched.outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: launched.errURL.path, contents: nil)
    launched.process.executableURL = URL(fileURLWithPath: executable)
    launched.process.arguments = arguments
    launched.process.standardOutput = try FileHandle(forWritingTo: launched.outURL)
    launched.process.standardError = try FileHandle(forWritingTo: launched.errURL)
    launched.process.standardInput = FileHandle.nullDevice
    try launched.process.run()
    return launched
}

func curl(_ arguments: [String]) async throws -> ProcessResult {
    try await run("/usr/bin/curl", ["-s", "--max-time", "20"] + arguments)
}

/// A temp file with `count` pseudo-random bytes (deterministic per seed).
func makeTempFile(count: Int, seed: UInt64 = 42) throws -> (URL, [UInt8]) {
    var state = seed
    var bytes = [UInt8](repeating: 0, count: count)
    for i in 0..<count {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        bytes[i] = UInt8(truncatingIfNeeded: state >> 33)
    }
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("oko-http-body-\(UUID().uuidString)")
    try Data(bytes).write(to: url)
    return (url, bytes)
}

/// Blocking TCP client with a receive timeout, for hand-made (and malformed) traffic.
final class RawSocket {
    let fd: Int32

    init(port: Int, receiveTimeoutMs: Int = 3000) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            close(fd)
            throw RawSocketError.connectFailed(errno)
        }
        var timeout = timeval(tv_sec: receiveTimeoutMs / 1000, tv_usec: (receiveTimeoutMs % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    func send(_ text: String) { send(Array(text.utf8)) }

    /// Reads until the peer closes or the receive timeout passes; `closed` tells which.
    func readAll() -> (bytes: [UInt8], closed: Bool) {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                out.append(contentsOf: chunk[0..<n])
            } else {
                return (out, n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            }
        }
    }
}

enum RawSocketError: Error { case connectFailed(Int32) }

extension String {
    func occurrences(of needle: String) -> Int { components(separatedBy: needle).count - 1 }
}
