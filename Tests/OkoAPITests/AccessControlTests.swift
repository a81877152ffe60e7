import Foundation
import Testing
@testable import OkoAPI

struct AccessControlTests {
    let control = AccessControl(tokens: [
        AccessToken(scope: .admin, secret: "a".repeated(32), name: "ops"),
        AccessToken(scope: .read, secret: "r".repeated(32), name: "prometheus"),
    ], requireTokenForReads: false)

    @Test func readsAreOpenOnLoopbackButChangesNeedAnAdminToken() {
        #expect(control.decide(authorization: nil, mutating: false) == .allowed(principal: "anonymous"))
        if case .unauthenticated = control.decide(authorization: nil, mutating: true) {} else { Issue.record("a change without token must be 401") }
        #expect(control.decide(authorization: "Bearer " + "a".repeated(32), mutating: true) == .allowed(principal: "ops"))
        if case .forbidden(let why) = control.decide(authorization: "Bearer " + "r".repeated(32), mutating: true) {
            #expect(why.contains("needs 'admin'"))
        } else {
            Issue.record("a read token must get 403 on a change")
        }
        if case .unauthenticated(let why) = control.decide(authorization: "Bearer " + "x".repeated(32), mutating: false) {
            #expect(why == "unknown bearer token")
        } else {
            Issue.record("an unknown token must get 401 even on a read")
        }
        if case .unauthenticated = control.decide(authorization: "Basic abc", mutating: false) {} else { Issue.record("Basic must be refused") }
    }

    @Test func everyCallNeedsATokenOffLoopback() {
        let strict = AccessControl(tokens: control.tokens, requireTokenForReads: true)
        if case .unauthenticated = strict.decide(authorization: nil, mutating: false) {} else { Issue.record("reads need a token") }
        #expect(strict.decide(authorization: "bearer " + "r".repeated(32), mutating: false) == .allowed(principal: "prometheus"))
    }

    @Test func createsAnOwnerOnlyTokenFileOnceAndReusesIt() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("oko-tokens-\(UUID().uuidString)/tokens").path
        let first = try AccessControl.loadOrCreate(path: path)
        #expect(first.created)
        #expect(first.tokens.count == 1 && first.tokens[0].scope == .admin && first.tokens[0].secret.count == 64)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let second = try AccessControl.loadOrCreate(path: path)
        #expect(!second.created)
        #expect(second.tokens == first.tokens)
    }

    @Test func badTokenFilesNameTheLine() {
        #expect(throws: AccessControlError.self) { try AccessControl.parse(tokenFile: "root abcdefabcdefabcdef\n", path: "t") }
        do {
            _ = try AccessControl.parse(tokenFile: "# c\nadmin short\n", path: "t")
            Issue.record("a short token must be refused")
        } catch {
            #expect("\(error)" == "t:2: token shorter than 16 characters")
        }
    }
}

extension String {
    func repeated(_ count: Int) -> String { String(repeating: self, count: count) }
}
