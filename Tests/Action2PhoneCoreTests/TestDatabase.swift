import Action2PhoneCore
import Foundation
import GRDB

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
