// SPDX-License-Identifier: Apache-2.0
import Foundation
import GRDB

/// Copies the WAL's committed pages into the database file from a connection of its own, so the single
/// writer seldom has to.
///
/// SQLite's automatic checkpoint runs on the connection that commits, after its commit: every thousand
/// pages the writer stopped to copy them all and sync, and every webhook queued behind it waited
/// (about 27 times a second under load). Here a passive checkpoint, which never waits for the writer or
/// blocks it, does that copying beside it. The writer still checkpoints past `writerThreshold` pages, which
/// bounds the WAL if this falls behind; by then most pages are already copied, and its checkpoint is
/// where the WAL is rewound to its start.
///
/// Once nothing is being written, `truncate()` empties the WAL file: its old frames (a deleted person's details
/// among them) leave the disk, and it stops taking 32 MB.
///
/// ```swift
/// let checkpointer = try store.makeCheckpointer()
/// try await checkpointer.handOver()
/// let progress = try await checkpointer.checkpoint()  // copiedPages == walPages: the file has caught up
/// ```
public final class WALCheckpointer: Sendable {
    /// The WAL pages (4 KB each: 32 MB) after which the writer checkpoints itself.
    public static let writerThreshold = 8000

    private let connection: DatabaseQueue
    /// For `truncate()`: gives up at once where the others wait, so that it never waits for the writer. (Once it
    /// has begun, a write arriving meanwhile waits for its last copy and sync, as for any truncating checkpoint:
    /// it runs only after a quiet second, when there is little left to copy.)
    private let truncating: DatabaseQueue
    private let writer: any DatabaseWriter

    init(writer: any DatabaseWriter) throws {
        self.writer = writer
        self.connection = try DatabaseQueue(path: writer.path, configuration: SQLiteStore.makeConfiguration())
        var impatient = SQLiteStore.makeConfiguration()
        impatient.busyMode = .immediateError
        self.truncating = try DatabaseQueue(path: writer.path, configuration: impatient)
    }

    /// Raises the writer's automatic checkpoint to `writerThreshold`: checkpoints are left to this object.
    public func handOver() async throws {
        try await setWriterThreshold(Self.writerThreshold)
    }

    /// Gives checkpoints back to the writer at SQLite's default (every 1,000 pages), for when this stops.
    public func handBack() async throws {
        try await setWriterThreshold(1000)
    }

    private func setWriterThreshold(_ pages: Int) async throws {
        try await writer.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA wal_autocheckpoint = \(pages)")
        }
    }

    /// One passive checkpoint: the WAL's size in pages, and how many of them are now in the database file.
    /// Fewer are copied when the writer committed meanwhile; none when it is checkpointing itself.
    @discardableResult
    public func checkpoint() async throws -> (walPages: Int, copiedPages: Int) {
        try await connection.writeWithoutTransaction { db in
            do {
                let (log, copied) = try db.checkpoint(.passive)
                return (log, copied)
            } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY {
                return (-1, 0)  // another checkpoint is running (the writer's own)
            }
        }
    }

    /// Copies whatever is left and empties the WAL file, unless the writer is writing or a reader still reads an
    /// older snapshot (a backup, a CLI command): then nothing waits, and it says false. For when nothing is written.
    @discardableResult
    public func truncate() async throws -> Bool {
        try await truncating.writeWithoutTransaction(Self.truncate)
    }

    /// `truncate()` on the calling thread (for tests that time it).
    func truncateNow() throws -> Bool {
        try truncating.writeWithoutTransaction(Self.truncate)
    }

    private static func truncate(_ db: Database) throws -> Bool {
        do {
            let (log, copied) = try db.checkpoint(.truncate)
            return log == 0 && copied == 0
        } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY {
            return false
        }
    }
}

extension SQLiteStore {
    /// A checkpointer for this store's database, on a connection of its own.
    public func makeCheckpointer() throws -> WALCheckpointer {
        try WALCheckpointer(writer: writer)
    }
}
