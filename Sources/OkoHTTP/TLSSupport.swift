// TLS for the server (NIOSSL, BoringSSL). ALPN offers h2 then http/1.1; the connection handler then
// tells the protocols apart by the HTTP/2 client preface, exactly as on cleartext connections.
import NIOCore
import NIOSSL

enum TLSSupport {
    typealias Context = NIOSSLContext

    static func makeContext(_ tls: HTTPServerConfiguration.TLS) throws -> Context {
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(tls.certificatePath)
            let key = try NIOSSLPrivateKey(file: tls.privateKeyPath, format: .pem)
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
            configuration.applicationProtocols = ["h2", "http/1.1"]
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw HTTPServerError.tlsSetupFailed(
                "cannot load certificate \(tls.certificatePath) / key \(tls.privateKeyPath): \(error)")
        }
    }

    static func addHandler(_ context: Context, to channel: any Channel) throws {
        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
    }
}
