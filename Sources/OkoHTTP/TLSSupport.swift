// TLS for the server. Placeholder until NIOSSL is wired in: configuring TLS fails clearly.
import NIOCore

enum TLSSupport {
    struct Context: Sendable {}

    static func makeContext(_ tls: HTTPServerConfiguration.TLS) throws -> Context {
        throw HTTPServerError.tlsSetupFailed("TLS support is not built in")
    }

    static func addHandler(_ context: Context, to channel: any Channel) throws {}
}
