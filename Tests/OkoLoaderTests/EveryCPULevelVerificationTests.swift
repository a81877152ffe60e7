import Foundation
import OkoLoader
import OkoVerifier
import Testing

/// The whole safe corpus (Programs/ and the examples operators start from), compiled by each clang
/// at every -mcpu it knows, passes the verifier within the default budget: every program of every
/// object, not only the default -mcpu=v3 the behaviour tests use.
struct EveryCPULevelVerificationTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let directory: URL
        let compiler: TestPrograms.Compiler
        let cpu: String
        var testDescription: String { "\(name) \(compiler.label) -mcpu=\(cpu)" }
    }

    static let safePrograms = [
        "packet_parser", "map_counter", "legacy_maps", "global_data", "subprograms", "multi_section", "bounded_loop",
        "typed_values", "text_only", "same_section_call",
    ]

    static let cases: [Case] = TestPrograms.compilers.flatMap { compiler in
        compiler.cpus.flatMap { cpu in
            safePrograms.map { Case(name: $0, directory: TestPrograms.programsDirectory, compiler: compiler, cpu: cpu) }
                + ExampleProgramsTests.expectedMaps.keys.sorted().map {
                    Case(name: $0, directory: TestPrograms.examplesDirectory, compiler: compiler, cpu: cpu)
                }
        }
    }

    @Test(arguments: cases)
    func safeProgramIsAcceptedAtEveryCPULevel(_ test: Case) throws {
        let bytes = try TestPrograms.compile(test.name, with: test.compiler, cpu: test.cpu, directory: test.directory)
        let object = try BPFObjectFile(bytes: bytes)
        #expect(!object.programs.isEmpty)
        for program in object.programs {
            let limits = VerifierLimits()
            let loaded: FilterProgram
            do {
                loaded = try FilterProgram(object: object, program: program, limits: limits)
            } catch {
                Issue.record("\(test.testDescription) \(program.name): \(error)")
                continue
            }
            let stats = loaded.verifierStatistics
            #expect(stats.instructionsProcessed > 0 && stats.instructionsProcessed <= limits.maxInstructionsProcessed)
            #expect(stats.statesStored <= limits.maxStoredStates)
        }
    }
}
