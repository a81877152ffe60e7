// TLS for the server (NIOSSL, BoringSSL). ALPN offers h2 then http/1.1; the connection handler then
// tells the protocols apart by the HTTP/2 client preface, exactly as on cleartext connections.
import NIOCore
import NIOSSL

extension HTTPServerConfiguration.TLS {
    /// Which part of a TLS configuration is at fault, with the reason.
    public enum Problem: Error, CustomStringConvertible, Sendable {
        case certificate(String)
        case privateKey(String)
        /// Both files load but do not belong together (or BoringSSL refuses the pair).
        case mismatch(String)

        public var description: String {
            switch self {
            case .certificate(let why), .privateKey(let why), .mismatch(let why): why
            }
        }
    }

    /// Loads both files and builds a TLS context, so that a bad file is reported up front (naming the
    /// file at fault) rather than at the first handshake.
    public func validate() throws(Problem) {
        _ = try TLSSupport.load(self)
    }
}

enum TLSSupport {
    typealias Context = NIOSSLContext

    static func makeContext(_ tls: HTTPServerConfiguration.TLS) throws -> Context {
        do {
            return try load(tls)
        } catch {
            throw HTTPServerError.tlsSetupFailed(error.description)
        }
    }

    static func load(_ tls: HTTPServerConfiguration.TLS) throws(HTTPServerConfiguration.TLS.Problem) -> Context {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(tls.certificatePath)
        } catch {
            throw .certificate("'\(tls.certificatePath)' is not a readable PEM certificate chain (\(error))")
        }
        guard !chain.isEmpty else { throw .certificate("'\(tls.certificatePath)' holds no PEM certificate") }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: tls.privateKeyPath, format: .pem)
        } catch {
            throw .privateKey("'\(tls.privateKeyPath)' is not a readable, unencrypted PEM private key (\(error))")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.applicationProtocols = ["h2", "http/1.1"]
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw .mismatch(
                "private key '\(tls.privateKeyPath)' does not match certificate '\(tls.certificatePath)' (\(error))")
        }
    }

    static func addHandler(_ context: Context, to channel: any Channel) throws {
        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
    }
}
