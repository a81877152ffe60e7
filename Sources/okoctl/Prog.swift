// `okoctl prog verify|run`: offline checks of a filter program object, no okod needed.
// Exit codes here: 0 accepted/ran, 1 the verifier refused the program, 2 usage, 5 the file is
// unreadable or not a loadable object (or its maps cannot be created).
import ArgumentParser
import Foundation
import OkoLoader

struct Prog: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prog", abstract: "Verify or run a filter program object locally.",
        subcommands: [VerifyProgram.self, RunProgram.self])
}

struct ProgramFileOptions: ParsableArguments {
    @Argument(help: "The ELF object (clang -O2 -target bpf).")
    var file: String

    @Option(name: .long, help: "The program's section or entry function (needed when the object has several).")
    var section: String?

    /// Loads and verifies, turning failures into okoctl's exit codes.
    func load() throws -> FilterProgram {
        guard let data = FileManager.default.contents(atPath: file) else {
            fail("cannot read '\(file)'", code: 5)
        }
        do {
            return try FilterProgram(objectBytes: Array(data), program: section)
        } catch {
            switch error {
            case .verification: fail("\(file): program refused: \(error)", code: 1)
            case .loader, .map, .engine: fail("\(file): \(error)", code: 5)
            }
        }
    }
}

/// Prints `okoctl: message` on stderr and exits.
func fail(_ message: String, code: Int32) -> Never {
    FileHandle.standardError.write(Data("okoctl: \(message)\n".utf8))
    Foundation.exit(code)
}

struct VerifyProgram: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "Verify a program offline and summarise it (exit 1 with the verifier's message if refused).")

    @OptionGroup var options: ProgramFileOptions

    @Flag(name: .long, help: "Also print the disassembly.")
    var disassemble = false

    func run() throws {
        let program = try options.load()
        print("\(options.file): accepted")
        print("programs: " + program.object.programs.map { "\($0.sectionName)/\($0.name)" }.joined(separator: ", "))
        print("program: \(program.program.sectionName)/\(program.name), \(program.instructionCount) instructions, JIT code \(program.jit.codeSize) bytes")
        let stats = program.verifierStatistics
        print(
            "verifier: \(stats.instructionsProcessed) instructions processed, \(stats.statesStored) states stored, "
                + "\(stats.statesPruned) pruned, max stack depth \(stats.maxStackDepth), call depth \(stats.maxCallDepth), "
                + "\(stats.loops) loops")
        printTable(
            ["map", "type", "key", "value", "max entries", "memory"],
            program.maps.map { map in
                [map.spec.name, "\(map.spec.type)", "\(map.spec.keySize)", "\(map.spec.valueSize)", "\(map.spec.maxEntries)",
                 "\(map.map.memoryBytes)"]
            })
        if disassemble { print(program.disassembly, terminator: "") }
    }
}

struct RunProgram: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run a program on one packet: prints r0, the time per run, then every map's entries.")

    @OptionGroup var options: ProgramFileOptions

    @Option(name: .long, help: "The packet, in hex (spaces and colons allowed), starting at the Ethernet header.")
    var packet: String

    @Option(name: .long, help: "Runs (the maps keep their state across runs).")
    var `repeat`: Int = 1

    @Flag(name: .long, help: "Use the interpreter.")
    var interpreter = false

    @Flag(name: .long, help: "Use the JIT (the default).")
    var jit = false

    func validate() throws {
        guard `repeat` >= 1 else { throw ValidationError("--repeat must be at least 1") }
        guard !(interpreter && jit) else { throw ValidationError("choose one of --interpreter and --jit") }
    }

    func run() throws {
        guard let bytes = Self.parseHex(packet) else { fail("--packet is not hex: '\(packet)'", code: 2) }
        let program = try options.load()
        let engine: FilterEngine = interpreter ? .interpreter : .jit
        var result: UInt64 = 0
        let start = DispatchTime.now().uptimeNanoseconds
        do {
            // Time the engine, not array bridging: run on one raw pointer.
            var padded = bytes
            padded.append(0)  // a valid base address even for an empty packet
            result = try padded.withUnsafeBytes { buffer -> UInt64 in
                var last: UInt64 = 0
                for _ in 0..<`repeat` { last = try program.run(packet: buffer.baseAddress!, length: bytes.count, engine: engine) }
                return last
            }
        } catch {
            fail("runtime error: \(error)", code: 5)
        }
        let elapsed = DispatchTime.now().uptimeNanoseconds - start
        print("r0 = \(result) (0x\(String(result, radix: 16)))")
        print("\(engine.rawValue): \(elapsed / UInt64(`repeat`)) ns per run over \(`repeat`) runs")
        for map in program.maps {
            print("map \(map.spec.name) (\(map.spec.type), key \(map.spec.keySize), value \(map.spec.valueSize)):")
            let entries: [(key: [UInt8], value: [UInt8])]
            do {
                entries = try map.map.entries().map { ($0.key, $0.value) }
            } catch {
                print("  (not listable: \(error))")
                continue
            }
            if entries.isEmpty { print("  (empty)") }
            for entry in entries {
                print("  key \(Self.hex(entry.key)) value \(Self.hex(entry.value))")
                if let typed = typedText(program, map.spec, key: entry.key, value: entry.value) { print("    \(typed)") }
            }
        }
    }

    func typedText(_ program: FilterProgram, _ spec: MapSpec, key: [UInt8], value: [UInt8]) -> String? {
        guard let btf = program.object.btf, let valueType = spec.btfValueTypeID else { return nil }
        var parts: [String] = []
        if let keyType = spec.btfKeyTypeID, let renderedKey = try? btf.render(key, as: keyType) { parts.append("key \(renderedKey)") }
        if let renderedValue = try? btf.render(value, as: valueType) { parts.append("value \(renderedValue)") }
        return parts.isEmpty ? nil : parts.joined(separator: " ")
    }

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.isEmpty ? "-" : bytes.map { String(format: "%02x", $0) }.joined()
    }

    static func parseHex(_ text: String) -> [UInt8]? {
        var digits = text.filter { !" :\n\t".contains($0) }
        if digits.hasPrefix("0x") { digits.removeFirst(2) }
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        var index = digits.startIndex
        while index < digits.endIndex {
            let next = digits.index(index, offsetBy: 2)
            guard let byte = UInt8(digits[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        return bytes
    }
}
