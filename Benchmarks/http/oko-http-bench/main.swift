// oko-http-bench: serves a small JSON body on every path, for Benchmarks/http/run.sh and manual tests.
// Usage: oko-http-bench [port] [--tls cert.pem key.pem]
import OkoHTTP

let arguments = CommandLine.arguments
var configuration = HTTPServerConfiguration(host: "127.0.0.1", port: arguments.count > 1 ? Int(arguments[1]) ?? 8080 : 8080)
if let index = arguments.firstIndex(of: "--tls"), arguments.count > index + 2 {
    configuration.tls = .init(certificatePath: arguments[index + 1], privateKeyPath: arguments[index + 2])
}
configuration.maxConcurrentStreams = 256
configuration.logger.logLevel = .warning

/// The JSON body every request gets (the benchmark serves nghttpd a file of the same bytes).
let payload: [UInt8] = Array(#"{"status":"ok","switch":"oko","ports":4,"flows":128}"#.utf8)

let server = HTTPServer(
    configuration: configuration,
    handler: HTTPClosureHandler { _ in
        HTTPResponse(status: 200, headers: ["content-type": "application/json"], body: payload)
    })
try await server.start()
print("listening on \(server.port ?? 0)")
while true { try await Task.sleep(for: .seconds(3600)) }
