import Foundation
import GRDB
import Testing
import TwilioKit

@testable import Action2PhoneCore

@Suite("Store: conversation effects")
struct StoreEffectTests {
    let hash = PasscodeHash(hash: Array(repeating: 3, count: 32), salt: Array(repeating: 4, count: 16), iterations: 1000)

    func step(
        _ store: SQLiteStore,
        from phone: String,
        _ effects: [Effect],
        body: String = "x",
        reply: String = "ok",
        replyMode: ReplyMode = .twiml
    ) async throws {
        _ = try await store.processInbound(
            InboundRecord(messageSid: WebhookFields.newMessageSid(), from: phone, to: "+15005550006", body: body, fields: [.init("Body", body)]),
            replyMode: replyMode,
            now: t0
        ) { _, _ in Decision(replies: [reply], effects: effects) }
    }

    func register(_ store: SQLiteStore, _ phone: String, _ first: String, role: Role = .user) async throws {
        try await step(
            store,
            from: phone,
            [.register(Registration(firstName: first, lastName: "X", email: "\(first.lowercased())@example.org", passcode: hash, role: role))]
        )
    }

    @Test func usersCountsOnlyRegisteredPeopleAsOptedOutAndEveryStopIsLogged() async throws {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        try await register(store, "+14155550101", "Anna", role: .admin)
        try await register(store, "+14155550102", "Boris")
        // Given two numbers that never registered opt out, and Boris opts out twice
        for phone in ["+14155550301", "+14155550302", "+14155550102", "+14155550102"] { try await step(store, from: phone, [.optOut(text: "STOP")]) }
        // Then USERS counts Boris alone as opted out, as `users list --opted-out` does
        let counts = try await DatabaseQueue(path: path).read { try SQLiteFacts(db: $0, phone: "+14155550101").userCounts(activeSince: t0) }
        #expect(counts.registered == 2 && counts.optedOut == 1)
        // And each of Boris's requests is in the consent log
        #expect(try fetchInt(path, "SELECT count(*) FROM consentLog WHERE phone = '+14155550102' AND action = 'optOut'") == 2)
    }

    @Test func usersCountsAdminsFromTheirOwnIndexAndAPromotionCounts() async throws {
        // Given two admins among three people, and a third promoted by an operator
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        try await register(store, "+14155550101", "Anna", role: .admin)
        try await register(store, "+14155550102", "Boris")
        try await register(store, "+14155550103", "Clara", role: .admin)
        try await register(store, "+14155550104", "Dmitri")
        #expect(try await store.setRole(phone: "+14155550104", .admin))
        #expect(try await store.setRole(phone: "+14155550103", .user))
        // Then USERS counts the two admins there are now
        let counts = try await DatabaseQueue(path: path).read { try SQLiteFacts(db: $0, phone: "+14155550101").userCounts(activeSince: t0) }
        #expect(counts.registered == 4 && counts.admins == 2)
        // And SQLite finds them through the admins' index, not by reading every person
        let plan = try await DatabaseQueue(path: path).read {
            try Row.fetchAll($0, sql: "EXPLAIN QUERY PLAN SELECT count(*) FROM users WHERE role = 'admin'").map { $0["detail"] as String }
        }
        #expect(plan.contains { $0.contains("users_admins") }, "\(plan)")
    }

    @Test func broadcastFillsEveryInboxButTextsOnlyReachablePeople() async throws {
        // Given three people, one opted out and one suppressed
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        try await register(store, "+14155550101", "Anna", role: .admin)
        try await register(store, "+14155550102", "Boris")
        try await register(store, "+14155550103", "Clara")
        try await register(store, "+14155550104", "Dmitri")
        try await step(store, from: "+14155550102", [.optOut(text: "STOP")])
        try executeSQL(path, "INSERT INTO phones (phone, suppressed, updatedAt) VALUES ('+14155550103', 1, '2026-11-25 09:00:00.000')")
        // When the admin broadcasts
        try await step(store, from: "+14155550101", [.broadcast(senderId: 1, body: "Harvest at dawn")])
        // Then every inbox has it, and only the two reachable numbers are queued
        #expect(try fetchInt(path, "SELECT count(*) FROM inbox WHERE kind = 'broadcast' AND body = 'Harvest at dawn'") == 4)
        #expect(try fetchInt(path, "SELECT count(*) FROM outbox WHERE purpose = 'broadcast' AND status = 'queued'") == 2)
        #expect(try fetchInt(path, "SELECT count(*) FROM outbox WHERE \"to\" IN ('+14155550102', '+14155550103')") == 0)
        // And the facts agree with what was queued, also after a stranger opted out, Boris was suppressed as well,
        // and Dmitri opted out and back in (each number counted once, only people counted)
        try executeSQL(path, "INSERT INTO phones (phone, optedOut, updatedAt) VALUES ('+14155559999', 1, '2026-11-25 09:00:00.000')")
        try executeSQL(path, "UPDATE phones SET suppressed = 1 WHERE phone = '+14155550102'")
        try await step(store, from: "+14155550104", [.optOut(text: "STOP")])
        try await step(store, from: "+14155550104", [.optIn(text: "START")])
        let audience = try await DatabaseQueue(path: path).read { try SQLiteFacts(db: $0, phone: "+14155550101").broadcastAudience() }
        #expect(audience == BroadcastAudience(registered: 4, textable: 2))
    }

    /// Registers people with ids 2…`count + 1` straight in SQLite, as the broadcast benchmark does.
    func registerMany(_ path: String, _ count: Int) throws {
        try executeSQL(
            path,
            """
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < \(count))
            INSERT INTO users (phone, firstName, lastName, email, passcodeHash, passcodeSalt, passcodeIterations, createdAt)
            SELECT printf('+1415%07d', i), 'Comrade', 'Number' || i, 'c' || i || '@example.org', x'00', x'00', 1000, '2026-11-25 09:00:00.000' FROM n
            """
        )
    }

    @Test func aLargeBroadcastIsFannedOutInChunksAfterItsWebhookReachingEachPersonOnce() async throws {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        try await register(store, "+14155550101", "Anna", role: .admin)
        try registerMany(path, 1_234)
        try executeSQL(path, "INSERT INTO phones (phone, optedOut, updatedAt) VALUES ('+14150000007', 1, '2026-11-25 09:00:00.000')")
        // When the admin's YES records the broadcast
        try await step(store, from: "+14155550101", [.broadcast(senderId: 1, body: "Harvest at dawn")])
        // Then the webhook's own transaction wrote one row for it, and its answer waited for the first chunk only
        #expect(try fetchInt(path, "SELECT count(*) FROM broadcasts") == 1)
        #expect(try fetchInt(path, "SELECT count(*) FROM inbox") ?? 0 >= SQLiteStore.fanOutChunkSize)
        // And the rest is written after it, a chunk per transaction, until everyone registered then is reached once
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        while try fetchInt(path, "SELECT count(*) FROM broadcasts WHERE finishedAt IS NULL") != 0 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(try fetchInt(path, "SELECT count(*) FROM inbox") == 1_235)
        #expect(try fetchInt(path, "SELECT count(DISTINCT userId) FROM inbox") == 1_235)
        #expect(try fetchInt(path, "SELECT count(*) FROM outbox WHERE purpose = 'broadcast'") == 1_234)
        #expect(try fetchInt(path, "SELECT count(DISTINCT \"to\") FROM outbox") == 1_234)
        #expect(try fetchInt(path, "SELECT count(*) FROM outbox WHERE \"to\" = '+14150000007'") == 0)
        let row = try fetchRow(path, "SELECT stored, queued, doneThroughUserId, lastUserId FROM broadcasts")
        #expect(row?["stored"] as Int? == 1_235 && row?["queued"] as Int? == 1_234)
        #expect(row?["doneThroughUserId"] as Int? == 1_235 && row?["lastUserId"] as Int? == 1_235)
        // And the inbox keeps the broadcast's own time
        #expect(try fetchInt(path, "SELECT count(DISTINCT createdAt) FROM inbox") == 1)
    }

    @Test func aBroadcastWhoseSenderDeletedTheirAccountMidwayStillReachesEveryone() async throws {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        try await register(store, "+14155550101", "Anna", role: .admin)
        try registerMany(path, 1_200)
        try await store.writer.write { db in
            try SQLiteStore.queueBroadcast(db, senderId: 1, body: "Harvest at dawn", now: t0)
            #expect(try SQLiteStore.fanOutBroadcastChunk(db, now: t0))
        }
        // When the sender deletes their account before the rest is written
        #expect(try await store.deleteUser(phone: "+14155550101"))
        // Then the rest still goes out (unsigned), and a later broadcast is not held up behind it
        try await store.writer.write { db in try SQLiteStore.queueBroadcast(db, senderId: nil, body: "Second", now: t0) }
        #expect(try await store.fanOutBroadcasts() == 5)  // 701 people left of the first, 1,200 of the second
        #expect(try fetchInt(path, "SELECT count(*) FROM inbox WHERE body = 'Harvest at dawn'") == 1_200)
        // (the earlier ones lost their sender with the account)
        #expect(try fetchInt(path, "SELECT count(*) FROM inbox WHERE body = 'Harvest at dawn' AND senderId IS NULL") == 1_200)
        #expect(try fetchInt(path, "SELECT count(*) FROM inbox WHERE body = 'Second'") == 1_200)
        #expect(try fetchInt(path, "SELECT count(*) FROM broadcasts WHERE finishedAt IS NULL") == 0)
    }

    @Test func aFanOutCutShortResumesWhereItWasForThePeopleOfThatMoment() async throws {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        try registerMany(path, 1_200)
        // Given a broadcast recorded, and one chunk of it written before a stop (no webhook came after)
        try await store.writer.write { db in
            try SQLiteStore.queueBroadcast(db, senderId: nil, body: "Harvest at dawn", now: t0)
            #expect(try SQLiteStore.fanOutBroadcastChunk(db, now: t0))
        }
        #expect(try fetchInt(path, "SELECT count(*) FROM inbox") == SQLiteStore.fanOutChunkSize)
        // And meanwhile one person who was not reached yet deleted their account, and someone new registered
        try executeSQL(path, "DELETE FROM users WHERE id = 1000")
        try executeSQL(
            path,
            "INSERT INTO users (phone, firstName, lastName, email, passcodeHash, passcodeSalt, passcodeIterations, createdAt) VALUES ('+14155559999', 'New', 'Comrade', 'new@example.org', x'00', x'00', 1000, '2026-11-25 10:00:00.000')"
        )
        // When the server starts again (the outbox worker finishes it)
        #expect(try await store.fanOutBroadcasts() == 2)
        // Then everyone of that moment still registered has it exactly once, and no one else
        #expect(try fetchInt(path, "SELECT count(*) FROM inbox") == 1_199)
        #expect(try fetchInt(path, "SELECT count(DISTINCT userId) FROM inbox") == 1_199)
        #expect(try fetchInt(path, "SELECT count(*) FROM outbox") == 1_199)
        #expect(try fetchInt(path, "SELECT count(*) FROM outbox WHERE \"to\" = '+14155559999'") == 0)
        #expect(try await store.fanOutBroadcasts() == 0)
    }

    @Test func directMessageToAnOptedOutPersonIsStoredButNotTexted() async throws {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        try await register(store, "+14155550101", "Anna", role: .admin)
        try await register(store, "+14155550102", "Boris")
        try await step(store, from: "+14155550102", [.optOut(text: "STOP")])
        try await step(store, from: "+14155550101", [.sendDirect(recipientId: 2, senderId: 1, body: "hello")])
        #expect(try fetchInt(path, "SELECT count(*) FROM inbox WHERE userId = 2") == 1)
        #expect(try fetchInt(path, "SELECT count(*) FROM outbox") == 0)
    }

    @Test func deleteKeepsOnlyWhatOptOutComplianceNeeds() async throws {
        // Given a person who opted out and back in, with an inbox and texts
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        try await register(store, "+14155550101", "Anna", role: .admin)
        try await register(store, "+14155550102", "Boris")
        try await step(store, from: "+14155550102", [.optOut(text: "STOP")], body: "STOP")
        try await step(store, from: "+14155550102", [.optIn(text: "START")], body: "START")
        try await step(store, from: "+14155550101", [.sendDirect(recipientId: 2, senderId: 1, body: "secret plans")])
        try await step(store, from: "+14155550102", [], body: "my private words")
        // When they delete their account
        try await step(store, from: "+14155550102", [.deleteAccount(userId: 2)], body: "YES")
        // Then profile and inbox are gone, texts lose their bodies, and the consent record stays
        #expect(try fetchInt(path, "SELECT count(*) FROM users WHERE phone = '+14155550102'") == 0)
        #expect(try fetchInt(path, "SELECT count(*) FROM inbox WHERE userId = 2") == 0)
        #expect(try fetchInt(path, "SELECT count(*) FROM inbound WHERE body LIKE '%private%' OR params LIKE '%private%'") == 0)
        #expect(try fetchInt(path, "SELECT count(*) FROM outbox WHERE body LIKE '%secret%'") == 0)
        #expect(try fetchInt(path, "SELECT count(*) FROM outbox WHERE \"to\" = '+14155550102' AND status = 'failed'") == 1)
        #expect(try fetchInt(path, "SELECT count(*) FROM consentLog WHERE phone = '+14155550102'") == 2)
        #expect(try fetchInt(path, "SELECT count(*) FROM phones WHERE phone = '+14155550102'") == 1)
        // And the sender's account is untouched
        #expect(try fetchInt(path, "SELECT count(*) FROM users") == 1)
    }

    @Test func deleteErasesThePersonFromAdminsCommandsAndTheirReplies() async throws {
        // Given an admin who found Boris, wrote to him by email (the reply sent through the outbox), and counted users
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        try await register(store, "+14155550101", "Anna", role: .admin)
        try await register(store, "+14155550102", "Boris")
        try await register(store, "+14155550103", "Clara")
        try await step(store, from: "+14155550101", [], body: "FIND bor", reply: "Boris X, +14155550102, boris@example.org")
        try await step(
            store,
            from: "+14155550101",
            [],
            body: "SEND Boris@Example.org hi",
            reply: "Stored in comrade Boris X's inbox.",
            replyMode: .rest
        )
        try await step(store, from: "+14155550101", [], body: "FIND bo", reply: "Boris X, +14155550102, boris@example.org", replyMode: .rest)
        try await step(store, from: "+14155550101", [], body: "FIND cla", reply: "Clara X, +14155550103, clara@example.org")
        try await step(store, from: "+14155550101", [], body: "USERS", reply: "3 registered")
        try executeSQL(path, "UPDATE outbox SET status = 'sent'")
        // When Boris deletes his account
        try await step(store, from: "+14155550102", [.deleteAccount(userId: 2)], body: "YES")
        // Then nothing the admin's log or the outbox keeps names him: not his phone, email or name
        for column in ["body", "reply", "params"] {
            #expect(try fetchInt(path, "SELECT count(*) FROM inbound WHERE \(column) LIKE '%boris%' OR \(column) LIKE '%0102%'") == 0, "\(column)")
        }
        #expect(try fetchInt(path, "SELECT count(*) FROM outbox WHERE body LIKE '%Boris%'") == 0)
        // And the admin's other rows, Clara's among them, are as they were
        #expect(try fetchInt(path, "SELECT count(*) FROM inbound WHERE body IN ('FIND cla', 'USERS') AND reply LIKE '%<Message>%'") == 2)
        // (in REST mode the log keeps no reply: "FIND bo", whose reply named him, goes with its reply)
        #expect(try fetchInt(path, "SELECT count(*) FROM inbound WHERE body = '[deleted]' AND \"from\" = '+14155550101'") == 3)
        // And an erased reply is never sent again as "[deleted]"
        let erased = try #require(try fetchInt(path, "SELECT min(id) FROM outbox WHERE body = '[deleted]'"))
        let retried = try await store.retryOutbox(ids: [Int64(erased)])
        #expect(retried.queued.isEmpty && retried.refused.first?.reason.contains("erased when a person deleted their account") == true)
    }

    /// Anna and Clara, admins, and Boris, with a long history: Anna's 2,500 commands (three FIND that named Boris in
    /// their TwiML reply, a SEND to his number typed with dashes) and 1,500 replies sent through the outbox (two named
    /// him, answering commands of their own), Clara's 600 commands (a SEND to his email), and last a reply to Anna
    /// naming him still queued. Rows read: 4,600 of history, more than four chunks.
    func longAdminHistory() async throws -> (SQLiteStore, String) {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        try await register(store, "+14155550101", "Anna", role: .admin)
        try await register(store, "+14155550102", "Boris")
        try await register(store, "+14155550103", "Clara", role: .admin)
        let named = "Boris X, +14155550102, boris@example.org"
        try executeSQL(
            path,
            """
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2500)
            INSERT INTO inbound (messageSid, "from", "to", body, params, reply, receivedAt)
            SELECT 'SManna' || i, '+14155550101', '+15005550006',
                   CASE WHEN i IN (1, 1250, 2500) THEN 'FIND bor' WHEN i = 1800 THEN 'SEND 415-555-0102 hi' ELSE 'USERS' END, '[]',
                   CASE WHEN i IN (1, 1250, 2500) THEN '<Response><Message>\(named)</Message></Response>'
                        ELSE '<Response><Message>3 registered</Message></Response>' END,
                   '2026-11-25 09:00:00.000' FROM n;
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 600)
            INSERT INTO inbound (messageSid, "from", "to", body, params, reply, receivedAt)
            SELECT 'SMclara' || i, '+14155550103', '+15005550006', CASE WHEN i = 300 THEN 'SEND boris@example.org hi' ELSE 'USERS' END, '[]',
                   '<Response><Message>3 registered</Message></Response>', '2026-11-25 09:00:00.000' FROM n;
            INSERT INTO inbound (messageSid, "from", "to", body, params, reply, receivedAt)
            VALUES ('SMrest10', '+14155550101', '+15005550006', 'FIND bo', '[]', '', '2026-11-25 09:00:00.000'),
                   ('SMrest1490', '+14155550101', '+15005550006', 'FIND bo', '[]', '', '2026-11-25 09:00:00.000');
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500)
            INSERT INTO outbox ("to", body, purpose, status, inReplyTo, createdAt, updatedAt)
            SELECT '+14155550101', CASE WHEN i IN (10, 1490) THEN '\(named)' ELSE 'Stored.' END, 'reply', 'sent', 'SMrest' || i,
                   '2026-11-25 09:00:00.000', '2026-11-25 09:00:00.000' FROM n;
            INSERT INTO outbox ("to", body, purpose, status, inReplyTo, createdAt, updatedAt)
            VALUES ('+14155550101', '\(named)', 'reply', 'queued', 'SMlate', '2026-11-25 09:00:00.000', '2026-11-25 09:00:00.000');
            """
        )
        return (store, path)
    }

    /// Nothing of the long history names Boris any more, and all the rest of it is as it was.
    func expectLongHistoryErased(_ path: String) throws {
        #expect(try fetchInt(path, "SELECT count(*) FROM erasures") == 0)
        for column in ["body", "reply"] {
            #expect(try fetchInt(path, "SELECT count(*) FROM inbound WHERE \(column) LIKE '%boris%' OR \(column) LIKE '%0102%'") == 0, "\(column)")
        }
        #expect(try fetchInt(path, "SELECT count(*) FROM inbound WHERE body = '[deleted]' AND \"from\" = '+14155550101'") == 6)
        #expect(try fetchInt(path, "SELECT count(*) FROM inbound WHERE body = '[deleted]' AND \"from\" = '+14155550103'") == 1)
        #expect(try fetchInt(path, "SELECT count(*) FROM inbound WHERE body = 'USERS' AND reply LIKE '%3 registered%'") == 2496 + 599)
        #expect(try fetchInt(path, "SELECT count(*) FROM outbox WHERE body = '[deleted]' AND recipientDeleted AND status = 'sent'") == 2)
        #expect(try fetchInt(path, "SELECT count(*) FROM outbox WHERE body = 'Stored.' AND NOT recipientDeleted") == 1498)
        // (and the reply still queued stays the note that it was withdrawn)
        #expect(
            try fetchRow(path, "SELECT body, status FROM outbox WHERE inReplyTo = 'SMlate'") == [
                "body": SQLiteStore.withdrawnReply, "status": "queued",
            ]
        )
    }

    @Test func aDeletionReadsTheAdminsLongHistoryAfterItsOwnTransactionAChunkAtATime() async throws {
        // Given admins with a long history that names Boris
        let (store, path) = try await longAdminHistory()
        // When his account is deleted
        try await DatabaseQueue(path: path).write { try SQLiteStore.deleteAccount($0, userId: 2, now: t0) }
        // Then the reply naming him that could still be sent is withdrawn at once, in the deletion's transaction
        #expect(try fetchInt(path, "SELECT count(*) FROM outbox WHERE inReplyTo = 'SMlate' AND body = '\(SQLiteStore.withdrawnReply)'") == 1)
        // and the rest of the history is left to an erasure of its own, which has not read it yet
        #expect(try fetchInt(path, "SELECT count(*) FROM erasures WHERE inReplies AND adminPhone = '' AND afterId = 0") == 1)
        #expect(try fetchInt(path, "SELECT count(*) FROM inbound WHERE body = 'FIND bor'") == 3)
        // When the erasure runs
        let chunks = try await store.finishErasures()
        // Then it took several transactions, none reading more than a chunk of rows
        let wholeChunks = (1500 + 1 + 2500 + 2 + 600).quotientAndRemainder(dividingBy: SQLiteStore.erasureChunkSize).quotient
        #expect(chunks > wholeChunks && chunks <= wholeChunks + 2, "\(chunks)")
        // and nothing names him any more
        try expectLongHistoryErased(path)
        #expect(try await store.finishErasures() == 0)
    }

    @Test func nothingNamingThePersonIsAnsweredOrSentAgainBeforeTheErasureReachesIt() async throws {
        // Given the long history, where a reply naming Boris had failed, and his deletion, whose erasure has not begun
        let (store, path) = try await longAdminHistory()
        try executeSQL(path, "UPDATE outbox SET status = 'failed' WHERE id = 10")
        try executeSQL(path, "UPDATE inbound SET idempotencyToken = 'token-1250' WHERE messageSid = 'SManna1250'")
        try await DatabaseQueue(path: path).write { try SQLiteStore.deleteAccount($0, userId: 2, now: t0) }
        #expect(try fetchInt(path, "SELECT count(*) FROM outbox WHERE id IN (10, 1490) AND body LIKE 'Boris X%'") == 2)
        // When Twilio says the last one naming him was undelivered, and an operator retries both
        try executeSQL(path, "UPDATE outbox SET status = 'undelivered' WHERE id = 1490")
        let retried = try await store.retryOutbox(ids: [10, 1490])
        // Then neither is queued: each is erased instead, as the erasure would have
        #expect(retried.queued.isEmpty && retried.refused.allSatisfy { $0.reason.contains("erased when a person deleted their account") })
        #expect(try fetchInt(path, "SELECT count(*) FROM outbox WHERE id IN (10, 1490) AND body = '[deleted]' AND recipientDeleted") == 2)
        // And Twilio's retries of FIND webhooks whose answers named him (by MessageSid, and by idempotency token) get
        // an empty answer, their rows erased
        func again(_ messageSid: String, token: String? = nil) async throws -> InboundOutcome {
            let record = InboundRecord(
                messageSid: messageSid,
                idempotencyToken: token,
                from: "+14155550101",
                to: "+15005550006",
                body: "FIND bor",
                fields: [.init("Body", "FIND bor")]
            )
            return try await store.processInbound(record, replyMode: .twiml, now: t0) { _, _ in Decision(replies: ["not again"]) }
        }
        #expect(try await again("SManna2500") == .duplicate(twiml: TwiML.empty))
        #expect(try await again(WebhookFields.newMessageSid(), token: "token-1250") == .duplicate(twiml: TwiML.empty))
        #expect(try fetchInt(path, "SELECT count(*) FROM inbound WHERE messageSid IN ('SManna2500', 'SManna1250') AND body = '[deleted]'") == 2)
        // while a retry of a command that named no one is answered as the first time
        #expect(try await again("SManna2499") == .duplicate(twiml: "<Response><Message>3 registered</Message></Response>"))
    }

    @Test func anErasureIsNotHeldUpByALargeBroadcast() async throws {
        // Given the long history, a broadcast to 100,000 people being fanned out, and Boris's deletion
        let (store, path) = try await longAdminHistory()
        try registerMany(path, 100_000)
        try executeSQL(path, "INSERT INTO broadcasts (body, createdAt, lastUserId) VALUES ('Harvest at dawn', '2026-11-25 09:00:00.000', 100003)")
        // When he deletes his account by text
        try await step(store, from: "+14155550102", [.deleteAccount(userId: 2)], body: "YES")
        // Then the webhooks' loop takes turns: his erasure (a few chunks) ends long before the broadcast (two hundred)
        let deadline = Date().addingTimeInterval(60)
        while try fetchInt(path, "SELECT count(*) FROM erasures") != 0 && Date() < deadline { try await Task.sleep(for: .milliseconds(2)) }
        #expect(try fetchInt(path, "SELECT count(*) FROM erasures") == 0)
        let reached = try #require(try fetchInt(path, "SELECT doneThroughUserId FROM broadcasts"))
        #expect(reached < 50_000, "\(reached)")
    }

    @Test func aNameOutsideASCIIIsLookedForInSmallerChunks() async throws {
        // Given the long history, and the erasure of someone whose name SQLite cannot find in any case (every row read
        // is checked in Swift): Борис, with Boris's number and email
        let (store, path) = try await longAdminHistory()
        try executeSQL(
            path,
            """
            INSERT INTO erasures (phone, email, name, createdAt, outboxThrough, inboundThrough)
            VALUES ('+14155550102', 'boris@example.org', 'Борис X', '2026-11-25 09:00:00.000', (SELECT max(id) FROM outbox), (SELECT max(rowid) FROM inbound))
            """
        )
        // When it runs
        let chunks = try await store.finishErasures()
        // Then each chunk read a quarter as many rows
        let wholeChunks = (1500 + 1 + 2500 + 2 + 600).quotientAndRemainder(dividingBy: SQLiteStore.erasureChunkSize / 4).quotient
        #expect(chunks > wholeChunks && chunks <= wholeChunks + 2, "\(chunks)")
        // and the rows naming his number or email are erased all the same
        #expect(try fetchInt(path, "SELECT count(*) FROM inbound WHERE reply LIKE '%boris%' OR body LIKE '%0102%'") == 0)
    }

    @Test func anErasureStoppedInTheMiddleResumesWhereItWas() async throws {
        // Given Boris's deletion, whose erasure has run two chunks when its process stops
        let (store, path) = try await longAdminHistory()
        try await DatabaseQueue(path: path).write { try SQLiteStore.deleteAccount($0, userId: 2, now: t0) }
        for _ in 0..<2 { #expect(try await DatabaseQueue(path: path).write { try SQLiteStore.eraseMentionsChunk($0, now: t0) }) }
        // (through the outbox's replies, into Anna's commands: the first FIND naming him is erased, the last not yet)
        #expect(try fetchRow(path, "SELECT inReplies, adminPhone FROM erasures") == ["inReplies": false, "adminPhone": "+14155550101"])
        #expect(try fetchInt(path, "SELECT count(*) FROM inbound WHERE messageSid = 'SManna1' AND body = '[deleted]'") == 1)
        #expect(try fetchInt(path, "SELECT count(*) FROM inbound WHERE messageSid = 'SManna2500' AND body = 'FIND bor'") == 1)
        _ = store
        // When another process opens the database and finishes it
        let reopened = try SQLiteStore.open(path: path)
        #expect(try await reopened.finishErasures() >= 2)
        // Then the whole history is erased, once
        try expectLongHistoryErased(path)
    }

    @Test func aDeleteByTextIsAnsweredAfterOneChunkAndTheRestFollowsWithoutAnotherText() async throws {
        // Given admins with a long history that names Boris
        let (store, path) = try await longAdminHistory()
        // When he deletes his account by text
        try await step(store, from: "+14155550102", [.deleteAccount(userId: 2)], body: "YES")
        // Then the webhooks' own loop erases the rest, though no other text comes
        // (a deadline, not a measure: it takes well under a second, far longer on a machine busy building)
        let deadline = Date().addingTimeInterval(60)
        while try fetchInt(path, "SELECT count(*) FROM erasures") != 0 && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        try expectLongHistoryErased(path)
    }

    @Test func questionsLeftUnansweredForADayAreEndedAndTheirDraftsGo() async throws {
        // Given a registration left at its confirmation two days ago, one left an hour ago, and an idle number
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        func leave(_ phone: String, _ step: Step, at when: Date) async throws {
            let record = InboundRecord(messageSid: WebhookFields.newMessageSid(), from: phone, to: "+15005550006", body: "x", fields: [])
            _ = try await store.processInbound(record, replyMode: .twiml, now: when) { state, _ in
                state.step = step
                state.lastActivity = when
                return Decision(replies: ["ok"])
            }
        }
        let draft = Step.askedPasscodeAgain(first: "Olga", last: "Ivanova", email: "olga@example.org", pending: hash)
        try await leave("+14155550101", draft, at: t0.addingTimeInterval(-2 * 86_400))
        try await leave("+14155550102", .askedEmail(first: "Boris", last: "X"), at: t0.addingTimeInterval(-3600))
        try await leave("+14155550103", .idle, at: t0.addingTimeInterval(-3 * 86_400))
        // When questions unanswered for a day are ended
        #expect(try await store.forgetAbandonedQuestions(before: t0.addingTimeInterval(-86_400)) == 1)
        // Then the old registration's name, email and passcode hash are gone, its texts still taken as passcodes
        let states = try fetchRows(path, "SELECT phone, state FROM conversations ORDER BY phone").map { $0["state"] as String }
        #expect(!states[0].contains("Olga") && !states[0].contains("olga@") && !states[0].contains("pending"), "\(states[0])")
        #expect(StoredState.decode(states[0])?.step == .idle && StoredState.decode(states[0])?.passcodeMayFollow == true)
        // And the recent question is kept
        #expect(StoredState.decode(states[1])?.step == .askedEmail(first: "Boris", last: "X"))
        #expect(try await store.forgetAbandonedQuestions(before: t0.addingTimeInterval(-86_400)) == 0)
    }

    @Test func aDemotedAdminsCommandsNamingThePersonAreErasedToo() async throws {
        // Given an admin who found Boris and wrote to him, and was demoted since
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        try await register(store, "+14155550101", "Anna", role: .admin)
        try await register(store, "+14155550102", "Boris")
        try await step(store, from: "+14155550101", [], body: "FIND bor", reply: "Boris X, +14155550102, boris@example.org")
        try await step(store, from: "+14155550101", [], body: "SEND boris@example.org hi", reply: "Stored in comrade Boris X's inbox.")
        #expect(try await store.setRole(phone: "+14155550101", .user))
        // When Boris deletes his account
        try await step(store, from: "+14155550102", [.deleteAccount(userId: 2)], body: "YES")
        // Then her log names him no more
        #expect(try fetchInt(path, "SELECT count(*) FROM inbound WHERE body LIKE '%boris%' OR reply LIKE '%boris%'") == 0)
        #expect(try fetchInt(path, "SELECT count(*) FROM inbound WHERE \"from\" = '+14155550101' AND body = '[deleted]'") == 2)
        // And once she deletes her own account, her number is no longer kept among the admins'
        try await step(store, from: "+14155550101", [.deleteAccount(userId: 1)], body: "YES")
        #expect(try fetchInt(path, "SELECT count(*) FROM adminPhones") == 0)
    }

    @Test func theAdminsOfADatabaseFromBeforeAdminPhonesAreCounted() async throws {
        // Given a database at v8 with an admin and a member
        let path = try await databaseMigrated(
            upTo: "v8 names and emails composed",
            with: [("+14155550101", "A", "a@example.org", "admin"), ("+14155550102", "B", "b@example.org", "user")]
        )
        // When it is opened by this version, the admin is among the admins' phones, and a promotion adds one
        let store = try SQLiteStore.open(path: path)
        #expect(try fetchRows(path, "SELECT phone FROM adminPhones").map { $0["phone"] as String } == ["+14155550101"])
        #expect(try await store.setRole(phone: "+14155550102", .admin))
        #expect(try fetchInt(path, "SELECT count(*) FROM adminPhones") == 2)
    }

    @Test func aReplyNamingThePersonThatWasNeverTriedIsWithdrawnOnceAndOneTriedIsErased() async throws {
        // Given an admin's REST-mode replies naming Boris: one in two texts never tried, one being sent, and one queued
        // again after an attempt that may have reached Twilio
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        try await register(store, "+14155550101", "Anna", role: .admin)
        try await register(store, "+14155550102", "Boris")
        let long = "Boris X, +14155550102. " + String(repeating: "word ", count: 330) + "And Boris X again."
        try await step(store, from: "+14155550101", [], body: "FIND bor", reply: long, replyMode: .rest)
        try await step(store, from: "+14155550101", [], body: "FIND bo", reply: "Boris X, +14155550102, boris@example.org", replyMode: .rest)
        try await step(store, from: "+14155550101", [], body: "FIND b", reply: "Boris X, +14155550102, boris@example.org", replyMode: .rest)
        try executeSQL(path, "UPDATE outbox SET status = 'sending' WHERE id = 3")
        try executeSQL(path, "UPDATE outbox SET firstAttemptAt = createdAt, needsReconcile = 1, attempts = 1 WHERE id = 4")
        // When Boris deletes his account
        try await step(store, from: "+14155550102", [.deleteAccount(userId: 2)], body: "YES")
        // Then the reply never tried tells the admin, once, that it was withdrawn; the others keep nothing of him
        let rows = try fetchRows(path, "SELECT status, body, recipientDeleted, errorMessage FROM outbox ORDER BY id")
        #expect(rows.map { $0["status"] as String } == ["queued", "failed", "sending", "uncertain"])
        #expect((rows[0]["body"] as String).hasPrefix("Comrade, the answer to your last command named someone who has just erased their data"))
        #expect(rows[0]["recipientDeleted"] as Bool == false)
        #expect(rows[1]["errorMessage"] as String? == "erased: it named a person who deleted their account")
        #expect(rows[3]["errorMessage"] as String? == "erased: it named a person who deleted their account")
        for row in rows.dropFirst() { #expect(row["body"] as String == "[deleted]" && row["recipientDeleted"] as Bool == true) }
        // And the commands are gone from the log with them
        #expect(try fetchInt(path, "SELECT count(*) FROM inbound WHERE body LIKE 'FIND%'") == 0)
        // And the one in flight, if Twilio answers 500, is never queued again, and says why
        try await store.completeOutbox(
            id: 3,
            outcome: .retry(at: t0.addingTimeInterval(1), code: nil, message: "HTTP 500", reconcile: false),
            now: t0
        )
        // (An admin who deletes their own account: the reply to them is theirs, failed as a deleted recipient's)
        try await step(store, from: "+14155550101", [], body: "FIND anna", reply: "Anna X, +14155550101, anna@example.org", replyMode: .rest)
        try await step(store, from: "+14155550101", [.deleteAccount(userId: 1)], body: "YES")
        #expect(try fetchRow(path, "SELECT errorMessage FROM outbox WHERE id = 5")?["errorMessage"] as String? == "recipient deleted their account")
        let inFlight = try fetchRow(path, "SELECT status, errorMessage FROM outbox WHERE id = 3")
        #expect(inFlight?["status"] as String? == "failed")
        #expect(inFlight?["errorMessage"] as String? == "erased: it named a person who deleted their account; HTTP 500")
    }

    @Test(arguments: [
        // (text in an admin's row, whether it names Ann: an@example.org, +14155550102, Ann Lee)
        ("FIND an", false), ("Ivan Petrov, +14155550109, ivan@example.org", false), ("Joann Leeds", false),
        ("SEND An@Example.org hi", true), ("mail an@example.org.", true), ("an@example.org.uk", false),
        ("SEND 415 555 0102 the tractors", true), ("SEND (415) 555-0102 hi", true), ("+141555501023", false),
        ("Stored in comrade Ann Lee's inbox", true), ("call 14155550102", true), ("4155550102", true), ("24155550102", false),
        ("Mary-Ann Lee, +14155550103", false), ("Ann Lee-Smith", false), ("FIND ann lee", true), ("ANN LEE", true),
    ])
    func aPersonIsNamedOnlyAsAWholeWordOrNumber(_ text: String, _ named: Bool) {
        let ann = PersonMentions(phone: "+14155550102", email: "an@example.org", name: "Ann Lee")
        #expect(ann.isNamed(in: text) == named)
    }

    @Test func deleteLeavesRowsThatOnlyContainThePersonsDetailsInsideOthers() async throws {
        // Given Ann (an@example.org), whose address is inside Ivan's, and an admin who found Ivan and wrote to Ann
        // by her number in spaced form
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        try await register(store, "+14155550101", "Admin", role: .admin)
        try await step(
            store,
            from: "+14155550102",
            [.register(Registration(firstName: "Ann", lastName: "Lee", email: "an@example.org", passcode: hash, role: .user))]
        )
        try await step(store, from: "+14155550101", [], body: "FIND petrov", reply: "Ivan Petrov, +14155550109, ivan@example.org")
        try await step(store, from: "+14155550101", [], body: "SEND 415 555 0102 hello", reply: "Stored.")
        // When Ann deletes her account
        try await step(store, from: "+14155550102", [.deleteAccount(userId: 2)], body: "YES")
        // Then the row naming her in spaced form is erased, and Ivan's is not
        #expect(try fetchInt(path, "SELECT count(*) FROM inbound WHERE body = 'FIND petrov'") == 1)
        #expect(try fetchInt(path, "SELECT count(*) FROM inbound WHERE body LIKE '%555 0102%'") == 0)
    }

    @Test func loginFailuresAndLocksPersist() async throws {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        try await register(store, "+14155550102", "Boris")
        // Each wrong passcode's time is kept (the window slides), and summarised for operators
        let times = [t0.addingTimeInterval(-61.5), t0]
        try await step(store, from: "+14155550102", [.loginFailed(userId: 1, recentFailures: times, lockedUntil: nil)])
        let (_, tried) = try await store.conversationSnapshot(phone: "+14155550102")
        #expect(tried?.recentFailedLogins == times)
        #expect(try fetchInt(path, "SELECT failedLogins FROM users") == 2)
        #expect(try fetchInt(path, "SELECT count(*) FROM users WHERE failedLoginTimes LIKE firstFailedLoginAt || ',%'") == 1)
        try await step(store, from: "+14155550102", [.loginFailed(userId: 1, recentFailures: [], lockedUntil: t0.addingTimeInterval(900))])
        let (_, locked) = try await store.conversationSnapshot(phone: "+14155550102")
        #expect(locked?.lockedUntil == t0.addingTimeInterval(900) && locked?.recentFailedLogins == [])
        try await step(store, from: "+14155550102", [.loginSucceeded(userId: 1)])
        let (_, cleared) = try await store.conversationSnapshot(phone: "+14155550102")
        #expect(cleared?.lockedUntil == nil && cleared?.recentFailedLogins == [])
        #expect(try fetchInt(path, "SELECT failedLogins FROM users") == 0)
        #expect(cleared?.passcode == hash)
        // A row written before failedLoginTimes existed counts its failures at the first one's time
        try await DatabaseQueue(path: path).write {
            try $0.execute(sql: "UPDATE users SET failedLogins = 3, firstFailedLoginAt = ?, failedLoginTimes = NULL", arguments: [t0])
        }
        let (_, legacy) = try await store.conversationSnapshot(phone: "+14155550102")
        #expect(legacy?.recentFailedLogins == [t0, t0, t0])
    }

    @Test func findEscapesLikeWildcards() async throws {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        try await register(store, "+14155550102", "Boris")
        let found = try await DatabaseQueue(path: path).read { db in
            (
                try SQLiteFacts(db: db, phone: "x").findUsers(matching: "%", limit: 5),
                try SQLiteFacts(db: db, phone: "x").findUsers(matching: "bor", limit: 5)
            )
        }
        #expect(found.0.isEmpty)
        #expect(found.1.map(\.firstName) == ["Boris"])
    }

    @Test(arguments: [
        ("анна", ["Анна"]), ("ИВАНОВА", ["Анна"]), ("анна иванова", ["Анна"]), ("zoë", ["Zoë"]), ("555-0102", ["Boris"]),
        ("(415) 555", ["Boris", "Анна", "Zoë"]), ("5550103", ["Анна"]), ("-", []), ("12", []),
    ])
    func findMatchesOtherScriptsInAnyCaseAndPhonesWrittenWithDashes(_ text: String, _ names: [String]) async throws {
        // Given names as people write them, and numbers that FIND is given in parts, as phones show them
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        try await register(store, "+14155550102", "Boris")
        try await step(
            store,
            from: "+14155550103",
            [.register(Registration(firstName: "Анна", lastName: "Иванова", email: "anna@example.org", passcode: hash, role: .user))]
        )
        try await register(store, "+14155550104", "Zoë")
        let found = try await DatabaseQueue(path: path).read { db in try SQLiteFacts(db: db, phone: "x").findUsers(matching: text, limit: 5) }
        #expect(found.map(\.firstName) == names)
    }
}
