// OkoAPI: the REST management API (openapi/openapi.yaml) on OkoHTTP, driving a SwitchService.
//
// Design note
// - Layers: OkoHTTP server (HTTP/1.1, h2c, TLS; one `HTTPHandler`) -> `ManagementAPI.handle` (routing with
//   `Router`, access control, body limits and media types, problem responses, counters, audit log) ->
//   route functions in `Resources.swift` (JSON <-> values) -> `SwitchService` (bridges by name, port
//   devargs, rule ids; thread-safe) -> `OkoDatapath.Bridge` (rules, ports, counters; its own mutex and
//   RCU snapshots, so API calls never stall packet threads).
// - Threads: `handle` is called concurrently from NIO event loops. Routes are synchronous and short (the
//   service holds its lock only for dictionary work). API counters are a Mutex'd dictionary updated once
//   per request; the refusal counter is an atomic.
// - Errors are RFC 9457 `application/problem+json`: 400 malformed JSON or fields (the message names the
//   field), 401/403 (also counted in `oko_api_auth_refusals_total`), 404, 405 with `Allow`, 409, 413
//   (the API's own body limit, below the server's), 415, 422 (well-formed but not doable).
// - Audit: every request that changes state logs one line: who (token name), what (method, path), result.
// - Programs and maps: `ProgramRoutes.swift`, served when the service has a `LoadedProgramCatalogue`.
// - Wiring (okod): `let service = SwitchService(portFactory: dpdkFactory, buffers: { mempool })`;
//   `service.register(pmd:)` for each PMD thread (for /metrics); `service.ready` false until the
//   configuration is restored (/readyz 503); `HTTPServer(configuration:, handler: ManagementAPI(service:,
//   access:))`. Keep `maxBodyBytes` below the server's limit so oversize bodies get a problem document.
// - Limits: a bulk add applies rules one by one (the bridge republishes a snapshot per rule), so very
//   large bulks are slow until OkoDatapath offers a batch add; routes run on the event loop, so okod may
//   prefer `runHandlersOnEventLoop = false` for big bulks.
import Logging
import OkoDatapath
import OkoHTTP
import OkoSyntax
import Synchronization

/// An error answered as an RFC 9457 problem document.
public struct APIProblem: Error, Sendable {
    public var status: Int
    public var detail: String
    public var headers: [(String, String)] = []
    /// The refused instruction's index (verifier refusals), reported as `instruction`.
    public var instruction: Int? = nil

    public init(_ status: Int, _ detail: String, headers: [(String, String)] = []) {
        self.status = status
        self.detail = detail
        self.headers = headers
    }

    static func from(_ anyError: any Error) -> APIProblem {
        if let problem = anyError as? APIProblem { return problem }
        guard let error = anyError as? SwitchError else { return APIProblem(500, "\(anyError)") }
        return switch error {
        case .notFound(let s): APIProblem(404, s)
        case .conflict(let s): APIProblem(409, s)
        case .unprocessable(let s): APIProblem(422, s)
        case .invalid(let s): APIProblem(400, s)
        }
    }

    static let titles: [Int: String] = [
        400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
        409: "Conflict", 413: "Content Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Content",
        500: "Internal Server Error", 503: "Service Unavailable",
    ]

    func response(instance: String) -> HTTPResponse {
        let title = Self.titles[status] ?? "Error"
        var pairs: [(String, JSONValue)] = [
            ("type", .string("about:blank")), ("title", .string(title)), ("status", .integer(Int64(status))),
            ("detail", .string(detail)), ("instance", .string(instance)),
        ]
        if let instruction { pairs.append(("instruction", .integer(Int64(instruction)))) }
        let body: JSONValue = .object(pairs)
        var headers = HTTPHeaders([("content-type", "application/problem+json")])
        for (name, value) in self.headers { headers.add(name, value) }
        return HTTPResponse(status: status, headers: headers, body: Array(body.text.utf8))
    }
}

/// What a route sees of a request.
struct RouteContext: Sendable {
    var request: HTTPRequest
    var parameters: [String: String]
    var principal: String
    /// The decoded query items, parsed once (routes look several up).
    let query: [HTTPQueryItem]

    init(request: HTTPRequest, parameters: [String: String], principal: String) {
        self.request = request
        self.parameters = parameters
        self.principal = principal
        query = request.queryItems
    }

    func parameter(_ name: String) -> String { parameters[name] ?? "" }

    /// The client prefers text/plain (`Accept: text/plain`).
    var wantsText: Bool {
        guard let accept = request.headers["accept"]?.lowercased() else { return false }
        return accept.contains("text/plain") && !accept.contains("application/json")
    }
}

struct Route: Sendable {
    /// Media types accepted for the body (nil: no body expected).
    var accepts: [String]?
    /// Needs admin scope.
    var mutating: Bool
    /// Needs no token at all (health probes).
    var open: Bool = false
    var run: @Sendable (RouteContext) throws(APIProblem) -> HTTPResponse
}

public final class ManagementAPI: HTTPHandler {
    public let service: SwitchService
    public let access: AccessControl
    /// Largest accepted body; keep it below the server's own limit so the API answers 413 as a problem.
    public let maxBodyBytes: Int
    let logger: Logger
    let version: String
    let started = ContinuousClock.now
    let router = Router<Route>()
    private let requestCounts = Mutex<[String: [Int: UInt64]]>([:])
    private let authRefusals = Atomic<UInt64>(0)

    public init(service: SwitchService, access: AccessControl, maxBodyBytes: Int = 4 << 20,
                logger: Logger = Logger(label: "oko.api"), version: String = "0.1.0") {
        self.service = service
        self.access = access
        self.maxBodyBytes = maxBodyBytes
        self.logger = logger
        self.version = version
        registerRoutes()
    }

    public func handle(_ request: HTTPRequest) async -> HTTPResponse { answer(request) }

    /// Every route is synchronous (handlers do not block), so the server needs no task per request.
    public var answersWithoutSuspending: Bool { true }

    public func handleWithoutSuspending(_ request: HTTPRequest) -> HTTPResponse? { answer(request) }

    private func answer(_ request: HTTPRequest) -> HTTPResponse {
        let response = respond(request)
        requestCounts.withLock { $0[request.method, default: [:]][response.status, default: 0] += 1 }
        return response
    }

    private func respond(_ request: HTTPRequest) -> HTTPResponse {
        let path = request.path
        let route: Route
        let parameters: [String: String]
        switch router.match(request.method, path) {
        case .notFound:
            return APIProblem(404, "no resource at '\(path)'").response(instance: path)
        case .methodNotAllowed(let allowed):
            return APIProblem(405, "\(request.method) is not allowed on '\(path)'; allowed: \(allowed.joined(separator: ", "))",
                              headers: [("allow", allowed.joined(separator: ", "))]).response(instance: path)
        case .found(let r, let p):
            route = r
            parameters = p
        }
        var principal = "anonymous"
        if !route.open {
            switch access.decide(authorization: request.headers["authorization"], mutating: route.mutating) {
            case .allowed(let who): principal = who
            case .unauthenticated(let why):
                authRefusals.add(1, ordering: .relaxed)
                audit(request, principal: "unauthenticated", status: 401, route: route)
                return APIProblem(401, why, headers: [("www-authenticate", "Bearer")]).response(instance: path)
            case .forbidden(let why):
                authRefusals.add(1, ordering: .relaxed)
                audit(request, principal: "forbidden", status: 403, route: route)
                return APIProblem(403, why).response(instance: path)
            }
        }
        var response: HTTPResponse
        do throws(APIProblem) {
            if let accepts = route.accepts {
                guard request.body.count <= maxBodyBytes else {
                    throw APIProblem(413, "request body of \(request.body.count) bytes exceeds the limit of \(maxBodyBytes) bytes (limits.max_request_body_bytes)")
                }
                guard !request.body.isEmpty else { throw APIProblem(400, "this call needs a request body (\(accepts.joined(separator: " or ")))") }
                let type = (request.headers["content-type"] ?? "").split(separator: ";").first.map {
                    $0.trimmingCharacters(in: .whitespaces).lowercased()
                } ?? ""
                guard accepts.contains(type) else {
                    throw APIProblem(415, "Content-Type '\(type.isEmpty ? "(none)" : type)' is not accepted here; use \(accepts.joined(separator: " or "))")
                }
            }
            response = try route.run(RouteContext(request: request, parameters: parameters, principal: principal))
        } catch {
            response = error.response(instance: path)
        }
        audit(request, principal: principal, status: response.status, route: route)
        return response
    }

    private func audit(_ request: HTTPRequest, principal: String, status: Int, route: Route) {
        guard route.mutating else { return }
        logger.info("audit", metadata: [
            "who": .string(principal), "method": .string(request.method), "target": .string(request.target),
            "status": .stringConvertible(status), "result": .string(status < 400 ? "ok" : "refused"),
            "peer": .string(request.remoteAddress ?? "?"),
        ])
    }

    func add(_ method: String, _ template: String, accepts: [String]? = nil, open: Bool = false,
             _ run: @escaping @Sendable (RouteContext) throws(APIProblem) -> HTTPResponse) {
        let mutating = !["GET", "HEAD"].contains(method) && !template.hasSuffix("/trace")
        router.add(method, template, Route(accepts: accepts, mutating: mutating, open: open, run: run))
    }

    // MARK: API counters for /metrics

    func apiMetricFamilies() -> [MetricFamily] {
        var requests = MetricFamily(name: "oko_api_requests_total", help: "Management API requests by method and status code.", kind: .counter)
        let counts = requestCounts.withLock { $0 }
        for method in counts.keys.sorted() {
            for code in counts[method]!.keys.sorted() {
                requests.add(counts[method]![code]!, [("method", method), ("code", String(code))])
            }
        }
        var refusals = MetricFamily(name: "oko_api_auth_refusals_total", help: "Management API requests refused with 401 or 403.", kind: .counter)
        refusals.add(authRefusals.load(ordering: .relaxed))
        return [requests, refusals]
    }

    var uptimeSeconds: Double {
        let d = ContinuousClock.now - started
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

// MARK: - JSON helpers

extension HTTPResponse {
    static func json(_ value: JSONValue, status: Int = 200, headers: [(String, String)] = []) -> HTTPResponse {
        var h = ManagementAPI.jsonHeaders
        for (n, v) in headers { h.add(n, v) }
        var body = value.utf8Bytes
        body.append(UInt8(ascii: "\n"))
        return HTTPResponse(status: status, headers: h, body: body)
    }

    static func plain(_ text: String, status: Int = 200) -> HTTPResponse {
        HTTPResponse(status: status, headers: HTTPHeaders([("content-type", "text/plain; charset=utf-8")]), body: Array(text.utf8))
    }

    static var noContent: HTTPResponse { HTTPResponse(status: 204) }
}

func parseJSONBody(_ request: HTTPRequest) throws(APIProblem) -> JSONValue {
    do { return try JSONValue.parse(request.body) } catch { throw APIProblem(400, "invalid JSON: \(error.description)") }
}

/// Checks an object body's keys: known keys only.
func objectPairs(_ value: JSONValue, allowed: Set<String>, what: String) throws(APIProblem) -> [(String, JSONValue)] {
    guard case .object(let pairs) = value else { throw APIProblem(400, "\(what): expected a JSON object, got \(value.typeName)") }
    for (key, _) in pairs where !allowed.contains(key) {
        throw APIProblem(400, "\(what): unknown field '\(key)' (allowed: \(allowed.sorted().joined(separator: ", ")))")
    }
    return pairs
}

func hexU64(_ v: UInt64) -> JSONValue { .string("0x" + String(v, radix: 16)) }
