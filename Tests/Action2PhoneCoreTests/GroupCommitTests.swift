import Foundation
import GRDB
import Testing
import TwilioKit

@testable import Action2PhoneCore

@Suite("Group commit of inbound steps")
struct GroupCommitTests {
    /// What one concurrent step returned: its phone, and whether its caller was told it was stored.
    typealias Answer = (phone: String, stored: Bool)

    /// Runs `count` steps at once, one phone each, and returns what each caller was answered.
    private func runConcurrently(
        _ store: SQLiteStore,
        count: Int,
        body: @escaping @Sendable (Int) -> String = { _ in "HELP" },
        decide: @escaping @Sendable (Int) -> Decision
    ) async -> [Answer] {
        await withTaskGroup(of: Answer.self) { group in
            for i in 0..<count {
                group.addTask {
                    let phone = "+1415555\(String(format: "%04d", i))"
                    let record = InboundRecord(messageSid: "SM\(i)", from: phone, to: "+15005550006", body: body(i))
                    do {
                        _ = try await store.processInbound(record, replyMode: .twiml, now: Date()) { state, _ in
                            state.lastActivity = Date()
                            return decide(i)
                        }
                        return (phone, true)
                    } catch {
                        return (phone, false)
                    }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
    }

    @Test func aFailingStepRollsBackOnlyItselfInASharedTransaction() async throws {
        // Given 60 texts arriving at once, every third of which half-applies its effects and then fails
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        let registration = Registration(
            firstName: "Ivan",
            lastName: "Petrov",
            email: "ivan@example.org",
            passcode: PasscodeHash(hash: [1], salt: [2], iterations: 1),
            role: .user
        )
        let answers = await runConcurrently(store, count: 60) { i in
            // The second registration of the same phone breaks UNIQUE(users.phone) after the opt-out and the
            // first registration were written.
            i % 3 == 0
                ? Decision(replies: ["no"], effects: [.optOut(text: "STOP"), .register(registration), .register(registration)])
                : Decision(replies: ["ok"], effects: [.optOut(text: "STOP")])
        }
        // Then they shared transactions
        #expect(store.inbound.transactions < 60)
        // And each caller was told the truth: the failed ones left nothing, the others are whole
        #expect(answers.filter(\.stored).count == 40)
        for answer in answers {
            let expected = answer.stored ? 1 : 0
            for table in ["inbound", "conversations", "phones", "consentLog"] {
                #expect(
                    try fetchInt(path, "SELECT count(*) FROM \(table) WHERE \(table == "inbound" ? "\"from\"" : "phone") = '\(answer.phone)'")
                        == expected
                )
            }
        }
        #expect(try fetchInt(path, "SELECT count(*) FROM users") == 0)
    }

    @Test func whenTheDiskFillsOnlyWhatWasAcknowledgedIsStored() async throws {
        // Given texts stored earlier, and then a database that may grow only a little
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        for i in 0..<10 {
            let earlier = InboundRecord(messageSid: "SM-earlier-\(i)", from: "+14155559000", to: "+15005550006", body: "HELP")
            _ = try await store.processInbound(earlier, replyMode: .twiml, now: Date()) { _, _ in Decision(replies: ["ok"]) }
        }
        try await store.writer.writeWithoutTransaction { db in
            let pages = try Int.fetchOne(db, sql: "PRAGMA page_count")!
            try db.execute(sql: "PRAGMA max_page_count = \(pages + 20)")
        }
        // When 200 texts with long bodies arrive at once
        let long = String(repeating: "Пролетарии всех стран, соединяйтесь! ", count: 40)
        let body: @Sendable (Int) -> String = { _ in long }
        let answers = await runConcurrently(store, count: 200, body: body) { _ in Decision(replies: ["ok"]) }
        // Then the disk filled: not all were stored
        #expect(answers.filter(\.stored).count < 200)
        // And exactly the acknowledged ones are in the database, each with its conversation; the earlier ones stay
        for answer in answers {
            let expected = answer.stored ? 1 : 0
            #expect(try fetchInt(path, "SELECT count(*) FROM inbound WHERE \"from\" = '\(answer.phone)'") == expected)
            #expect(try fetchInt(path, "SELECT count(*) FROM conversations WHERE phone = '\(answer.phone)'") == expected)
        }
        #expect(try fetchInt(path, "SELECT count(*) FROM inbound WHERE messageSid LIKE 'SM-earlier-%'") == 10)
        // And once the disk has room again, writes work without a restart
        try await store.writer.writeWithoutTransaction { try $0.execute(sql: "PRAGMA max_page_count = 1073741823") }
        let later = InboundRecord(messageSid: "SM-later", from: "+14155559999", to: "+15005550006", body: "HELP")
        _ = try await store.processInbound(later, replyMode: .twiml, now: Date()) { _, _ in Decision(replies: ["ok"]) }
        #expect(try fetchInt(path, "SELECT count(*) FROM inbound WHERE messageSid = 'SM-later'") == 1)
    }

    /// Runs `count` raw steps at once through the batcher and returns which callers were told their step stored.
    private func runSteps(_ store: SQLiteStore, count: Int, step: @escaping @Sendable (Database, Int) throws -> Void) async -> [Int: Bool] {
        await withTaskGroup(of: (Int, Bool).self) { group in
            for i in 0..<count {
                group.addTask {
                    do {
                        _ = try await store.inbound.run { db in
                            try step(db, i)
                            return .processed(twiml: "")
                        }
                        return (i, true)
                    } catch {
                        return (i, false)
                    }
                }
            }
            return await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
    }

    @Test func aStepThatAbortsTheTransactionFailsItsWholeBatchAndCannotWriteAfterwards() async throws {
        // Given steps that each store a row, one of which makes SQLite roll back the whole transaction, swallows
        // the error, and tries to write on
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        try executeSQL(path, "CREATE TABLE marks (id INTEGER PRIMARY KEY)")
        let answers = await runSteps(store, count: 40) { db, i in
            try db.execute(sql: "INSERT INTO marks (id) VALUES (?)", arguments: [i])
            if i == 20 {
                try? db.execute(sql: "INSERT OR ROLLBACK INTO marks (id) VALUES (?)", arguments: [i])
                try db.execute(sql: "INSERT INTO marks (id) VALUES (1020)")
            }
        }
        // Then the aborting step failed, and its write after the abort did not land outside the transaction
        #expect(answers[20] == false)
        #expect(try fetchInt(path, "SELECT count(*) FROM marks WHERE id IN (20, 1020)") == 0)
        // And exactly the steps whose callers were told "stored" are stored
        for (i, stored) in answers {
            #expect(try fetchInt(path, "SELECT count(*) FROM marks WHERE id = \(i)") == (stored ? 1 : 0), "step \(i)")
        }
    }

    @Test func aCommitThatFailsFailsEveryStepInTheBatch() async throws {
        // Given a deferred foreign key that one step breaks: SQLite refuses the COMMIT, not the statement
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        try executeSQL(path, "CREATE TABLE parents (id INTEGER PRIMARY KEY)")
        try executeSQL(path, "CREATE TABLE children (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parents(id) DEFERRABLE INITIALLY DEFERRED)")
        let answers = await runSteps(store, count: 40) { db, i in
            if i != 30 { try db.execute(sql: "INSERT INTO parents (id) VALUES (?)", arguments: [i]) }
            try db.execute(sql: "INSERT INTO children (id, parent) VALUES (?, ?)", arguments: [i, i])
        }
        // Then the breaking step was refused, and exactly the acknowledged steps are stored, whole
        #expect(answers[30] == false)
        #expect(try fetchInt(path, "SELECT count(*) FROM children WHERE id = 30") == 0)
        for (i, stored) in answers where i != 30 {
            #expect(try fetchInt(path, "SELECT count(*) FROM parents WHERE id = \(i)") == (stored ? 1 : 0), "step \(i)")
            #expect(try fetchInt(path, "SELECT count(*) FROM children WHERE id = \(i)") == (stored ? 1 : 0), "step \(i)")
        }
        // And the database takes writes again
        let later = await runSteps(store, count: 1) { db, _ in try db.execute(sql: "INSERT INTO parents (id) VALUES (500)") }
        #expect(later[0] == true)
    }
}
