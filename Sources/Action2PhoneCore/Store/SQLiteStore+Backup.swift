// SPDX-License-Identifier: Apache-2.0
import Foundation
import GRDB

/// What `SQLiteStore.backup(to:)` copied.
public struct BackupSummary: Sendable, Equatable {
    public var users: Int
    public var inbound: Int
    public var outbox: Int
    public var bytes: Int
}

/// A backup that could not be made; nothing was left at the destination.
public struct BackupError: Error, CustomStringConvertible {
    public var description: String
}

extension SQLiteStore {
    /// A copy of the whole database at `destination` as it was at one moment, taken while `serve` may be writing:
    /// SQLite's online backup, read from one snapshot, so no webhook waits for it. The copy is written beside
    /// `destination` under a temporary name, checked (`PRAGMA quick_check`), and only then renamed: `destination`
    /// is either absent or a whole database. A destination that exists is refused, never overwritten.
    ///
    /// ```swift
    /// let summary = try store.backup(to: "backups/2026-12-01.sqlite")
    /// ```
    public func backup(to destination: String) throws -> BackupSummary {
        let files = FileManager.default
        guard !files.fileExists(atPath: destination) else {
            throw BackupError(description: "\(destination) exists: choose a new file (a backup never overwrites one)")
        }
        let folder = URL(fileURLWithPath: destination).deletingLastPathComponent().path
        var isFolder: ObjCBool = false
        guard files.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
            throw BackupError(description: "the folder \(folder) does not exist")
        }
        let partial = destination + ".partial-\(UUID().uuidString)"
        defer { for suffix in ["", "-wal", "-shm", "-journal"] { try? files.removeItem(atPath: partial + suffix) } }
        let copy = try DatabaseQueue(path: partial)
        try writer.backup(to: copy)
        let (check, summary) = try copy.read { db in
            (
                try String.fetchAll(db, sql: "PRAGMA quick_check"),
                BackupSummary(
                    users: try Int.fetchOne(db, sql: "SELECT count(*) FROM users") ?? 0,
                    inbound: try Int.fetchOne(db, sql: "SELECT count(*) FROM inbound") ?? 0,
                    outbox: try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox") ?? 0,
                    bytes: try Int.fetchOne(db, sql: "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()") ?? 0
                )
            )
        }
        // Closing ends the copy's WAL: everything is in the one file that is renamed.
        try copy.close()
        guard check == ["ok"] else {
            throw BackupError(description: "the copy did not pass SQLite's check (\(check.prefix(3).joined(separator: "; "))); nothing was written")
        }
        do {
            // Passcode hashes and people's details: readable by the operator alone, wherever the copy goes.
            try files.setAttributes([.posixPermissions: 0o600], ofItemAtPath: partial)
            try files.moveItem(atPath: partial, toPath: destination)
        } catch {
            throw BackupError(description: "cannot move the finished copy to \(destination): \(error.localizedDescription)")
        }
        return summary
    }
}
