import Testing
@testable import OkoAPI

struct RouterTests {
    @Test func capturesParametersAndSeparatesMethods() {
        let router = Router<String>()
        router.add("GET", "/v1/bridges", "list")
        router.add("POST", "/v1/bridges", "create")
        router.add("GET", "/v1/bridges/{bridge}/ports/{port}", "port")
        router.add("DELETE", "/v1/bridges/{bridge}/ports/{port}", "delete-port")
        router.add("GET", "/v1/bridges/{bridge}/trace", "not-a-port")

        guard case .found(let handler, let parameters) = router.match("GET", "/v1/bridges/br%2D0/ports/7") else {
            Issue.record("route not found")
            return
        }
        #expect(handler == "port")
        #expect(parameters == ["bridge": "br-0", "port": "7"])
        if case .found(let h, _) = router.match("POST", "/v1/bridges") { #expect(h == "create") } else { Issue.record("POST") }
        if case .found(let h, _) = router.match("HEAD", "/v1/bridges") { #expect(h == "list") } else { Issue.record("HEAD falls back to GET") }
        if case .methodNotAllowed(let allowed) = router.match("PUT", "/v1/bridges/br0/ports/1") {
            #expect(allowed == ["DELETE", "GET"])
        } else {
            Issue.record("PUT must be 405")
        }
        if case .notFound = router.match("GET", "/v1/bridges/br0/nothing") {} else { Issue.record("unknown path must be 404") }
        if case .notFound = router.match("GET", "/v1/bridges/br0/ports/%zz") {} else { Issue.record("bad escape must be 404") }
        if case .found(let h, _) = router.match("GET", "/v1/bridges/br0/trace") { #expect(h == "not-a-port") } else { Issue.record("literal beats capture") }
    }
}
