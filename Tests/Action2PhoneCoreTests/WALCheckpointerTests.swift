import Foundation
import GRDB
import Testing

@testable import Action2PhoneCore

@Suite("WAL checkpoints beside the writer")
struct WALCheckpointerTests {
    /// How many rows of `t` a copy of the database file alone (without its WAL) holds; nil when the copy
    /// has no table `t` yet.
    static func rowsInFileAlone(_ path: String) throws -> Int? {
        let copy = path + ".copy-\(UUID().uuidString)"
        try FileManager.default.copyItem(atPath: path, toPath: copy)
        defer { try? FileManager.default.removeItem(atPath: copy) }
        return try DatabaseQueue(path: copy).read { db in
            try db.tableExists("t") ? Int.fetchOne(db, sql: "SELECT count(*) FROM t") : nil
        }
    }

    static func writeRows(_ store: SQLiteStore, transactions: Int, rowsEach: Int) throws {
        for _ in 0..<transactions {
            try store.writer.write { db in
                for _ in 0..<rowsEach {
                    try db.execute(sql: "INSERT INTO t (body) VALUES (?)", arguments: [String(repeating: "x", count: 1000)])
                }
            }
        }
    }

    @Test func thePassiveCheckpointCopiesCommittedPagesIntoTheFileAndTheWriterLeavesThemToIt() async throws {
        // Given a store whose writer has handed checkpoints over
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        let checkpointer = try store.makeCheckpointer()
        try await checkpointer.handOver()
        let threshold = try await store.writer.writeWithoutTransaction { try Int.fetchOne($0, sql: "PRAGMA wal_autocheckpoint") }
        #expect(threshold == WALCheckpointer.writerThreshold)

        // When 5,000 rows of 1 KB are committed: past SQLite's default automatic checkpoint at 1,000 pages
        try await store.writer.write { try $0.execute(sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)") }
        try Self.writeRows(store, transactions: 50, rowsEach: 100)

        // Then the writer has not checkpointed them: the file alone does not have them yet
        #expect(try Self.rowsInFileAlone(path) == nil)

        // When the checkpointer runs, every committed page is copied, and the file alone has every row
        let progress = try await checkpointer.checkpoint()
        #expect(progress.walPages > 1000 && progress.copiedPages == progress.walPages)
        #expect(try Self.rowsInFileAlone(path) == 5000)

        // And a pass with nothing new to copy reports the same position
        let again = try await checkpointer.checkpoint()
        #expect(again == progress)

        // And handing back restores SQLite's default on the writer
        try await checkpointer.handBack()
        let restored = try await store.writer.writeWithoutTransaction { try Int.fetchOne($0, sql: "PRAGMA wal_autocheckpoint") }
        #expect(restored == 1000)
    }

    @Test func truncatingEmptiesTheWALFileButNeverWaitsForAReaderOfAnOlderSnapshot() async throws {
        // Given 1,000 rows committed and copied
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        let checkpointer = try store.makeCheckpointer()
        try await checkpointer.handOver()
        try await store.writer.write { try $0.execute(sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)") }
        try Self.writeRows(store, transactions: 10, rowsEach: 100)
        func walBytes() throws -> Int { try FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int ?? -1 }
        #expect(try walBytes() > 1_000_000)

        // When a reader holds a snapshot from before the last commit (a backup, say)
        // (on a thread of its own: the test's tasks share two threads, which a blocked one would starve)
        let reader = try DatabaseQueue(path: path)
        let releaseReader = DispatchSemaphore(value: 0)
        let readerDone = Locked(false)
        await withCheckedContinuation { holds in
            Thread.detachNewThread {
                try? reader.read { db in
                    _ = try Int.fetchOne(db, sql: "SELECT count(*) FROM t")
                    holds.resume()
                    releaseReader.wait()
                }
                readerDone.withLock { $0 = true }
            }
        }
        try Self.writeRows(store, transactions: 1, rowsEach: 10)
        // Then truncating gives up at once (waiting, it would take the 5 s busy timeout), and the writer still writes
        let started = ContinuousClock.now
        #expect(try checkpointer.truncateNow() == false)
        #expect(ContinuousClock.now - started < .seconds(1))
        #expect(try await checkpointer.truncate() == false)
        try Self.writeRows(store, transactions: 1, rowsEach: 10)

        // And once the reader is done, the WAL file is emptied, and the database file alone has every row
        releaseReader.signal()
        while !readerDone.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
        #expect(try await checkpointer.truncate())
        #expect(try walBytes() == 0)
        #expect(try Self.rowsInFileAlone(path) == 1020)
        // And writing goes on as before
        try Self.writeRows(store, transactions: 1, rowsEach: 1)
        #expect(try await store.writer.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM t") } == 1021)
    }
}
