import Action2PhoneServer
import Foundation
import GRDB
import Logging
import ServiceLifecycle
import Testing

@testable import Action2PhoneCore

@Suite("Checkpoint service")
struct CheckpointServiceTests {
    @Test func copiesWhatTheServerWritesIntoTheFileAndStopsOnShutdown() async throws {
        // Given a store and the checkpoint service running beside it
        let folder = testScratch.appendingPathComponent("a2p-ckpt-\(UUID().uuidString)")
        let path = folder.appendingPathComponent("a2p.sqlite").path
        let store = try SQLiteStore.open(path: path)
        let service = CheckpointService(
            checkpointer: try store.makeCheckpointer(),
            quietBeforeTruncating: .seconds(3600),
            logger: Logger(label: "test")
        )
        let group = ServiceGroup(configuration: .init(services: [service], logger: Logger(label: "test")))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            // When webhooks are stored
            for i in 0..<200 {
                let record = InboundRecord(messageSid: "SM\(i)", from: "+1415555\(String(format: "%04d", i))", to: "+15005550006", body: "HELP")
                _ = try await store.processInbound(record, replyMode: .twiml, now: Date()) { _, _ in Decision(replies: ["Privet"]) }
            }
            // Then, within a few seconds, a copy of the database file alone (no WAL) holds all of them
            let deadline = ContinuousClock.now.advanced(by: .seconds(5))
            var inFile = 0
            while ContinuousClock.now < deadline {
                inFile = try Self.inboundInFileAlone(path)
                if inFile == 200 { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(inFile == 200)
            // (and the WAL file is left as it is until nothing has been written for the quiet spell, here an hour)
            try await Task.sleep(for: .milliseconds(300))
            #expect(((try? FileManager.default.attributesOfItem(atPath: path + "-wal"))?[.size] as? Int ?? 0) > 0)
            // And the service stops promptly when the server shuts down
            let stopping = ContinuousClock.now
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            #expect(ContinuousClock.now - stopping < .seconds(1))
        }
    }

    @Test func onceNothingIsWrittenTheWALIsEmptiedAndADeletedPersonLeavesNoTraceInEitherFile() async throws {
        // Given a server's store with a registered person, and the checkpoint service running beside it
        let folder = testScratch.appendingPathComponent("a2p-ckpt-\(UUID().uuidString)")
        let path = folder.appendingPathComponent("a2p.sqlite").path
        let store = try SQLiteStore.open(path: path)
        let service = CheckpointService(checkpointer: try store.makeCheckpointer(), logger: Logger(label: "test"))
        let group = ServiceGroup(configuration: .init(services: [service], logger: Logger(label: "test")))
        let hash = PasscodeHash(hash: Array(repeating: 3, count: 32), salt: Array(repeating: 4, count: 16), iterations: 1000)
        let email = "zinaida.unforgettable@example.org"
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let record = InboundRecord(messageSid: "SM1", from: "+14155550123", to: "+15005550006", body: "x")
            _ = try await store.processInbound(record, replyMode: .twiml, now: Date()) { _, _ in
                Decision(
                    replies: ["ok"],
                    effects: [.register(Registration(firstName: "Zinaida", lastName: "X", email: email, passcode: hash, role: .user))]
                )
            }
            // When the person is deleted, and nothing more is written
            #expect(try await store.deleteUser(phone: "+14155550123"))
            // Then soon the WAL file is empty, and neither file holds the email (30 s: the whole suite running beside
            // this test has been seen to hold up a 2 ms sleep for 5)
            let deadline = ContinuousClock.now.advanced(by: .seconds(30))
            func walBytes() -> Int { ((try? FileManager.default.attributesOfItem(atPath: path + "-wal"))?[.size] as? Int) ?? -1 }
            while walBytes() != 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(walBytes() == 0)
            for file in [path, path + "-wal"] {
                let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
                #expect(bytes.range(of: Data(email.utf8)) == nil, "\(file)")
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    /// How many inbound rows a copy of the database file alone holds; -1 when the copy caught a checkpoint
    /// halfway (the file alone is consistent only once the checkpoint is done).
    static func inboundInFileAlone(_ path: String) throws -> Int {
        let copy = path + ".copy"
        try? FileManager.default.removeItem(atPath: copy)
        try FileManager.default.copyItem(atPath: path, toPath: copy)
        defer { try? FileManager.default.removeItem(atPath: copy) }
        do {
            return try DatabaseQueue(path: copy).read { db in
                try db.tableExists("inbound") ? Int.fetchOne(db, sql: "SELECT count(*) FROM inbound") ?? 0 : 0
            }
        } catch is DatabaseError {
            return -1  // SQLITE_CORRUPT, SQLITE_NOTADB…: a torn copy
        }
    }
}
