// oko-fuzz: libFuzzer entry points for Oko's parsers of untrusted input.
//
// Built only by Fuzz/run.sh, with `-sanitize=fuzzer,address -D OKO_FUZZING` (and lld: gold cannot link
// it): `main` hands over to libFuzzer's driver, which calls `fuzzOneInput` with each input. The target to exercise is
// chosen with the environment variable OKO_FUZZ_TARGET. A normal build gets a `main` that explains this.
import OkoBPF
import OkoLoader
import OkoVerifier
import OkoSyntax
import OkoOpenFlow
import OkoDatapath

#if OKO_FUZZING
import Foundation

private let fuzzTarget = ProcessInfo.processInfo.environment["OKO_FUZZ_TARGET"] ?? "json"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    switch fuzzTarget {
    case "json":
        // Any document that parses must print and re-parse to the same value.
        if let value = try? JSONValue.parse(bytes) {
            guard let again = try? JSONValue.parse(value.text), again == value else { fatalError("JSON round trip changed the document") }
            if let flow = try? FlowSpec(json: value) {
                guard let back = try? FlowSpec(json: flow.json), back == flow else { fatalError("flow JSON round trip changed the rule") }
            }
        }
    case "flow-text":
        let text = String(decoding: bytes, as: UTF8.self)
        if let flow = try? FlowSpec(ofctlText: text) {
            guard let again = try? FlowSpec(ofctlText: flow.ofctlText), again == flow else {
                fatalError("flow text round trip changed the rule: \(flow.ofctlText)")
            }
        }
    case "loader":
        fuzzLoader(bytes)
    case "verifier":
        fuzzVerifier(bytes)
    case "openflow":
        fuzzOpenFlow(bytes)
    default:
        fatalError("unknown OKO_FUZZ_TARGET '\(fuzzTarget)'")
    }
    return 0
}
/// A real switch agent over an in-memory bridge (two ports, four tables), shared by all inputs; its table
/// is emptied when it grows, so every input meets a small table.
private let openFlowBridge: Bridge = {
    let buffers = InMemoryPacketBuffers()
    // No publication window: changes publish synchronously, so no publisher thread outlives an input
    // (LeakSanitizer counted its context as a leak) and every input sees its own changes in effect.
    let bridge = Bridge(name: "fuzz", buffers: buffers, tableCount: 4, publicationWindow: .zero)
    for number in 1...2 { _ = try? bridge.addPort(InMemoryPort(name: "p\(number)", buffers: buffers), number: UInt32(number)) }
    return bridge
}()
private let openFlowAgent = DatapathAgent(bridge: openFlowBridge, datapathID: 1, maxEntriesPerTable: 256)

/// OpenFlow input from a controller (untrusted): the codec must decode or throw; anything it decodes must
/// encode to bytes it decodes again; a session fed HELLO (1.3 or 1.0, by the first byte) then the input (in
/// two reads split where the first byte says) must answer only with whole messages of the negotiated
/// version (1.3 ones must decode), and report a close exactly when it closed.
private func fuzzOpenFlow(_ bytes: [UInt8]) {
    if let message = try? OpenFlowMessage.decode(bytes), let encoded = try? message.encode() {
        do { _ = try OpenFlowMessage.decode(encoded) } catch {
            fatalError("a decoded message re-encodes to bytes the codec refuses: \(error) \(message)")
        }
    }
    if openFlowBridge.flowCount() > 200 { _ = openFlowBridge.deleteFlows() }
    let version = bytes.first.map { $0 & 1 == 0 ? OpenFlowVersion.v1_3 : OpenFlowVersion.v1_0 } ?? OpenFlowVersion.v1_3
    let session = OpenFlowSession(agent: openFlowAgent, roles: ControllerRoles(), clock: { 0 })
    _ = session.start()
    guard let hello = try? OpenFlowMessage(version: version, xid: 1, body: .hello(Hello(versions: [version]))).encode() else {
        fatalError("cannot encode HELLO")
    }
    var outputs = [session.receive(hello)]
    let split = bytes.isEmpty ? 0 : Int(bytes[0]) % (bytes.count + 1)
    outputs.append(session.receive(bytes[..<split]))
    outputs.append(session.receive(bytes[split...]))
    for output in outputs {
        for reply in output.messages {
            // Every reply is one whole message of the negotiated version; 1.3 replies decode fully (the 1.0
            // codec decodes only what controllers send, so 1.0 replies are checked by their header).
            let length = reply.count >= 4 ? Int(reply[2]) << 8 | Int(reply[3]) : 0
            guard reply.count >= 8, length == reply.count, reply[0] == version || reply[1] == MessageType.hello.rawValue
                  || reply[1] == MessageType.error.rawValue
            else { fatalError("the session sent a malformed message: \(reply.prefix(16))") }
            if reply[0] == OpenFlowVersion.v1_3, (try? OpenFlowMessage.decode(reply)) == nil {
                fatalError("the session sent a message it cannot decode: \(reply.prefix(16))")
            }
        }
    }
    if outputs.contains(where: \.close) != (session.state == .closed) { fatalError("close flag and session state disagree") }
}

@_silgen_name("LLVMFuzzerRunDriver")
private func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

/// Any byte string must either load as a BPF object or throw; what a loaded object offers (program
/// lookup, typed rendering of map keys and values) must not crash either.
private func fuzzLoader(_ bytes: [UInt8]) {
    // The same bytes as JSON text for typed map updates: must parse or throw.
    if bytes.count < 4096 { _ = try? BTFValue(json: String(decoding: bytes, as: UTF8.self)) }
    guard let object = try? BPFObjectFile(bytes: bytes) else { return }
    _ = try? object.program()
    for program in object.programs { _ = try? object.program(named: program.name) }
    guard let btf = object.btf else { return }
    for map in object.maps {
        if let typeID = map.btfValueTypeID {
            _ = btf.describe(typeID)
            let value = map.initialValue ?? [UInt8](repeating: 0, count: Int(min(map.valueSize, 1 << 16)))
            if let rendered = try? btf.render(value, as: typeID) { _ = try? btf.encode(rendered, as: typeID) }
        }
        if let typeID = map.btfKeyTypeID {
            let key = [UInt8](repeating: 0xa5, count: Int(min(map.keySize, 1 << 16)))
            if let rendered = try? btf.render(key, as: typeID) { _ = try? btf.encode(rendered, as: typeID) }
        }
    }
}

private let fuzzMaps = [
    VerifierMapDescription(name: "hash", type: 1, keySize: 4, valueSize: 8, maxEntries: 16),
    VerifierMapDescription(name: "array", type: 2, keySize: 4, valueSize: 16, maxEntries: 4),
]

/// The verifier must never crash or run away on any instruction sequence, and a program it accepts must
/// be safe: with no map or helper use (so the interpreter needs no map memory), running the accepted program
/// on packets of every length the input chooses must never fault in the bounds-checked interpreter.
private func fuzzVerifier(_ bytes: [UInt8]) {
    guard bytes.count >= 8 else { return }
    let packetLength = Int(bytes[0])
    let body = bytes.dropFirst().prefix((bytes.count - 1) / 8 * 8)
    guard let instructions = BPFInstruction.decode(bytes: body), !instructions.isEmpty else { return }
    let limits = VerifierLimits(maxInstructionsProcessed: 50_000, maxStoredStates: 5_000)
    guard (try? BPFVerifier.verify(instructions: instructions, maps: fuzzMaps, limits: limits)) != nil else { return }
    let usesMapsOrHelpers = instructions.contains { $0.opcode == BPFOpcode.lddw && $0.src != 0 || $0.opcode == 0x85 }
    guard !usesMapsOrHelpers, let interpreter = try? BPFInterpreter(instructions: instructions, helpers: BPFHelperTable()) else { return }
    var packet = [UInt8](repeating: 0xab, count: packetLength)
    for (index, byte) in body.prefix(packetLength).enumerated() { packet[index] = byte }
    packet.withUnsafeMutableBytes { buffer in
        do {
            _ = try interpreter.run(memory: buffer.baseAddress, length: packetLength)
        } catch {
            fatalError("verifier accepted a program that faults: \(error) on a \(packetLength)-byte packet")
        }
    }
}

/// SwiftPM links executables with their entry point renamed to this `main`, which overrides libFuzzer's;
/// so it hands over to libFuzzer's driver explicitly.
@main
struct OkoFuzzMain {
    static func main() {
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(runFuzzerDriver(&argc, &argv) { data, size in fuzzOneInput(data, size) })
    }
}
#else
@main
struct OkoFuzzUsage {
    static func main() {
        print("oko-fuzz is a libFuzzer harness; build and run it with Fuzz/run.sh")
    }
}
#endif
