// oko-bpf-plugin: runs one program for the bpf_conformance runner.
//
// Protocol: the program arrives on stdin as hex bytes ("b7 00 00 00 ..."), the memory (if any) as
// the first non-flag argument in the same encoding. Prints r0 in hex and exits 0; on any error
// prints the message to stderr and exits 1. `--interpreter` (default) or `--jit` picks the engine.

import OkoBPF
import OkoJIT

#if canImport(Glibc)
import Glibc
#endif

enum Engine: String {
    case interpreter
    case jit
}

func fail(_ message: String, code: Int32 = 1) -> Never {
    FileHandleOutput.standardError(message)
    exit(code)
}

enum FileHandleOutput {
    static func standardError(_ text: String) {
        let line = text + "\n"
        _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    }
}

func parseHexBytes(_ text: String) -> [UInt8]? {
    var bytes: [UInt8] = []
    for token in text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }) {
        guard let byte = UInt8(token, radix: 16) else { return nil }
        bytes.append(byte)
    }
    return bytes
}

var engine = Engine.interpreter
var memoryText: String?
for argument in CommandLine.arguments.dropFirst() {
    switch argument {
    case "--interpreter": engine = .interpreter
    case "--jit": engine = .jit
    default:
        if argument.hasPrefix("--") { fail("unknown option \(argument)") }
        if memoryText == nil { memoryText = argument }
    }
}

var programText = ""
while let line = readLine(strippingNewline: false) { programText += line }
guard let programBytes = parseHexBytes(programText) else { fail("program is not hex bytes") }
guard let program = BPFInstruction.decode(bytes: programBytes) else {
    fail("program length \(programBytes.count) is not a multiple of 8")
}
var memory: [UInt8] = []
if let memoryText {
    guard let bytes = parseHexBytes(memoryText) else { fail("memory is not hex bytes") }
    memory = bytes
}

let helpers = BPFConformanceHelpers.table()

/// Runs `program` on the chosen engine. The only place that knows the engines.
func execute(_ engine: Engine, memory: UnsafeMutableRawBufferPointer) throws -> UInt64 {
    switch engine {
    case .interpreter:
        let interpreter = try BPFInterpreter(instructions: program, helpers: helpers)
        return try interpreter.run(memory: memory.count == 0 ? nil : memory.baseAddress, length: memory.count)
    case .jit:
        let compiled = try BPFJITProgram(instructions: program, helpers: helpers)
        return compiled.run(memory: memory.count == 0 ? nil : memory.baseAddress, length: UInt64(memory.count))
    }
}

do {
    let result = try memory.withUnsafeMutableBytes { buffer in try execute(engine, memory: buffer) }
    print(String(result, radix: 16))
} catch {
    fail("\(error)")
}
