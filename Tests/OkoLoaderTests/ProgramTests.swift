import OkoBPF
import OkoLoader
import Testing

@Suite("Programs and relocations from compiled objects")
struct ProgramTests {
    @Test("packet parser loads as the only program for every -mcpu", arguments: TestPrograms.compilers)
    func packetParserIsTheOnlyProgram(compiler: TestPrograms.Compiler) throws {
        for cpu in compiler.cpus {
            let object = try TestPrograms.load("packet_parser", with: compiler, cpu: cpu)
            let program = try object.program()
            #expect(program.name == "match_http")
            #expect(program.sectionName == "filter")
            #expect(program.instructions.count > 10)
            #expect(program.instructions.last?.opcode == BPFOpcode.classJMP | BPFOpcode.exit)
            #expect(object.license == "GPL")
            #expect(object.maps.isEmpty)
            #expect(try object.program(named: "filter") == program)
        }
    }

    @Test("BTF map LDDWs become pseudo map fd loads with the map index", arguments: TestPrograms.compilers)
    func mapReferencesAreRelocated(compiler: TestPrograms.Compiler) throws {
        for cpu in compiler.cpus {
            try checkMapReferences(try TestPrograms.load("map_counter", with: compiler, cpu: cpu))
        }
    }

    private func checkMapReferences(_ object: BPFObjectFile) throws {
        let program = try object.program(named: "count_flows")
        let flowIndex = try #require(object.maps.firstIndex { $0.name == "flow_counts" })
        let totalsIndex = try #require(object.maps.firstIndex { $0.name == "totals" })
        let mapLoads = program.instructions.enumerated().filter { $0.element.opcode == BPFOpcode.lddw }
        #expect(mapLoads.count == 3)
        for (index, load) in mapLoads {
            #expect(load.src == BPFOpcode.pseudoMapFD)
            #expect(load.immediate == Int32(flowIndex) || load.immediate == Int32(totalsIndex))
            #expect(program.instructions[index + 1].immediate == 0)
            #expect(program.instructions[index + 1].opcode == 0)
        }
        #expect(Set(mapLoads.map(\.element.immediate)) == [Int32(flowIndex), Int32(totalsIndex)])
        #expect(program.usedMapIndices == [flowIndex, totalsIndex].sorted())
        #expect(program.relocations.count == 3)
    }

    @Test("global data LDDWs become map value loads with the variable's offset", arguments: TestPrograms.compilers)
    func globalDataReferencesCarryOffsets(compiler: TestPrograms.Compiler) throws {
        let object = try TestPrograms.load("global_data", with: compiler)
        let program = try object.program()
        var seen: Set<String> = []
        for relocation in program.relocations {
            guard case .mapValue(let mapIndex, let offset) = relocation.kind else { continue }
            let load = program.instructions[relocation.instructionIndex]
            #expect(load.src == BPFOpcode.pseudoMapValue)
            #expect(load.immediate == Int32(mapIndex))
            #expect(program.instructions[relocation.instructionIndex + 1].immediate == Int32(offset))
            let map = object.maps[mapIndex]
            seen.insert(map.name)
            #expect(offset < Int(map.valueSize))
            if relocation.symbol == "packets_seen" {
                // The initial value at that offset is the variable's initialiser.
                let bytes = Array(map.initialValue![offset..<offset + 8])
                #expect(bytes == [0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11])
            }
        }
        #expect(seen.contains(".data"))
        #expect(seen.contains(".bss"))
        #expect(seen.contains { $0.hasPrefix(".rodata") })
        // The string literals live in a read-only section whose bytes hold the format text.
        let strings = try #require(object.maps.first { $0.name.hasPrefix(".rodata.str") })
        #expect(String(decoding: strings.initialValue!, as: UTF8.self).contains("long packet %lu\n"))
        #expect(strings.flags & MapSpec.flagReadOnlyProgram != 0)
    }

    @Test("a program is linked with the .text functions it calls, each once", arguments: TestPrograms.compilers)
    func subprogramsAreAppendedAndCallsFixed(compiler: TestPrograms.Compiler) throws {
        for cpu in compiler.cpus {
            try checkSubprograms(try TestPrograms.load("subprograms", with: compiler, cpu: cpu))
        }
    }

    private func checkSubprograms(_ object: BPFObjectFile) throws {
        #expect(Set(object.programs.map(\.name)) == ["match_web", "match_tcp"])
        let web = try object.program(named: "match_web")
        #expect(web.functions.map(\.name) == ["match_web", "port_of", "is_tcp"])
        let tcp = try object.program(named: "filter_tcp")
        #expect(tcp.functions.map(\.name) == ["match_tcp", "is_tcp"])
        for program in [web, tcp] {
            #expect(program.instructions.count == program.functions.reduce(0) { $0 + $1.instructionCount })
            let calls = program.instructions.enumerated().filter {
                $0.element.opcode == BPFOpcode.classJMP | BPFOpcode.call && $0.element.src == BPFOpcode.callLocal
            }
            #expect(calls.count == program.functions.count - 1)
            for (index, call) in calls {
                let target = index + Int(call.immediate) + 1
                #expect(program.functions.dropFirst().contains { $0.startIndex == target })
            }
        }
    }

    @Test("several sections give several programs, picked by section or function", arguments: TestPrograms.compilers)
    func severalSectionsGiveSeveralPrograms(compiler: TestPrograms.Compiler) throws {
        let object = try TestPrograms.load("multi_section", with: compiler)
        #expect(object.programs.count == 4)
        #expect(try object.program(named: "classifier/ipv6").name == "is_ipv6")
        #expect(try object.program(named: "is_small").sectionName == "classifier/arp")
        #expect(throws: BPFLoaderError.self) { try object.program() }
        #expect(throws: BPFLoaderError.self) { try object.program(named: "classifier/arp") }
        #expect(throws: BPFLoaderError.self) { try object.program(named: "nonexistent") }
    }

    @Test("a bounded loop keeps its backward jump", arguments: TestPrograms.compilers)
    func boundedLoopHasBackwardJump(compiler: TestPrograms.Compiler) throws {
        let program = try TestPrograms.load("bounded_loop", with: compiler).program()
        let backward = program.instructions.contains { instruction in
            (instruction.instructionClass == BPFOpcode.classJMP || instruction.instructionClass == BPFOpcode.classJMP32)
                && instruction.opcode & 0xf0 != BPFOpcode.call && instruction.opcode & 0xf0 != BPFOpcode.exit
                && instruction.offset < 0
        }
        #expect(backward)
    }

    @Test("objects without BTF still load programs, legacy maps and global data", arguments: TestPrograms.compilers)
    func objectsWithoutDebugInfoLoad(compiler: TestPrograms.Compiler) throws {
        let legacy = try TestPrograms.load("legacy_maps", with: compiler, debugInfo: false)
        #expect(legacy.btf == nil)
        #expect(legacy.maps.map(\.name) == ["blocked", "hits"])
        let globals = try TestPrograms.load("global_data", with: compiler, debugInfo: false)
        #expect(globals.maps.contains { $0.name == ".data" })
        #expect(throws: BPFLoaderError.self) { try TestPrograms.load("map_counter", with: compiler, debugInfo: false) }
    }

    @Test("without SEC() the global .text function is the program and its static callee is linked", arguments: TestPrograms.compilers)
    func textOnlyObject(compiler: TestPrograms.Compiler) throws {
        let program = try TestPrograms.load("text_only", with: compiler).program()
        #expect(program.name == "match_short")
        #expect(program.sectionName == ".text")
        #expect(program.functions.map(\.name) == ["match_short", "is_short"])
        let call = try #require(program.instructions.firstIndex { $0.opcode == BPFOpcode.classJMP | BPFOpcode.call })
        #expect(call + Int(program.instructions[call].immediate) + 1 == program.functions[1].startIndex)
    }

    @Test("a call to a function in the program's own section needs no relocation", arguments: TestPrograms.compilers)
    func sameSectionCall(compiler: TestPrograms.Compiler) throws {
        let object = try TestPrograms.load("same_section_call", with: compiler)
        let program = try object.program()
        #expect(program.name == "doubled_length_is_large")
        #expect(program.functions.map(\.name) == ["doubled_length_is_large", "twice"])
        let call = try #require(program.instructions.firstIndex { $0.opcode == BPFOpcode.classJMP | BPFOpcode.call })
        #expect(call + Int(program.instructions[call].immediate) + 1 == program.functions[1].startIndex)
    }

    @Test("every supported test program loads with every -mcpu, with and without BTF", arguments: TestPrograms.compilers)
    func everyProgramLoadsAtEveryCPULevel(compiler: TestPrograms.Compiler) throws {
        let programs = [
            "packet_parser", "map_counter", "legacy_maps", "global_data", "subprograms", "multi_section", "bounded_loop",
            "typed_values", "text_only", "same_section_call",
        ]
        for name in programs {
            for cpu in compiler.cpus {
                for debugInfo in [true, false] where debugInfo || !["map_counter", "typed_values"].contains(name) {
                    let object = try TestPrograms.load(name, with: compiler, cpu: cpu, debugInfo: debugInfo)
                    #expect(!object.programs.isEmpty, "\(name) -mcpu=\(cpu)")
                    #expect((object.btf != nil) == debugInfo)
                    for program in object.programs {
                        // Every LDDW the loader touched points at a map of this object.
                        for relocation in program.relocations {
                            switch relocation.kind {
                            case .mapReference(let index), .mapValue(let index, _): #expect(object.maps.indices.contains(index))
                            case .call(let target): #expect(program.instructions.indices.contains(target))
                            }
                        }
                    }
                }
            }
        }
    }
}
