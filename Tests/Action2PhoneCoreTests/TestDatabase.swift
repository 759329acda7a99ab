import Action2PhoneCore
import Foundation
import GRDB

/// A fresh SQLite file per test (WAL needs a real file).
func makeTestDatabasePath() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("a2p-core-\(UUID().uuidString)/test.sqlite").path
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
