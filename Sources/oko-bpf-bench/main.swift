// oko-bpf-bench: times Oko's BPF interpreter and JIT on the benchmark programs and writes the
// same programs (with each foreign engine's entry prologue) as raw slots for Benchmarks/bpf/bench_c.c.
//
// usage: oko-bpf-bench PROGRAM_DIR OUT_DIR ITERATIONS
// Each PROGRAM_DIR/<name>.s body expects r1 = packet start, r2 = packet end. Prologues:
//   Oko (r1 = data, r2 = length):       add r2, r1
//   librte_bpf (r1 = data only):        mov r2, r1; add r2, <packet length>
//   kernel XDP (r1 = struct xdp_md *):  r2 = ctx->data_end; r1 = ctx->data
// Output lines: RESULT <name> <engine> <ns per run> <r0 hex>, and COMPILE <instructions> <ns>.
// Also writes OUT_DIR/<name>.oko-jit.code, the JIT's machine code, for bench_c's side-by-side run.

#if canImport(Glibc)
import Glibc
#endif
import OkoBPF
import OkoJIT

func fail(_ message: String) -> Never {
    print("oko-bpf-bench: \(message)")
    exit(1)
}

func nowNanoseconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) * 1e9 + Double(ts.tv_nsec)
}

/// Best of `rounds` rounds of `iterations` calls, in ns per call; also returns the last r0.
/// Inlined so the timed loop calls the engine directly, like the C harness does.
/// Many short rounds (~0.5 ms): on a shared machine long rounds nearly always include a preemption.
let rounds = 101

@inline(__always)
func measure(iterations requested: Int, _ body: () -> UInt64) -> (nanoseconds: Double, r0: UInt64) {
    // Calibrate the calls per round so a round lasts about 0.5 ms.
    var sink: UInt64 = 0
    let probeStart = nowNanoseconds()
    for _ in 0..<1000 { sink &+= body() }
    let estimate = max((nowNanoseconds() - probeStart) / 1000, 0.1)
    let iterations = max(100, min(requested, Int(500_000 / estimate)))
    var best = Double.infinity
    for _ in 0..<rounds {
        let start = nowNanoseconds()
        for _ in 0..<iterations { sink &+= body() }
        best = min(best, (nowNanoseconds() - start) / Double(iterations))
    }
    withExtendedLifetime(sink) {}
    return (best, body())
}

/// A TCP SYN as Linux sends it: Ethernet, IPv4 (TTL 64), TCP with MSS, SACK_PERM, TS, NOP, WS options.
let synPacket: [UInt8] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00,
    0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00,
    0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02,
    0xc3, 0x50, 0x00, 0x50, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x00,
    0xa0, 0x02, 0xfa, 0xf0, 0x00, 0x00, 0x00, 0x00,
    0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x01, 0x02, 0x03, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x03, 0x03, 0x07,
]

func write(_ bytes: [UInt8], to path: String) {
    guard let file = fopen(path, "wb") else { fail("cannot write \(path)") }
    _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
    fclose(file)
}

func readText(_ path: String) -> String {
    guard let file = fopen(path, "rb") else { fail("cannot read \(path)") }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = fread(&chunk, 1, chunk.count, file)
        if count <= 0 { break }
        bytes += chunk[0..<count]
    }
    return String(decoding: bytes, as: UTF8.self)
}

func assemble(_ source: String, _ what: String) -> [BPFInstruction] {
    do { return try BPFAssembler.assemble(source) } catch { fail("\(what): \(error)") }
}

let arguments = CommandLine.arguments
guard arguments.count == 4, let iterations = Int(arguments[3]) else {
    fail("usage: oko-bpf-bench PROGRAM_DIR OUT_DIR ITERATIONS")
}
let programDirectory = arguments[1]
let outDirectory = arguments[2]
write(synPacket, to: outDirectory + "/packet.bin")

var names: [String] = []
if let directory = opendir(programDirectory) {
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name.hasSuffix(".s") { names.append(String(name.dropLast(2))) }
    }
    closedir(directory)
}
names.sort()

let buffer = UnsafeMutableRawPointer.allocate(byteCount: 2048, alignment: 64)
buffer.initializeMemory(as: UInt8.self, repeating: 0, count: 2048)
synPacket.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
let length = UInt64(synPacket.count)
let helpers = BPFHelperTable()

for name in names {
    let body = readText("\(programDirectory)/\(name).s")
    let program = assemble("add %r2, %r1\n" + body, name)
    write(BPFInstruction.encode(assemble("mov %r2, %r1\nadd %r2, \(synPacket.count)\n" + body, name)),
          to: "\(outDirectory)/\(name).dpdk.bin")
    write(BPFInstruction.encode(assemble("ldxw %r2, [%r1+4]\nldxw %r1, [%r1+0]\n" + body, name)),
          to: "\(outDirectory)/\(name).kernel.bin")

    do {
        let interpreter = try BPFInterpreter(instructions: program, helpers: helpers)
        let result = measure(iterations: iterations) {
            (try? interpreter.run(memory: buffer, length: Int(length))) ?? 0xdead
        }
        print("RESULT \(name) oko-interp \(result.nanoseconds) 0x\(String(result.r0, radix: 16))")
    } catch {
        print("ERROR \(name) oko-interp \(error)")
    }
    do {
        let jit = try BPFJITProgram(instructions: program, helpers: helpers)
        let entry = jit.entry
        let result = measure(iterations: iterations) { entry(buffer, length) }
        // Programs librte_bpf can load are timed again by bench_c, alternating with librte_bpf's
        // JIT in one process; those figures go in the table, this one is the Swift-side check.
        print("RESULT \(name) oko-jit-swift \(result.nanoseconds) 0x\(String(result.r0, radix: 16))")
        write(jit.machineCode, to: "\(outDirectory)/\(name).oko-jit.code")
    } catch {
        print("ERROR \(name) oko-jit \(error)")
    }
}

// Compile time of a ~4,000-instruction program (repeated p0f + hash bodies, labels renamed).
var large: [BPFInstruction] = []
let p0fBody = assemble(readText("\(programDirectory)/p0f.s"), "p0f")
let hashBody = assemble(readText("\(programDirectory)/hash5.s"), "hash5")
while large.count + p0fBody.count + hashBody.count < 4000 {
    // Bodies end in exit; turn every exit but the program's last into a jump to the next copy.
    for part in [p0fBody, hashBody] {
        var copy = part
        for index in copy.indices where copy[index].opcode == 0x95 {
            copy[index] = BPFInstruction(opcode: 0x05, offset: Int16(copy.count - 1 - index))
        }
        copy[copy.count - 1] = BPFInstruction(opcode: 0xb7, dst: 9, immediate: 0)  // nop-like
        large += copy
    }
}
large.append(BPFInstruction(opcode: 0x95))
var bestCompile = Double.infinity
for _ in 0..<50 {
    let start = nowNanoseconds()
    let compiled = try BPFJITProgram(instructions: large, helpers: helpers)
    bestCompile = min(bestCompile, nowNanoseconds() - start)
    withExtendedLifetime(compiled) {}
}
print("COMPILE \(large.count) \(bestCompile)")
