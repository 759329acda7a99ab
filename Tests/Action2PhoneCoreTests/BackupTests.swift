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
        let summary = try store.backup(to: destination)
        try await writing.value
        // Then the copy holds every text stored before it began, none half-written, and no more than were stored
        #expect((200...1_200).contains(summary.inbound), "\(summary)")
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

    @Test func anExistingFileOrAMissingFolderIsRefusedAndNothingIsWritten() throws {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        let existing = folder.appendingPathComponent("keep.sqlite").path
        try Data("precious".utf8).write(to: URL(fileURLWithPath: existing))
        #expect(throws: BackupError.self) { try store.backup(to: existing) }
        #expect(try String(contentsOfFile: existing, encoding: .utf8) == "precious")
        #expect(throws: BackupError.self) { try store.backup(to: folder.appendingPathComponent("no/such/folder.sqlite").path) }
        #expect(throws: BackupError.self) { try store.backup(to: path) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.contains(".partial-") }.isEmpty)
    }
}
