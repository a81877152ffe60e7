// The REST client okoctl uses: one request at a time over HTTP/1.1 (URLSession), bearer token attached,
// problem+json errors turned into `OkoctlError.refused` with the server's title and detail.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import OkoAPI
import OkoSyntax

enum OkoctlError: Error, CustomStringConvertible {
    case usage(String)
    case unreachable(String)
    case refused(status: Int, message: String)
    case serverFailure(status: Int, message: String)
    case local(String)

    var description: String {
        switch self {
        case .usage(let message): return message
        case .unreachable(let message): return message
        case .refused(let status, let message): return "refused (\(status)): \(message)"
        case .serverFailure(let status, let message): return "server error (\(status)): \(message)"
        case .local(let message): return message
        }
    }

    /// Exit codes: 1 refused by the server, 2 usage, 3 cannot reach okod, 4 server failure, 5 local failure.
    var exitCode: Int32 {
        switch self {
        case .refused: return 1
        case .usage: return 2
        case .unreachable: return 3
        case .serverFailure: return 4
        case .local: return 5
        }
    }
}

struct APIResponse {
    var status: Int
    var contentType: String
    var body: Data

    var json: JSONValue? { try? JSONValue.parse([UInt8](body)) }
    var text: String { String(decoding: body, as: UTF8.self) }
}

final class APIClient: Sendable {
    let server: URL
    let token: String?

    init(server: URL, token: String?) {
        self.server = server
        self.token = token
    }

    /// Sends a request; returns 2xx responses and throws for everything else.
    func send(
        _ method: String, _ path: String, query: [(String, String)] = [], body: Data? = nil,
        contentType: String? = nil, accept: String = "application/json"
    ) async throws -> APIResponse {
        guard var components = URLComponents(url: server, resolvingAgainstBaseURL: false) else {
            throw OkoctlError.usage("bad server URL '\(server)'")
        }
        components.path = path
        if !query.isEmpty { components.queryItems = query.map { URLQueryItem(name: $0.0, value: $0.1) } }
        guard let url = components.url else { throw OkoctlError.usage("cannot build a URL for \(path)") }
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.setValue(accept, forHTTPHeaderField: "Accept")
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        if let body {
            request.httpBody = body
            request.setValue(contentType ?? "application/json", forHTTPHeaderField: "Content-Type")
        }
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await URLSession.shared.data(for: request)
        } catch {
            throw OkoctlError.unreachable("cannot reach okod at \(server.absoluteString): \(error.localizedDescription)")
        }
        guard let http = response as? HTTPURLResponse else { throw OkoctlError.unreachable("no HTTP response from \(server)") }
        let result = APIResponse(status: http.statusCode, contentType: http.value(forHTTPHeaderField: "Content-Type") ?? "", body: data)
        switch http.statusCode {
        case 200..<300: return result
        case 400..<500: throw OkoctlError.refused(status: http.statusCode, message: Self.problemMessage(result))
        default: throw OkoctlError.serverFailure(status: http.statusCode, message: Self.problemMessage(result))
        }
    }

    static func problemMessage(_ response: APIResponse) -> String {
        guard let problem = response.json, let title = problem["title"]?.stringValue else {
            return response.text.isEmpty ? "HTTP \(response.status)" : response.text
        }
        if let detail = problem["detail"]?.stringValue { return "\(title): \(detail)" }
        return title
    }
}

/// Finds an API token: `--token`, `$OKO_TOKEN`, `--token-file`, `$OKO_TOKEN_FILE`, the `api.token_file` of
/// okod's configuration (`$OKO_CONFIG`, else /etc/oko/okod.yaml), then okod's default file.
enum TokenDiscovery {
    static let defaultTokenFile = "/var/lib/oko/api.tokens"
    static let defaultConfiguration = "/etc/oko/okod.yaml"

    static func find(token: String?, tokenFile: String?) -> String? {
        if let token, !token.isEmpty { return token }
        let environment = ProcessInfo.processInfo.environment
        if let token = environment["OKO_TOKEN"], !token.isEmpty { return token }
        let configured = environment["OKO_TOKEN_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        let path = tokenFile ?? configured ?? tokenFileOfConfiguration(environment["OKO_CONFIG"] ?? defaultConfiguration) ?? defaultTokenFile
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
            let tokens = try? AccessControl.parse(tokenFile: text, path: path)
        else { return nil }
        return (tokens.first { $0.scope == .admin } ?? tokens.first)?.secret
    }

    /// The `token_file:` okod's configuration names (with `${config_dir}` resolved), if any. A line scan,
    /// not a YAML parser: okoctl only needs this one value.
    static func tokenFileOfConfiguration(_ path: String) -> String? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
              let match = text.range(of: #"token_file:\s*"?[^"\s,}]+"#, options: .regularExpression)
        else { return nil }
        var value = text[match].dropFirst("token_file:".count).trimmingCharacters(in: .whitespaces)
        if value.hasPrefix("\"") { value.removeFirst() }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().standardizedFileURL.path
        return value.replacingOccurrences(of: "${config_dir}", with: directory)
    }
}
