import Foundation
import Testing
import OkoLoader

/// Every example in examples/bpf loads with both clangs, with the maps its header comment promises.
struct ExampleProgramsTests {
    static let expectedMaps: [String: [(String, BPFMapType)]] = [
        "stateless-firewall": [("blocked", .hash)],
        "p0f": [("signatures", .hash), ("unknown", .array)],
        "rate-limiter": [("config", .array), ("buckets", .lruHash), ("drops", .array)],
        "stateful-firewall": [("inside", .array), ("connections", .lruHash)],
        "tcp-diagnosis": [("connections", .lruHash)],
        "heavy-hitters": [("sketch", .countMinSketch), ("threshold", .array), ("flagged", .array)],
        "bloom-blocklist": [("blocklist", .bloomFilter), ("refused", .array)],
        "dns-filter": [("blocked_names", .hash)],
    ]

    @Test(arguments: expectedMaps.keys.sorted())
    func exampleLoadsWithItsMaps(name: String) throws {
        for compiler in TestPrograms.compilers {
            let bytes = try TestPrograms.compile(name, with: compiler, directory: TestPrograms.examplesDirectory)
            let object = try BPFObjectFile(bytes: bytes)
            let program = try object.program()
            #expect(program.instructions.count > 4)
            let maps = object.maps.filter { !$0.name.hasPrefix(".") }
            let expected = Self.expectedMaps[name]!
            #expect(maps.map(\.name) == expected.map(\.0), "\(name) with \(compiler)")
            #expect(maps.map(\.type) == expected.map(\.1), "\(name) with \(compiler)")
            for map in maps { #expect(map.btfKeyTypeID != nil || map.type == .bloomFilter, "\(map.name) keeps its BTF key type") }
        }
    }
}
