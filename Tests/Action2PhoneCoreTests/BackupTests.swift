import Foundation
import GRDB
import Testing
import TwilioKit

@testable import Action2PhoneCore

@Suite("Backup: a whole copy while the server writes")
struct BackupTests {
    func inbound(_ store: SQLiteStore, _ n: Int) async throws {
        _ = try await store.processInbound(
            InboundRecord(
                messageSid: WebhookFields.newMessageSid(),
                from: "+1415555\(String(format: "%04d", n % 10_000))",
                to: "+15005550006",
                body: "HELP",
                fields: []
            ),
            replyMode: .twiml,
            now: t0
        ) { _, _ in Decision(replies: ["ok"]) }
    }

    @Test func aBackupTakenDuringWritesIsAWholeCheckedDatabaseOfOneMoment() async throws {
        // Given a store with 200 texts, and a writer adding more meanwhile
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        for n in 0..<200 { try await inbound(store, n) }
        let destination = URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("copy.sqlite").path
        let writing = Task {
            for n in 200..<1_200 { try await inbound(store, n) }
        }
        // When a backup is taken
        let summary = try SQLiteStore.backup(databaseAt: path, to: destination)
        try await writing.value
        // Then the copy holds every text stored before it began, none half-written, and no more than were stored
        #expect((200...1_200).contains(summary.inbound), "\(summary)")
        #expect(try fetchInt(path, "SELECT count(*) FROM inbound") == 1_200)
        let copy = try DatabaseQueue(path: destination)
        #expect(try await copy.read { try String.fetchAll($0, sql: "PRAGMA integrity_check") } == ["ok"])
        #expect(try await copy.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM inbound") } == summary.inbound)
        // And it opens as a store, migrated as the original
        try copy.close()
        #expect(try SQLiteStore.open(path: destination).appliedMigrations() == store.appliedMigrations())
        // And only the operator can read it, and nothing else was left beside it
        let attributes = try FileManager.default.attributesOfItem(atPath: destination)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let folder = try FileManager.default.contentsOfDirectory(atPath: URL(fileURLWithPath: destination).deletingLastPathComponent().path)
        #expect(!folder.contains { $0.contains(".partial-") }, "\(folder)")
    }

    @Test func nothingAtTheDestinationIsOverwrittenOrReadIntoTheCopy() throws {
        let path = makeTestDatabasePath()
        _ = try SQLiteStore.open(path: path)
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        func at(_ name: String) -> String { folder.appendingPathComponent(name).path }
        // A file there, or a WAL SQLite would replay into the copy on its first open (another database's)
        try Data("precious".utf8).write(to: URL(fileURLWithPath: at("keep.sqlite")))
        try Data("another database's log".utf8).write(to: URL(fileURLWithPath: at("stale.sqlite-wal")))
        try FileManager.default.createSymbolicLink(atPath: at("dangling.sqlite"), withDestinationPath: at("nowhere"))
        for taken in ["keep.sqlite", "stale.sqlite", "dangling.sqlite", "test.sqlite"] {
            #expect(throws: BackupError.self, "\(taken)") { try SQLiteStore.backup(databaseAt: path, to: at(taken)) }
        }
        #expect(try String(contentsOfFile: at("keep.sqlite"), encoding: .utf8) == "precious")
        #expect(try String(contentsOfFile: at("stale.sqlite-wal"), encoding: .utf8) == "another database's log")
        // Nor a name SQLite or action2phone keeps beside a database: a copy named test.sqlite-journal would be
        // rolled back into the live database
        for reserved in ["test.sqlite-journal", "test.sqlite-wal", "other.sqlite-shm", "test.sqlite.dev-token", "test.sqlite-serve.lock"] {
            #expect(throws: BackupError.self, "\(reserved)") { try SQLiteStore.backup(databaseAt: path, to: at(reserved)) }
        }
        #expect(throws: BackupError.self) { try SQLiteStore.backup(databaseAt: path, to: at("no/such/folder.sqlite")) }
        #expect(throws: BackupError.self) { try SQLiteStore.backup(databaseAt: path, to: "") }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.contains(".partial-") }.isEmpty)
    }

    @Test func theSourceIsOnlyReadAndMustBeADatabaseOfOurs() throws {
        // Given a database from before v5: the backup is of it as it is, not upgraded first
        let path = makeTestDatabasePath()
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let old = try DatabaseQueue(path: path)
        try Schema.migrator.migrate(old, upTo: "v4 broadcasts fanned out after the webhook")
        try old.close()
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        let copy = folder.appendingPathComponent("copy.sqlite").path
        _ = try SQLiteStore.backup(databaseAt: path, to: copy)
        for file in [path, copy] {
            let applied = try DatabaseQueue(path: file).read { try Schema.migrator.appliedIdentifiers($0) }
            #expect(!applied.contains("v5 admins index") && applied.contains("v4 broadcasts fanned out after the webhook"), "\(file)")
        }
        // And an empty file, a missing one, or another program's database is refused, and left as it was
        let empty = folder.appendingPathComponent("empty.sqlite").path
        FileManager.default.createFile(atPath: empty, contents: nil)
        let foreign = folder.appendingPathComponent("foreign.sqlite").path
        try DatabaseQueue(path: foreign).write { try $0.execute(sql: "CREATE TABLE t (x)") }
        for source in [empty, foreign, folder.appendingPathComponent("missing.sqlite").path] {
            #expect(throws: BackupError.self, "\(source)") { try SQLiteStore.backup(databaseAt: source, to: source + ".copy") }
            #expect(!FileManager.default.fileExists(atPath: source + ".copy"))
        }
        #expect(try FileManager.default.attributesOfItem(atPath: empty)[.size] as? NSNumber == 0)
    }

    @Test func whatAnInterruptedBackupLeftIsRemovedByTheNext() throws {
        let path = makeTestDatabasePath()
        _ = try SQLiteStore.open(path: path)
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        let destination = folder.appendingPathComponent("nightly.sqlite").path
        // Given an interrupted backup's copy and its journal, an hour old, and another backup's being written now
        let hourAgo = Date().addingTimeInterval(-3600)
        for file in [".partial-0badf00d", ".partial-0badf00d-journal"] {
            FileManager.default.createFile(atPath: destination + file, contents: Data("half".utf8), attributes: [.modificationDate: hourAgo])
        }
        FileManager.default.createFile(atPath: destination + ".partial-1234abcd", contents: Data("in progress".utf8))
        // When a backup to the same file runs
        let summary = try SQLiteStore.backup(databaseAt: path, to: destination)
        // Then the old copy is gone, counted once, and the one being written is left alone
        #expect(summary.leftoversRemoved == 1)
        let left = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.contains(".partial-") }
        #expect(left == ["nightly.sqlite.partial-1234abcd"])
    }
}
