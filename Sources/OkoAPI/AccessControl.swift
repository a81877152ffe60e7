// Bearer-token access control for the management API.
//
// Design note
// - Tokens live in a file, one per line: `SCOPE TOKEN [NAME]` with SCOPE `admin` (read and change) or
//   `read` (GET only); `#` starts a comment. On first start okod creates the file with one random admin
//   token, readable only by its owner (0600), and never overwrites an existing file.
// - Mutating calls always need an admin token. Reads need a token only when the API listens on a
//   non-loopback address (`requireTokenForReads`).
// - Comparison is constant-time in the token's length so that response timing does not reveal prefixes.
import Foundation

public enum AccessScope: String, Sendable, Comparable {
    case read
    case admin

    public static func < (lhs: AccessScope, rhs: AccessScope) -> Bool { lhs == .read && rhs == .admin }
}

public struct AccessToken: Sendable, Equatable {
    public var scope: AccessScope
    public var secret: String
    public var name: String
}

public enum AccessDecision: Sendable, Equatable {
    /// Allowed; `principal` names who, for the audit log.
    case allowed(principal: String)
    /// 401: no token or an unknown one.
    case unauthenticated(String)
    /// 403: a valid token whose scope is too small.
    case forbidden(String)
}

public struct AccessControlError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

public struct AccessControl: Sendable {
    public let tokens: [AccessToken]
    public let requireTokenForReads: Bool

    public init(tokens: [AccessToken], requireTokenForReads: Bool) {
        self.tokens = tokens
        self.requireTokenForReads = requireTokenForReads
    }

    /// Decides a request from its `Authorization` header and whether it changes state.
    public func decide(authorization: String?, mutating: Bool) -> AccessDecision {
        let needed: AccessScope? = mutating ? .admin : (requireTokenForReads ? .read : nil)
        guard let header = authorization else {
            if needed == nil { return .allowed(principal: "anonymous") }
            return .unauthenticated("this call needs a bearer token (Authorization: Bearer TOKEN)")
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            return .unauthenticated("the Authorization header must be 'Bearer TOKEN'")
        }
        let presented = Array(parts[1].utf8)
        guard let token = tokens.first(where: { Self.constantTimeEqual(Array($0.secret.utf8), presented) }) else {
            return .unauthenticated("unknown bearer token")
        }
        if let needed, token.scope < needed {
            return .forbidden("token '\(token.name)' has scope '\(token.scope.rawValue)'; this call needs '\(needed.rawValue)'")
        }
        return .allowed(principal: token.name)
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for index in 0..<a.count { difference |= a[index] ^ (index < b.count ? b[index] : 0) }
        return difference == 0
    }

    /// Parses a token file's text; errors name the line.
    public static func parse(tokenFile text: String, path: String) throws -> [AccessToken] {
        var tokens: [AccessToken] = []
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if fields.isEmpty { continue }
            guard fields.count >= 2, let scope = AccessScope(rawValue: String(fields[0])) else {
                throw AccessControlError(description: "\(path):\(number + 1): expected 'admin|read TOKEN [NAME]'")
            }
            guard fields[1].count >= 16 else {
                throw AccessControlError(description: "\(path):\(number + 1): token shorter than 16 characters")
            }
            let name = fields.count > 2 ? fields[2...].joined(separator: " ") : "\(scope.rawValue)-\(number + 1)"
            tokens.append(AccessToken(scope: scope, secret: String(fields[1]), name: name))
        }
        return tokens
    }

    /// Loads the token file at `path`, creating it (0600, one random admin token) when it does not exist.
    /// Returns the tokens and whether the file was created.
    public static func loadOrCreate(path: String) throws -> (tokens: [AccessToken], created: Bool) {
        let manager = FileManager.default
        if !manager.fileExists(atPath: path) {
            let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
            try manager.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let secret = randomSecret()
            let text = "# okod API tokens: SCOPE TOKEN [NAME], SCOPE is admin or read.\nadmin \(secret) admin\n"
            // O_EXCL: never clobber a file another process created meanwhile.
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
            guard fd >= 0 else { throw AccessControlError(description: "cannot create token file '\(path)': \(String(cString: strerror(errno)))") }
            let bytes = Array(text.utf8)
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            fsync(fd)
            close(fd)
            guard written == bytes.count else { throw AccessControlError(description: "cannot write token file '\(path)'") }
            return (try parse(tokenFile: text, path: path), true)
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw AccessControlError(description: "cannot read token file '\(path)'")
        }
        let tokens = try parse(tokenFile: text, path: path)
        guard !tokens.isEmpty else { throw AccessControlError(description: "token file '\(path)' holds no token") }
        return (tokens, false)
    }

    /// 32 random bytes from the system's CSPRNG as 64 hex characters.
    static func randomSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in
            let byte = UInt8.random(in: 0...255, using: &generator)
            return (byte < 16 ? "0" : "") + String(byte, radix: 16)
        }.joined()
    }
}
