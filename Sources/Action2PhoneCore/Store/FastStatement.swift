// SPDX-License-Identifier: Apache-2.0
import Foundation
import GRDB
import GRDBSQLite

/// A value bound to a `FastStatement` parameter.
enum FastValue {
    case text(String)
    case int(Int64)
    case null

    static func text(_ value: String?) -> FastValue { value.map(FastValue.text) ?? .null }
}

/// One of GRDB's cached statements, stepped with sqlite3 calls directly: the webhook's hot path inside
/// the batch transaction. GRDB's `execute(arguments:)` and `Row` box every value and check the dispatch
/// queue on each statement, which cost more of the single writer's time than SQLite did.
///
/// It skips GRDB's bookkeeping around each statement, which is sound only on a connection like the server's
/// writer: no transaction observers (`ValueObservation`, `DatabaseRegionObservation`) are registered on it,
/// nothing reads `db.transactionDate`, and its accesses are not cancelled. Savepoints it runs are invisible to
/// GRDB's observation, and an interrupt comes back as `SQLITE_INTERRUPT` rather than `CancellationError`.
///
/// It writes only inside a transaction: like GRDB, it refuses to once SQLite has rolled the transaction back
/// (a full disk, an I/O error), so a step that swallowed an error cannot go on writing in autocommit. It is
/// not for statements that begin or end transactions, or change the schema; `savepoint` runs savepoints.
///
/// ```swift
/// let state = try FastStatement.first(db, "SELECT state FROM conversations WHERE phone = ?", [.text(phone)]) { $0.text(0) }
/// try FastStatement.execute(db, "UPDATE users SET lastSeenAt = ? WHERE phone = ?", [.text(now), .text(phone)])
/// ```
struct FastStatement {
    /// The columns of the current row.
    struct Row {
        fileprivate let handle: SQLiteStatement

        func isNull(_ column: CInt) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }
        func text(_ column: CInt) -> String? { isNull(column) ? nil : String(sqliteStatement: handle, index: column) }
        func int64(_ column: CInt) -> Int64 { sqlite3_column_int64(handle, column) }
        func bool(_ column: CInt) -> Bool { int64(column) != 0 }
        func bytes(_ column: CInt) -> [UInt8] {
            guard let blob = sqlite3_column_blob(handle, column) else { return [] }
            return Array(UnsafeRawBufferPointer(start: blob, count: Int(sqlite3_column_bytes(handle, column))))
        }
        /// Decoded as GRDB decodes dates (any format it stores or accepts).
        func date(_ column: CInt) -> Date? { Date.fromDatabaseValue(DatabaseValue(sqliteStatement: handle, index: column)) }
    }

    /// Runs `sql` and returns `read` of its first row, or `nil` when it has none.
    static func first<T>(_ db: Database, _ sql: String, _ arguments: [FastValue], _ read: (Row) throws -> T) throws -> T? {
        try run(db, sql, arguments) { handle in
            switch sqlite3_step(handle) {
            case SQLITE_ROW: return try read(Row(handle: handle))
            case SQLITE_DONE: return nil
            case let code: throw error(db, code, sql)
            }
        }
    }

    /// Runs `sql` to completion.
    static func execute(_ db: Database, _ sql: String, _ arguments: [FastValue]) throws {
        try run(db, sql, arguments) { handle in
            while true {
                switch sqlite3_step(handle) {
                case SQLITE_DONE: return
                case SQLITE_ROW: continue
                case let code: throw error(db, code, sql)
                }
            }
        }
    }

    /// Runs a savepoint statement (`SAVEPOINT`, `RELEASE`) in the open transaction; throws when there is
    /// none, rather than let a savepoint start a transaction of its own.
    static func savepoint(_ db: Database, _ sql: String) throws {
        guard db.isInsideTransaction else {
            throw DatabaseError(resultCode: .SQLITE_ABORT, message: "Transaction was aborted", sql: sql)
        }
        try execute(db, sql, [])
    }

    private static func run<T>(_ db: Database, _ sql: String, _ arguments: [FastValue], _ body: (SQLiteStatement) throws -> T) throws -> T {
        let handle = try db.cachedStatement(sql: sql).sqliteStatement
        guard sqlite3_stmt_readonly(handle) != 0 || db.sqliteConnection.map({ sqlite3_get_autocommit($0) == 0 }) == true else {
            throw DatabaseError(resultCode: .SQLITE_ABORT, message: "Transaction was aborted", sql: sql)
        }
        // Leave the statement as GRDB expects to find it: reset, with no bindings kept alive.
        defer {
            sqlite3_reset(handle)
            sqlite3_clear_bindings(handle)
        }
        for (offset, value) in arguments.enumerated() {
            let index = CInt(offset + 1)
            let code: CInt
            switch value {
            case .text(let text):
                // Up to the first NUL, as GRDB binds text: the same bytes whichever path stored or looks them up.
                code = text.withCString { sqlite3_bind_text(handle, index, $0, -1, transient) }
            case .int(let number):
                code = sqlite3_bind_int64(handle, index, number)
            case .null:
                code = sqlite3_bind_null(handle, index)
            }
            guard code == SQLITE_OK else { throw error(db, code, sql) }
        }
        return try body(handle)
    }

    private static func error(_ db: Database, _ code: CInt, _ sql: String) -> DatabaseError {
        let message = db.sqliteConnection.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) }
        return DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: sql)
    }

    /// SQLite copies the bound bytes (the Swift string's buffer does not outlive the call).
    private static let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)
}
