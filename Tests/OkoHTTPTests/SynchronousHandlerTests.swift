// Handlers that answer without suspending are called on the event loop without a task per request; a
// handler that declines (nil) still gets its async `handle`.
import Foundation
import OkoHTTP
import Synchronization
import Testing

/// Answers synchronously for paths under /sync, declines the rest; counts which entry point ran.
final class SplitHandler: HTTPHandler {
    let synchronousCalls = Atomic<Int>(0)
    let asyncCalls = Atomic<Int>(0)

    func handleWithoutSuspending(_ request: HTTPRequest) -> HTTPResponse? {
        guard request.path.hasPrefix("/sync") else { return nil }
        synchronousCalls.add(1, ordering: .relaxed)
        return HTTPResponse(status: 200, headers: HTTPHeaders([("content-type", "text/plain")]), body: Array("sync \(request.path)\n".utf8))
    }

    func handle(_ request: HTTPRequest) async -> HTTPResponse {
        asyncCalls.add(1, ordering: .relaxed)
        return HTTPResponse(status: 200, headers: HTTPHeaders([("content-type", "text/plain")]), body: Array("async \(request.path)\n".utf8))
    }
}

@Suite(.serialized)
struct SynchronousHandlerTests {
    @Test func synchronousAnswersAndDeclinedRequestsBothArriveOverHTTP1AndHTTP2() async throws {
        let handler = SplitHandler()
        let (server, port) = try await startServer(handler: handler)
        defer { Task { await server.shutdown(gracePeriod: .seconds(1)) } }
        for http2 in [false, true] {
            let result = try await curl((http2 ? ["--http2-prior-knowledge"] : []) + [
                "-s", "http://127.0.0.1:\(port)/sync/a", "http://127.0.0.1:\(port)/other", "http://127.0.0.1:\(port)/sync/b",
            ])
            #expect(result.stdout == "sync /sync/a\nasync /other\nsync /sync/b\n")
        }
        #expect(handler.synchronousCalls.load(ordering: .relaxed) == 4)
        #expect(handler.asyncCalls.load(ordering: .relaxed) == 2)
    }
}
