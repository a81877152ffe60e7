/// Why an object file or a typed map value was refused. Every case names the offending part of
/// the input so that an operator can fix the program rather than guess.
public enum BPFLoaderError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The bytes are not an ELF file at all.
    case notELF
    /// An ELF file, but not a relocatable 64-bit little-endian eBPF object.
    case unsupportedELF(String)
    /// A header, section, symbol or relocation points outside the file or is inconsistent.
    case malformed(String)
    /// libelf refused the input; carries its message.
    case libelf(String)
    /// Well-formed but uses a feature this loader does not implement (named in the message).
    case unsupported(String)
    /// `program(named:)` found nothing, or the object has several programs and none was named.
    case programNotFound(String)
    /// The .BTF or .BTF.ext section is malformed.
    case invalidBTF(String)
    /// A value does not fit the BTF type it is rendered from or encoded to.
    case typeMismatch(String)

    public var description: String {
        switch self {
        case .notELF: "not an ELF file"
        case .unsupportedELF(let message): "unsupported ELF file: \(message)"
        case .malformed(let message): "malformed ELF object: \(message)"
        case .libelf(let message): "libelf: \(message)"
        case .unsupported(let message): "unsupported: \(message)"
        case .programNotFound(let message): "program not found: \(message)"
        case .invalidBTF(let message): "invalid BTF: \(message)"
        case .typeMismatch(let message): "type mismatch: \(message)"
        }
    }
}
