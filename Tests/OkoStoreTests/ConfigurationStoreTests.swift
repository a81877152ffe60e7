import Foundation
import Testing
@testable import OkoStore

struct ConfigurationStoreTests {
    private func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("oko-store-\(UUID().uuidString)/oko.db").path
    }

    @Test func changesSurviveReopeningTheStore() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path) }
        do {
            let store = try ConfigurationStore(path: path)
            try store.apply([
                .put(kind: "bridge", scope: "", key: "br0", payload: Array("{}".utf8)),
                .put(kind: "flow", scope: "br0", key: "1", payload: [1, 2, 3]),
                .put(kind: "flow", scope: "br0", key: "2", payload: [4]),
            ])
            try store.apply([.delete(kind: "flow", scope: "br0", key: "1")])
        }
        let reopened = try ConfigurationStore(path: path)
        #expect(try reopened.revision == 2)
        #expect(try reopened.records(kind: "flow", scope: "br0") == [
            StoredRecord(kind: "flow", scope: "br0", key: "2", payload: [4], revision: 1)
        ])
        #expect(try reopened.record(kind: "bridge", scope: "", key: "br0")?.payload == Array("{}".utf8))
    }

    @Test(arguments: [(ConfigurationStore.Durability.full, 2), (.normal, 1)])
    func durabilitySetsSQLiteSynchronousAndKeepsChanges(durability: ConfigurationStore.Durability, pragma: Int) throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path) }
        do {
            let store = try ConfigurationStore(path: path, durability: durability)
            let setting = try store.synchronousSetting
            #expect(setting == pragma, "PRAGMA synchronous = \(setting)")
            try store.apply([.put(kind: "flow", scope: "br0", key: "1", payload: [7])])
        }
        #expect(try ConfigurationStore(path: path).record(kind: "flow", scope: "br0", key: "1")?.payload == [7])
    }

    @Test func aBatchIsAllOrNothing() throws {
        let path = temporaryPath()
        let store = try ConfigurationStore(path: path)
        try store.apply([.put(kind: "flow", scope: "br0", key: "a", payload: [1])])
        try store.apply([
            .put(kind: "flow", scope: "br0", key: "b", payload: [2]),
            .deleteScope(kind: "flow", scope: "br0"),
            .put(kind: "flow", scope: "br0", key: "c", payload: [3]),
        ])
        #expect(try store.records(kind: "flow").map(\.key) == ["c"])
        try store.apply([.deleteScope(kind: nil, scope: "br0")])
        #expect(try store.records(kind: "flow").isEmpty)
    }

    @Test func aDamagedFileIsRefusedWithAClearError() throws {
        let path = temporaryPath()
        try FileManager.default.createDirectory(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path, withIntermediateDirectories: true)
        try Data(repeating: 0x42, count: 8192).write(to: URL(fileURLWithPath: path))
        #expect {
            _ = try ConfigurationStore(path: path)
        } throws: { error in
            "\(error)".contains("cannot open store '\(path)'") || "\(error)".contains("is damaged")
        }
    }
}
