import Foundation
import GRDB

@testable import Action2PhoneCore

/// Every test's files go under one folder per test process, removed when the process exits: the suite writes
/// hundreds of SQLite files, and leaving them would fill a CI machine's temporary folder run after run.
let testScratch: URL = {
    atexit { try? FileManager.default.removeItem(at: scratchRoot) }
    return scratchRoot
}()

private let scratchRoot = FileManager.default.temporaryDirectory.appendingPathComponent("a2p-tests-\(getpid())-\(UUID().uuidString)")

/// A fresh SQLite file per test (WAL needs a real file).
func makeTestDatabasePath() -> String {
    testScratch.appendingPathComponent("a2p-core-\(UUID().uuidString)/test.sqlite").path
}

/// Synchronous reads of a test database (GRDB picks its async overloads inside async tests otherwise).
func fetchInt(_ path: String, _ sql: String) throws -> Int? {
    try DatabaseQueue(path: path).read { try Int.fetchOne($0, sql: sql) }
}

func fetchRow(_ path: String, _ sql: String) throws -> Row? {
    try DatabaseQueue(path: path).read { try Row.fetchOne($0, sql: sql) }
}

func executeSQL(_ path: String, _ sql: String) throws {
    try DatabaseQueue(path: path).write { try $0.execute(sql: sql) }
}

func fetchRows(_ path: String, _ sql: String) throws -> [Row] {
    try DatabaseQueue(path: path).read { try Row.fetchAll($0, sql: sql) }
}

/// A test database migrated only up to `migration`, as an older version left it, with people in it: (phone, first
/// name, email, role).
func databaseMigrated(upTo migration: String, with people: [(String, String, String, String)]) async throws -> String {
    let path = makeTestDatabasePath()
    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    let old = try DatabaseQueue(path: path)
    try Schema.migrator.migrate(old, upTo: migration)
    try await old.write { db in
        for (phone, first, email, role) in people {
            try db.execute(
                sql: """
                    INSERT INTO users (phone, firstName, lastName, email, passcodeHash, passcodeSalt, passcodeIterations, role, createdAt)
                    VALUES (?, ?, 'Lee', ?, x'00', x'00', 1000, ?, '2026-11-25 09:00:00.000')
                    """,
                arguments: [phone, first, email, role]
            )
        }
    }
    return path
}
