import Testing
@testable import OkoDPDK

/// EAL argument completion (pure logic; the EAL itself runs in okod child processes, see OkodTests).
struct EALArgumentsTests {
    @Test func addsNoHugeAndPrivateSharedConfigWhenNoHugepagesAreFree() {
        let resolved = EAL.Arguments.resolve(program: "okod", configured: ["-l", "0-1"], freeHugepages: 0)
        #expect(resolved.arguments.starts(with: ["okod", "-l", "0-1", "--no-huge", "-m", "512", "--no-shconf", "--file-prefix"]))
        #expect(!resolved.arguments.contains("--in-memory"), "--in-memory is refused together with --no-huge")
        #expect(resolved.warnings.count == 1 && resolved.warnings[0].contains("--no-huge"))
    }

    @Test func usesInMemoryModeWithHugepages() {
        let resolved = EAL.Arguments.resolve(program: "okod", configured: ["-l", "0-1"], freeHugepages: 512)
        #expect(resolved.arguments == ["okod", "-l", "0-1", "--in-memory"])
        #expect(resolved.warnings.isEmpty)
    }

    @Test func keepsAnExplicitFilePrefixAndMemorySize() {
        let resolved = EAL.Arguments.resolve(
            program: "okod", configured: ["--file-prefix", "mine", "-m", "128"], freeHugepages: 0)
        #expect(resolved.arguments == ["okod", "--file-prefix", "mine", "-m", "128", "--no-huge"])
    }
}
