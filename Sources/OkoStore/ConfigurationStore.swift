// OkoStore: the appliance's durable configuration (bridges, ports, rules, programs, controllers, map
// snapshots), so that okod comes back after a crash or power loss exactly as it was.
//
// Design note
// - One SQLite database in WAL mode with `synchronous = FULL` (the default `Durability`): a transaction that
//   returned has been fsynced, so a change is acknowledged (HTTP 2xx, OpenFlow barrier reply) only after `apply` returns.
//   SQLite's journal guarantees that a kill -9 or power loss at any moment leaves either the old or the
//   new state, never a store that fails to open.
// - The store knows nothing of switches: it keeps versioned records `(kind, scope, key) -> payload`,
//   where the layers above choose kinds ("bridge", "flow", ...), scopes (usually the bridge name) and
//   encode payloads (JSON, ELF bytes). A batch of mutations is one transaction, so a bulk flow upload
//   or a program replacement together with its rules is all-or-nothing.
// - Every applied batch increments a store-wide revision, recorded on the records it wrote.
// - Threads: `ConfigurationStore` serialises access through GRDB's `DatabaseQueue`; any thread may call it.
import Foundation
import GRDB

public struct StoreError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A stored record.
public struct StoredRecord: Sendable, Equatable {
    public var kind: String
    public var scope: String
    public var key: String
    public var payload: [UInt8]
    /// The store revision of the batch that last wrote this record.
    public var revision: Int64

    public init(kind: String, scope: String, key: String, payload: [UInt8], revision: Int64 = 0) {
        self.kind = kind
        self.scope = scope
        self.key = key
        self.payload = payload
        self.revision = revision
    }
}

/// One change in a batch.
public enum StoreMutation: Sendable, Equatable {
    /// Inserts or replaces the record at (kind, scope, key).
    case put(kind: String, scope: String, key: String, payload: [UInt8])
    /// Deletes the record at (kind, scope, key) if present.
    case delete(kind: String, scope: String, key: String)
    /// Deletes every record of `kind` in `scope` (all kinds when `kind` is nil).
    case deleteScope(kind: String?, scope: String)
}

public final class ConfigurationStore: Sendable {
    private let queue: DatabaseQueue
    public let path: String

    /// How a committed transaction reaches the disk.
    public enum Durability: String, Sendable, CaseIterable {
        /// `synchronous = FULL`: every commit is fsynced before it returns; survives power loss.
        case full
        /// `synchronous = NORMAL`: commits reach the OS (they survive kill -9 of okod) and are fsynced at
        /// checkpoints; a power loss may lose the last acknowledged changes, never the store's integrity.
        case normal
    }

    /// Opens (creating if needed) the store at `path`; checks its integrity.
    public init(path: String, durability: Durability = .full) throws {
        self.path = path
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.journalMode = .wal
        do {
            queue = try DatabaseQueue(path: path, configuration: configuration)
            // After opening: GRDB sets `synchronous = NORMAL` itself when it enables WAL, after
            // prepareDatabase, so a setting made there does not last. (DatabaseQueue: one connection.)
            try queue.writeWithoutTransaction { db in
                try db.execute(sql: durability == .full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL")
            }
            try queue.write { db in
                let check = try String.fetchOne(db, sql: "PRAGMA quick_check") ?? "no answer"
                guard check == "ok" else { throw StoreError("store '\(path)' is damaged: \(check)") }
                try db.execute(sql: """
                    CREATE TABLE IF NOT EXISTS record (
                        kind TEXT NOT NULL, scope TEXT NOT NULL, key TEXT NOT NULL,
                        payload BLOB NOT NULL, revision INTEGER NOT NULL,
                        PRIMARY KEY (kind, scope, key)) WITHOUT ROWID;
                    CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
                    INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0), ('schema', 1);
                    """)
                let schema = try Int.fetchOne(db, sql: "SELECT value FROM meta WHERE name = 'schema'") ?? 0
                guard schema == 1 else { throw StoreError("store '\(path)' has schema \(schema); this okod reads schema 1") }
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError("cannot open store '\(path)': \(error)")
        }
    }

    /// Applies `mutations` atomically and durably; returns the new store revision.
    @discardableResult
    public func apply(_ mutations: [StoreMutation]) throws -> Int64 {
        do {
            return try queue.write { db in
                try db.execute(sql: "UPDATE meta SET value = value + 1 WHERE name = 'revision'")
                let revision = try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE name = 'revision'") ?? 0
                for mutation in mutations {
                    switch mutation {
                    case .put(let kind, let scope, let key, let payload):
                        try db.execute(
                            sql: "INSERT OR REPLACE INTO record (kind, scope, key, payload, revision) VALUES (?, ?, ?, ?, ?)",
                            arguments: [kind, scope, key, Data(payload), revision])
                    case .delete(let kind, let scope, let key):
                        try db.execute(sql: "DELETE FROM record WHERE kind = ? AND scope = ? AND key = ?", arguments: [kind, scope, key])
                    case .deleteScope(let kind?, let scope):
                        try db.execute(sql: "DELETE FROM record WHERE kind = ? AND scope = ?", arguments: [kind, scope])
                    case .deleteScope(nil, let scope):
                        try db.execute(sql: "DELETE FROM record WHERE scope = ?", arguments: [scope])
                    }
                }
                return revision
            }
        } catch {
            throw StoreError("store '\(path)': change not saved: \(error)")
        }
    }

    /// Records of `kind` (in `scope` when given), ordered by scope then key.
    /// SQLite's `synchronous` setting on the store's connection (2 = FULL, 1 = NORMAL).
    var synchronousSetting: Int {
        get throws { try queue.read { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 } }
    }

    public func records(kind: String, scope: String? = nil) throws -> [StoredRecord] {
        try queue.read { db in
            let rows: [Row]
            if let scope {
                rows = try Row.fetchAll(db, sql: "SELECT * FROM record WHERE kind = ? AND scope = ? ORDER BY scope, key", arguments: [kind, scope])
            } else {
                rows = try Row.fetchAll(db, sql: "SELECT * FROM record WHERE kind = ? ORDER BY scope, key", arguments: [kind])
            }
            return rows.map(Self.record)
        }
    }

    public func record(kind: String, scope: String, key: String) throws -> StoredRecord? {
        try queue.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM record WHERE kind = ? AND scope = ? AND key = ?", arguments: [kind, scope, key])
                .map(Self.record)
        }
    }

    public var revision: Int64 {
        get throws { try queue.read { db in try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE name = 'revision'") ?? 0 } }
    }

    private static func record(_ row: Row) -> StoredRecord {
        let data: Data = row["payload"]
        return StoredRecord(kind: row["kind"], scope: row["scope"], key: row["key"], payload: [UInt8](data), revision: row["revision"])
    }
}
