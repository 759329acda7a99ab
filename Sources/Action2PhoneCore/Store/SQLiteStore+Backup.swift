// SPDX-License-Identifier: Apache-2.0
import Foundation
import GRDB

/// What `SQLiteStore.backup(databaseAt:to:)` copied.
public struct BackupSummary: Sendable, Equatable {
    /// Registered people in the copy.
    public var users: Int
    /// Inbound texts logged in the copy.
    public var inbound: Int
    /// Outbox rows in the copy.
    public var outbox: Int
    /// The copy's size.
    public var bytes: Int
    /// Unfinished copies that interrupted backups to the same file had left, now removed.
    public var leftoversRemoved: Int
}

/// A backup that could not be made; nothing was left at the destination.
public struct BackupError: Error, CustomStringConvertible {
    public var description: String
}

extension SQLiteStore {
    /// A copy of the whole database at `source`, as it was at one moment, written to `destination` while `serve`
    /// may be writing: SQLite's online backup, read from one snapshot, so no webhook waits for it. The source is
    /// only read (not migrated). The copy is written beside `destination` under a temporary name, readable by its
    /// owner alone from the start (it holds passcode hashes and people's details), checked (`PRAGMA quick_check`),
    /// and only then renamed: `destination` is either absent or a whole database. Anything already at
    /// `destination`, or at the names SQLite would read beside it (`-wal`, `-shm`, `-journal`), is refused, never
    /// overwritten or read into the copy.
    ///
    /// ```swift
    /// let summary = try SQLiteStore.backup(databaseAt: "db/action2phone.sqlite", to: "backups/2026-12-01.sqlite")
    /// ```
    public static func backup(databaseAt source: String, to destination: String) throws -> BackupSummary {
        let files = FileManager.default
        func exists(_ path: String) -> Bool { (try? files.attributesOfItem(atPath: path)) != nil }  // a dangling link too
        guard !destination.isEmpty else { throw BackupError(description: "give the path of the new file") }
        guard isSQLiteFile(source) else {
            throw BackupError(description: exists(source) ? "\(source) is not an SQLite database" : "there is no database at \(source)")
        }
        let destinationURL = URL(fileURLWithPath: destination)
        let name = destinationURL.lastPathComponent
        let reserved = ["-wal", "-shm", "-journal", ".dev-token", "-serve.lock"]
        if let suffix = reserved.first(where: { name.hasSuffix($0) }) {
            throw BackupError(
                description: "\(destination): a name ending in \(suffix) is one SQLite or action2phone keeps beside a database; choose another"
            )
        }
        if let taken = ["", "-wal", "-shm", "-journal"].map({ destination + $0 }).first(where: exists) {
            throw BackupError(description: "\(taken) exists: choose a new file (a backup never overwrites one, nor lets SQLite read one into it)")
        }
        let folder = destinationURL.deletingLastPathComponent().path
        var isFolder: ObjCBool = false
        guard files.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
            throw BackupError(description: "the folder \(folder) does not exist")
        }
        let leftovers = removeLeftovers(of: name, in: folder)

        let partial = destination + ".partial-" + UUID().uuidString.prefix(8)
        defer { for suffix in ["", "-wal", "-shm", "-journal"] { try? files.removeItem(atPath: partial + suffix) } }
        do {
            // Created empty and private first: SQLite gives its journal files the same permissions.
            do {
                try PrivateFile.create(atPath: partial, contents: [])
            } catch {
                throw BackupError(description: "cannot create a file in \(folder): \(error)")
            }
            let original = try openForReading(source)
            let copy = try DatabaseQueue(path: partial)
            try original.backup(to: copy)
            try original.close()
            let (check, summary) = try copy.read { db in
                (
                    try String.fetchAll(db, sql: "PRAGMA quick_check"),
                    BackupSummary(
                        users: try Int.fetchOne(db, sql: "SELECT count(*) FROM users") ?? 0,
                        inbound: try Int.fetchOne(db, sql: "SELECT count(*) FROM inbound") ?? 0,
                        outbox: try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox") ?? 0,
                        bytes: try Int.fetchOne(db, sql: "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()") ?? 0,
                        leftoversRemoved: leftovers
                    )
                )
            }
            // Closing ends the copy's WAL: everything is in the one file that is renamed.
            try copy.close()
            guard check == ["ok"] else {
                throw BackupError(
                    description: "the copy did not pass SQLite's check (\(check.prefix(3).joined(separator: "; "))); nothing was written"
                )
            }
            try files.moveItem(atPath: partial, toPath: destination)
            return summary
        } catch let error as BackupError {
            throw error
        } catch let error as DatabaseError {
            throw BackupError(description: "SQLite could not make the copy in \(folder): \(error.message ?? "\(error.resultCode)")")
        } catch {
            throw BackupError(description: "cannot write \(destination): \(error.localizedDescription)")
        }
    }

    /// `source`, read-only, once it is known to be an action2phone database; errors name it.
    private static func openForReading(_ source: String) throws -> DatabaseQueue {
        do {
            var configuration = Configuration()
            configuration.readonly = true
            configuration.busyMode = .timeout(5)
            let original = try DatabaseQueue(path: source, configuration: configuration)
            let isOurs = try original.read { db in try db.tableExists("grdb_migrations") && db.tableExists("users") }
            guard isOurs else { throw BackupError(description: "\(source) is not an action2phone database") }
            return original
        } catch let error as DatabaseError {
            throw BackupError(description: "SQLite could not read \(source): \(error.message ?? "\(error.resultCode)")")
        }
    }

    /// Removes what interrupted backups to `name` left in `folder` (a signal skips the clean-up in `backup`), and
    /// returns how many unfinished copies that was. Only copies untouched for 10 minutes: one being written now,
    /// by another backup to the same file, is left alone.
    private static func removeLeftovers(of name: String, in folder: String) -> Int {
        let files = FileManager.default
        let stale = Date().addingTimeInterval(-600)
        var copies = Set<String>()
        for leftover in ((try? files.contentsOfDirectory(atPath: folder)) ?? []) where leftover.hasPrefix(name + ".partial-") {
            let path = (folder as NSString).appendingPathComponent(leftover)
            guard let modified = (try? files.attributesOfItem(atPath: path))?[.modificationDate] as? Date, modified < stale else { continue }
            try? files.removeItem(atPath: path)
            // A copy and its -journal, -wal and -shm are one unfinished copy.
            copies.insert(String(leftover.prefix(name.count + ".partial-".count + 8)))
        }
        return copies.count
    }

    /// Whether `path` is a file that starts as an SQLite database does (a 0-byte or other file is not one).
    private static func isSQLiteFile(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: 16)) == Data("SQLite format 3\u{0}".utf8)
    }
}
