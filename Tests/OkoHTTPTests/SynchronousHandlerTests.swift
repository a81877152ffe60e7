// Handlers that answer without suspending are called on the event loop without a task per request; a
// handler that declines (nil) still gets its async `handle`.
import Foundation
import OkoHTTP
import Synchronization
import Testing

/// Has a synchronous answer but does not declare it: the server must use `handle`.
final class UndeclaredSynchronousHandler: HTTPHandler {
    let synchronousCalls = Atomic<Int>(0)

    func handleWithoutSuspending(_ request: HTTPRequest) -> HTTPResponse? {
        synchronousCalls.add(1, ordering: .relaxed)
        return HTTPResponse(status: 500)
    }

    func handle(_ request: HTTPRequest) async -> HTTPResponse {
        HTTPResponse(status: 200, headers: HTTPHeaders([("content-type", "text/plain")]), body: Array("async\n".utf8))
    }
}

/// Answers synchronously for paths under /sync, declines the rest; counts which entry point ran.
final class SplitHandler: HTTPHandler {
    let synchronousCalls = Atomic<Int>(0)
    let asyncCalls = Atomic<Int>(0)
    var answersWithoutSuspending: Bool { true }

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
        // HTTP/1.1 keep-alive: three requests on one connection, answered in order.
        let http1 = try await curl(["-s", "http://127.0.0.1:\(port)/sync/a", "http://127.0.0.1:\(port)/other", "http://127.0.0.1:\(port)/sync/b"])
        #expect(http1.stdout == "sync /sync/a\nasync /other\nsync /sync/b\n")
        // HTTP/2 one request per connection (curl 7.88 cannot reuse a prior-knowledge connection).
        for path in ["/sync/a", "/other", "/sync/b"] {
            let http2 = try await curl(["-s", "--http2-prior-knowledge", "http://127.0.0.1:\(port)\(path)"])
            #expect(http2.stdout == (path.hasPrefix("/sync") ? "sync " : "async ") + path + "\n")
        }
        #expect(handler.synchronousCalls.load(ordering: .relaxed) == 4)
        #expect(handler.asyncCalls.load(ordering: .relaxed) == 2)
    }

    @Test func handlersThatDoNotDeclareSynchronousAnswersRunAsTasks() async throws {
        let handler = UndeclaredSynchronousHandler()
        let (server, port) = try await startServer(handler: handler)
        defer { Task { await server.shutdown(gracePeriod: .seconds(1)) } }
        let result = try await curl(["-s", "http://127.0.0.1:\(port)/x"])
        #expect(result.stdout == "async\n")
        #expect(handler.synchronousCalls.load(ordering: .relaxed) == 0)
    }
}
