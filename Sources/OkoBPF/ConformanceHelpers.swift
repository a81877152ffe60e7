// The helper functions and test-file format of the bpf_conformance suite.
//
// `BPFConformanceHelpers` reproduces ubpf's test helpers (ids 0...5) as C-convention functions so
// every engine (interpreter, JIT, the conformance plugin) can register the same table.
// `BPFConformanceTest` parses one `.data` file of the suite.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum BPFConformanceHelpers {
    public static let gatherBytesID: Int32 = 0
    public static let memfrobID: Int32 = 1
    public static let noOpID: Int32 = 2
    public static let sqrtiID: Int32 = 3
    public static let strcmpID: Int32 = 4
    public static let unwindID: Int32 = 5

    /// `(a&0xff)<<32 | (b&0xff)<<24 | (c&0xff)<<16 | (d&0xff)<<8 | (e&0xff)`.
    public static let gatherBytes: BPFHelperFunction = { a, b, c, d, e in
        ((a & 0xff) << 32) | ((b & 0xff) << 24) | ((c & 0xff) << 16) | ((d & 0xff) << 8) | (e & 0xff)
    }

    /// XORs `length` bytes at `pointer` with 42 (glibc's memfrob); returns 0. Trusts its pointer
    /// like ubpf's version; a null pointer is ignored.
    public static let memfrob: BPFHelperFunction = { pointer, length, _, _, _ in
        guard let bytes = UnsafeMutablePointer<UInt8>(bitPattern: UInt(pointer)) else { return 0 }
        for index in 0..<Int(truncatingIfNeeded: length) { bytes[index] ^= 42 }
        return 0
    }

    public static let noOp: BPFHelperFunction = { _, _, _, _, _ in 0 }

    /// Integer square root of r1 (via double precision, as ubpf).
    public static let sqrti: BPFHelperFunction = { value, _, _, _, _ in
        UInt64(Double(value).squareRoot())
    }

    /// `strcmp` of two NUL-terminated strings, sign-extended. Trusts its pointers; null compares as "".
    public static let strcmpExt: BPFHelperFunction = { a, b, _, _, _ in
        let empty: [CChar] = [0]
        return empty.withUnsafeBufferPointer { emptyString in
            let left = UnsafePointer<CChar>(bitPattern: UInt(a)) ?? emptyString.baseAddress!
            let right = UnsafePointer<CChar>(bitPattern: UInt(b)) ?? emptyString.baseAddress!
            return UInt64(bitPattern: Int64(strcmp(left, right)))
        }
    }

    /// Returns r1; registered as the table's unwind helper, so a 0 result stops the program.
    public static let unwind: BPFHelperFunction = { value, _, _, _, _ in value }

    /// A table with all six helpers under their suite ids, `unwind` marked as the unwind helper.
    public static func table() -> BPFHelperTable {
        var table = BPFHelperTable()
        table.register(id: Int(gatherBytesID), name: "gather_bytes", gatherBytes)
        table.register(id: Int(memfrobID), name: "memfrob", memfrob)
        table.register(id: Int(noOpID), name: "no_op", noOp)
        table.register(id: Int(sqrtiID), name: "sqrti", sqrti)
        table.register(id: Int(strcmpID), name: "strcmp_ext", strcmpExt)
        table.register(id: Int(unwindID), name: "unwind", unwind)
        table.unwindHelperID = unwindID
        return table
    }
}

/// One `.data` file of the bpf_conformance suite.
public struct BPFConformanceTest: Sendable, Hashable {
    public var assembly: String?
    /// `-- raw` words; when present they define the program (overriding `assembly`).
    public var raw: [UInt64]?
    public var memory: [UInt8]
    public var expectedResult: UInt64?
    public var expectedError: String?

    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    public init(parsing text: String) throws(ParseError) {
        var sections: [String: [String]] = [:]
        var current: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("-- ") {
                current = String(line.dropFirst(3)).trimmingWhitespace()
                sections[current!, default: []] = []
                continue
            }
            guard let current else { continue }
            sections[current]!.append(String(line))
        }
        assembly = sections["asm"].map { $0.joined(separator: "\n") }
        if let rawLines = sections["raw"] {
            var words: [UInt64] = []
            for line in rawLines {
                let text = line.trimmingWhitespace()
                if text.isEmpty || text.hasPrefix("#") { continue }
                guard let word = Self.number(text) else { throw ParseError(message: "bad raw word '\(text)'") }
                words.append(word)
            }
            raw = words
        }
        memory = []
        for line in sections["mem"] ?? [] {
            if line.hasPrefix("#") { continue }
            for token in line.split(whereSeparator: { $0 == " " || $0 == "\t" }) {
                guard let byte = UInt8(token, radix: 16) else { throw ParseError(message: "bad memory byte '\(token)'") }
                memory.append(byte)
            }
        }
        if let resultLines = sections["result"] {
            let text = resultLines.map { $0.trimmingWhitespace() }.first { !$0.isEmpty && !$0.hasPrefix("#") }
            if let text {
                guard let value = Self.number(text) else { throw ParseError(message: "bad result '\(text)'") }
                expectedResult = value
            }
        }
        if let errorLines = sections["error"] {
            expectedError = errorLines.map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }.joined(separator: "\n")
        }
        guard assembly != nil || raw != nil else { throw ParseError(message: "no asm or raw section") }
    }

    /// The program: raw words if present, else the assembled text.
    public func program() throws(BPFAssemblyError) -> [BPFInstruction] {
        if let raw { return raw.map(BPFInstruction.init(rawValue:)) }
        return try BPFAssembler.assemble(assembly ?? "")
    }

    static func number(_ text: String) -> UInt64? {
        if text.hasPrefix("0x") || text.hasPrefix("0X") { return UInt64(text.dropFirst(2), radix: 16) }
        if text.hasPrefix("-"), let value = Int64(text) { return UInt64(bitPattern: value) }
        return UInt64(text)
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var slice = Substring(self)
        while let first = slice.first, first.isWhitespace { slice = slice.dropFirst() }
        while let last = slice.last, last.isWhitespace { slice = slice.dropLast() }
        return String(slice)
    }
}
