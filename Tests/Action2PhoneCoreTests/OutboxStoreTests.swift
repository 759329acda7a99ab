import Foundation
import GRDB
import Testing
import TwilioKit

@testable import Action2PhoneCore

@Suite("Store: outbox")
struct OutboxStoreTests {
    func queue(_ path: String, _ rows: [(to: String, body: String, purpose: String)]) throws {
        try DatabaseQueue(path: path).write { db in
            for r in rows {
                try db.execute(
                    sql: "INSERT INTO outbox (\"to\", body, purpose, status, createdAt, updatedAt) VALUES (?, ?, ?, 'queued', ?, ?)",
                    arguments: [r.to, r.body, r.purpose, t0, t0]
                )
            }
        }
    }

    /// A new database holding `rows`, queued.
    func store(queueing rows: [(to: String, body: String, purpose: String)]) throws -> (path: String, store: SQLiteStore) {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        try queue(path, rows)
        return (path, store)
    }

    /// Claims with `claim` until nothing is due, sending each at once; the bodies in claim order.
    func sendAll(_ store: SQLiteStore, claim: () async throws -> OutboxMessage?) async throws -> [String] {
        var order: [String] = []
        while let m = try await claim() {
            order.append(m.body)
            try await store.completeOutbox(id: m.id, outcome: .accepted(sid: "SM\(m.id)"), now: t0)
        }
        return order
    }

    @Test func repliesAreClaimedBeforeBroadcastsButNeverOvertakeTheirOwnNumber() async throws {
        let (_, store) = try store(queueing: [
            (to: "+14155550101", body: "broadcast 1", purpose: "broadcast"), (to: "+14155550102", body: "broadcast 2", purpose: "broadcast"),
            (to: "+14155550103", body: "reply", purpose: "reply"), (to: "+14155550101", body: "reply after broadcast", purpose: "reply"),
        ])
        let order = try await sendAll(store) { try await store.claimNextOutbox(now: t0) }
        #expect(order == ["reply", "broadcast 1", "reply after broadcast", "broadcast 2"])
    }

    @Test func aReplyHeldBackByItsNumbersBroadcastTextTakesThatTextAlongFirst() async throws {
        // Given a broadcast queued to five people, then a reply to the last of them (REST reply mode)
        let (_, store) = try store(
            queueing: (1...5).map { (to: "+1415555010\($0)", body: "broadcast \($0)", purpose: "broadcast") } + [
                (to: "+14155550105", body: "reply", purpose: "reply")
            ]
        )
        // Then that person's broadcast text goes next, then the reply: not after the whole broadcast
        let order = try await sendAll(store) { try await store.claimNextOutbox(now: t0) }
        #expect(order == ["broadcast 5", "reply", "broadcast 1", "broadcast 2", "broadcast 3", "broadcast 4"])
    }

    @Test func aReplyHeldBackByATextWaitingToRetryWaitsWithIt() async throws {
        // Given a reply behind a text to the same number that waits a minute to be retried (a 429)
        let (path, store) = try store(queueing: [
            (to: "+14155550101", body: "broadcast 1", purpose: "broadcast"), (to: "+14155550102", body: "broadcast 2", purpose: "broadcast"),
            (to: "+14155550101", body: "reply", purpose: "reply"),
        ])
        try executeSQL(path, "UPDATE outbox SET attempts = 1, nextAttemptAt = '2026-11-25 09:01:00.000' WHERE body = 'broadcast 1'")
        // Then neither goes now (each number's texts stay in order), and the others do
        let now = try await sendAll(store) { try await store.claimNextOutbox(now: t0) }
        #expect(now == ["broadcast 2"])
        // And a minute later the held text goes, then the reply
        let later = try await sendAll(store) { try await store.claimNextOutbox(now: t0.addingTimeInterval(61)) }
        #expect(later == ["broadcast 1", "reply"])
    }

    @Test func aProbeTakesTheTextTriedLeastOftenRepliesFirstAmongEqualsKeepingEachNumbersOrder() async throws {
        let (path, store) = try store(queueing: [
            (to: "+14155550101", body: "tried twice", purpose: "broadcast"), (to: "+14155550102", body: "tried once", purpose: "broadcast"),
            (to: "+14155550103", body: "tried 3 times", purpose: "broadcast"), (to: "+14155550103", body: "behind it", purpose: "broadcast"),
            (to: "+14155550104", body: "reply tried twice", purpose: "reply"),
        ])
        try executeSQL(path, "UPDATE outbox SET attempts = CASE id WHEN 1 THEN 2 WHEN 2 THEN 1 WHEN 3 THEN 3 WHEN 5 THEN 2 ELSE 0 END")
        let order = try await sendAll(store) { try await store.claimProbe(now: t0) }
        // "behind it" was never tried, but waits for the earlier text to its number.
        #expect(order == ["tried once", "reply tried twice", "tried twice", "tried 3 times", "behind it"])
    }

    @Test func aCallbackBeforeTheSidIsRecordedIsAppliedLater() async throws {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        try queue(path, [(to: "+14155550101", body: "fast", purpose: "direct")])
        let m = try #require(try await store.claimNextOutbox(now: t0))
        // Twilio calls back before the create request's answer is recorded
        let known = try await store.applyStatusCallback(
            StatusCallback(fields: [.init("MessageSid", "SMearly"), .init("MessageStatus", "undelivered"), .init("ErrorCode", "30003")]),
            now: t0
        )
        #expect(!known)
        try await store.completeOutbox(id: m.id, outcome: .accepted(sid: "SMearly"), now: t0)
        let row = try #require(try fetchRow(path, "SELECT status, errorCode FROM outbox"))
        #expect(row["status"] as String == "undelivered")
        #expect(row["errorCode"] as Int? == 30003)
        #expect(try fetchInt(path, "SELECT suppressed FROM phones WHERE phone = '+14155550101'") == 1)
        #expect(try fetchInt(path, "SELECT count(*) FROM pendingCallbacks") == 0)
    }

    @Test func aReconciledMessageKeepsTwilioStatus() async throws {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        try queue(path, [(to: "+14155550101", body: "x", purpose: "direct")])
        let m = try #require(try await store.claimNextOutbox(now: t0))
        try await store.completeOutbox(
            id: m.id,
            outcome: .found(sid: "SMfound", twilioStatus: "delivered", errorCode: nil, errorMessage: nil),
            now: t0
        )
        #expect(try fetchRow(path, "SELECT status, twilioSid FROM outbox")?["status"] as String? == "delivered")
        #expect(try await store.firstUnrecordedSid(["SMfound", "SMother"]) == "SMother")
    }

    @Test func retryClearsTheOldSidAndRefusesErasedTexts() async throws {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        // (row 2's recipient deleted their account; row 3 is an admin's text that happens to read "[deleted]")
        try queue(
            path,
            [
                (to: "+14155550101", body: "x", purpose: "direct"), (to: "+14155550102", body: "[deleted]", purpose: "direct"),
                (to: "+14155550103", body: "[deleted]", purpose: "direct"),
            ]
        )
        try executeSQL(
            path,
            "UPDATE outbox SET status = 'undelivered', twilioSid = 'SMold' WHERE id = 1; UPDATE outbox SET status = 'failed' WHERE id IN (2, 3); UPDATE outbox SET recipientDeleted = 1 WHERE id = 2"
        )
        let result = try await store.retryOutbox(ids: [1, 2, 3, 99])
        #expect(result.queued == [1, 3])
        #expect(result.refused.map(\.id) == [2, 99])
        #expect(try fetchRow(path, "SELECT status, twilioSid FROM outbox WHERE id = 1")?["twilioSid"] as String? == nil)
        // A late callback for the old SID no longer touches the requeued row
        _ = try await store.applyStatusCallback(StatusCallback(fields: [.init("MessageSid", "SMold"), .init("MessageStatus", "delivered")]), now: t0)
        #expect(try fetchRow(path, "SELECT status FROM outbox WHERE id = 1")?["status"] as String? == "queued")
    }

    @Test func retryRefusesTextsToNumbersThatOptedOutOrCannotReceiveTexts() async throws {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        try queue(
            path,
            [
                (to: "+14155550101", body: "a", purpose: "direct"), (to: "+14155550102", body: "b", purpose: "direct"),
                (to: "+14155550103", body: "c", purpose: "direct"),
            ]
        )
        try executeSQL(
            path,
            "UPDATE outbox SET status = 'failed', errorCode = 21610 WHERE id = 1; UPDATE outbox SET status = 'failed', errorCode = 20500 WHERE id > 1"
        )
        try await store.setConsent(phone: "+14155550101", optedOut: true, note: "21610")
        try executeSQL(path, "INSERT INTO phones (phone, suppressed, updatedAt) VALUES ('+14155550102', 1, '2026-11-25 09:00:00.000')")
        // When an operator retries every failed text
        let result = try await store.retryOutbox(ids: [], status: .failed)
        // Then only the one that can go is queued; the others say why not, and stay as they were
        #expect(result.queued == [3])
        #expect(result.refused.map(\.id) == [1, 2])
        #expect(result.refused[0].reason.contains("opted out") && result.refused[1].reason.contains("users unsuppress +14155550102"))
        #expect(try fetchInt(path, "SELECT count(*) FROM outbox WHERE status = 'failed'") == 2)
    }

    @Test func retryingEveryFailedTextLeavesWhatAStopRefused() async throws {
        // Given a text to Ivan (its earlier attempt met a 30007), a conversation reply to Olga that Twilio's outage
        // made fail and a text to her that Twilio refused (21211), and a text and a reply to Pavel undelivered
        let (path, store) = try store(queueing: [
            (to: "+14155550101", body: "meeting moved", purpose: "direct"),
            (to: "+14155550102", body: "Reply with your first name.", purpose: "reply"),
            (to: "+14155550102", body: "hello Olga", purpose: "direct"), (to: "+14155550103", body: "hello Pavel", purpose: "direct"),
            (to: "+14155550103", body: "Reply with your email.", purpose: "reply"),
        ])
        try executeSQL(
            path,
            """
            UPDATE outbox SET errorCode = 30007, errorMessage = 'filtered' WHERE id = 1;
            UPDATE outbox SET status = 'failed', errorCode = 20500, errorMessage = 'gave up after 8 attempts' WHERE id = 2;
            UPDATE outbox SET status = 'failed', errorCode = 21211, errorMessage = 'invalid To' WHERE id = 3;
            UPDATE outbox SET status = 'undelivered', errorCode = 30008 WHERE id IN (4, 5);
            """
        )
        // When Ivan texts STOP before his texts go, the worker refuses them; later he texts START
        try await store.setConsent(phone: "+14155550101", optedOut: true, note: "STOP")
        #expect(try await store.claimOutbox(now: t0, limit: 10).isEmpty)
        let refusedRow = try #require(try fetchRow(path, "SELECT status, errorCode, errorMessage FROM outbox WHERE id = 1"))
        #expect(refusedRow["status"] as String == "failed" && refusedRow["errorCode"] as Int? == nil)
        #expect(refusedRow["errorMessage"] as String == "not sent: the recipient opted out")
        try await store.setConsent(phone: "+14155550101", optedOut: false, note: "START")
        // (one of Ivan's texts had met a timeout before: it is uncertain, and refused as well)
        try await store.setConsent(phone: "+14155550101", optedOut: true, note: "STOP")
        try queue(path, [(to: "+14155550101", body: "maybe sent", purpose: "direct")])
        try executeSQL(path, "UPDATE outbox SET needsReconcile = 1, attempts = 1 WHERE id = 6")
        #expect(try await store.claimOutbox(now: t0, limit: 10).isEmpty)
        try await store.setConsent(phone: "+14155550101", optedOut: false, note: "START")
        let uncertain = try await store.retryOutbox(ids: [], status: .uncertain)
        #expect(uncertain.queued.isEmpty && uncertain.refused.map(\.id) == [6], "\(uncertain)")
        // Then every failed text is retried, Olga's reply, but what Ivan stopped, and what Twilio refused for good (an
        // invalid number: twilio.md §10.14, never retried), which are skipped, said why
        let failed = try await store.retryOutbox(ids: [], status: .failed)
        #expect(failed.queued == [2])
        #expect(failed.refused.map(\.id) == [1, 3])
        #expect(failed.refused[0].reason == "row 1 was not sent because +14155550101 had opted out: action2phone outbox retry 1 sends it")
        #expect(
            failed.refused[1].reason
                == "row 3 failed with Twilio error 21211 (invalid 'To' number), and would again: action2phone outbox retry 3 sends it anyway"
        )
        // And every undelivered one too
        let undelivered = try await store.retryOutbox(ids: [], status: .undelivered)
        #expect(undelivered.queued == [4, 5] && undelivered.refused.isEmpty)
        // And by id, an operator sends what they name
        #expect(try await store.retryOutbox(ids: [1, 3]).queued == [1, 3])
        // And a text sent in local mode after a retry keeps no error from before it
        var sent = 0
        while let message = try await store.claimOutbox(now: t0, limit: 1).first {
            try await store.completeOutbox(id: message.id, outcome: .simulated, now: t0)
            sent += 1
        }
        #expect(sent == 5)
        #expect(try fetchInt(path, "SELECT count(*) FROM outbox WHERE status = 'simulated' AND errorCode IS NULL AND errorMessage IS NULL") == 5)
    }

    @Test func aTextInFlightWhenItsRecipientDeletesTheirAccountIsNeverSentAgain() async throws {
        // Given two texts being sent, to two people, and a third person's text waiting to retry after a 5xx
        let (path, store) = try store(queueing: [
            (to: "+14155550101", body: "your ballot is 42", purpose: "direct"), (to: "+14155550102", body: "hi", purpose: "reply"),
            (to: "+14155550103", body: "maybe sent", purpose: "direct"),
        ])
        try executeSQL(path, "UPDATE outbox SET needsReconcile = 1, attempts = 1, nextAttemptAt = '2099-01-01 00:00:00.000' WHERE id = 3")
        let claimed = try await store.claimOutbox(now: t0, limit: 2)
        #expect(claimed.count == 2)
        // When both delete their accounts meanwhile
        try await DatabaseQueue(path: path).write { db in
            for (id, phone) in [(1, "+14155550101"), (2, "+14155550102"), (3, "+14155550103")] {
                try db.execute(
                    sql: """
                        INSERT INTO users (id, phone, firstName, lastName, email, passcodeHash, passcodeSalt, passcodeIterations, createdAt)
                        VALUES (?, ?, 'A', 'B', ?, x'00', x'00', 1000, ?)
                        """,
                    arguments: [id, phone, "p\(id)@example.org", t0]
                )
                try SQLiteStore.deleteAccount(db, userId: Int64(id), now: t0)
            }
        }
        // And the sends end in errors that would queue them again
        try await store.completeOutbox(id: 1, outcome: .retry(at: t0, code: 20500, message: "Internal Server Error", reconcile: true), now: t0)
        try await store.completeOutbox(id: 2, outcome: .retry(at: t0, code: 20429, message: "Too Many Requests", reconcile: false), now: t0)
        // Then neither is queued (the next claim would have sent "[deleted]"): uncertain when the first may have
        // reached Twilio, else failed
        let rows = try fetchRows(path, "SELECT status, body, errorMessage FROM outbox ORDER BY id")
        #expect(rows.map { $0["status"] as String } == ["uncertain", "failed", "uncertain"])
        #expect(
            rows.allSatisfy { ($0["body"] as String) == "[deleted]" && ($0["errorMessage"] as String).hasPrefix("recipient deleted their account") }
        )
        #expect(try await store.claimNextOutbox(now: t0.addingTimeInterval(3600)) == nil)
    }

    @Test func textsQueuedBeforeTheNumberWasSuppressedAreNotSentExceptReplies() async throws {
        // Given a broadcast, a direct message (waiting to retry after a 5xx: it may be at Twilio already) and a reply
        // queued to a number that Twilio then reported unreachable
        let (path, store) = try store(queueing: [
            (to: "+14155550101", body: "broadcast", purpose: "broadcast"), (to: "+14155550101", body: "direct", purpose: "direct"),
            (to: "+14155550101", body: "reply", purpose: "reply"),
        ])
        try executeSQL(
            path,
            "INSERT INTO phones (phone, suppressed, suppressedReason, updatedAt) VALUES ('+14155550101', 1, 'Twilio error 30003', '2026-11-25 09:00:00.000')"
        )
        try executeSQL(path, "UPDATE outbox SET needsReconcile = 1, attempts = 1 WHERE id = 2")
        // Then only the reply is sent; the others are not, saying why (the one that may have been sent is uncertain)
        #expect(try await sendAll(store) { try await store.claimNextOutbox(now: t0) } == ["reply"])
        let rows = try fetchRows(path, "SELECT status, errorMessage FROM outbox ORDER BY id")
        #expect(rows.map { $0["status"] as String } == ["failed", "uncertain", "sent"])
        #expect((rows[0]["errorMessage"] as String).hasPrefix("not sent: the number cannot receive texts"))
    }

    @Test func a21610InAStatusCallbackOptsOutOnce() async throws {
        // Given a text Twilio accepted (a Messaging Service reports the opt-out later, in a callback)
        let (path, store) = try store(queueing: [(to: "+14155550101", body: "x", purpose: "direct")])
        let m = try #require(try await store.claimNextOutbox(now: t0))
        try await store.completeOutbox(id: m.id, outcome: .accepted(sid: "SM21610"), now: t0)
        // When the failed callback says 21610, twice
        for _ in 0..<2 {
            let callback = try StatusCallback(fields: [.init("MessageSid", "SM21610"), .init("MessageStatus", "failed"), .init("ErrorCode", "21610")])
            #expect(try await store.applyStatusCallback(callback, now: t0))
        }
        // Then the number is opted out, with one consent-log entry from Twilio
        #expect(try fetchInt(path, "SELECT optedOut FROM phones WHERE phone = '+14155550101'") == 1)
        #expect(try fetchInt(path, "SELECT count(*) FROM consentLog WHERE phone = '+14155550101' AND action = 'optOut' AND source = 'twilio'") == 1)
        #expect(try fetchRow(path, "SELECT status FROM outbox")?["status"] as String? == "failed")
        // And a repeat arriving after the person opted back in does not opt them out again
        try await DatabaseQueue(path: path).write {
            try SQLiteStore.setOptedOut($0, phone: "+14155550101", optedOut: false, source: "keyword", text: "START", now: t0)
        }
        let repeated = try StatusCallback(fields: [.init("MessageSid", "SM21610"), .init("MessageStatus", "failed"), .init("ErrorCode", "21610")])
        #expect(try await store.applyStatusCallback(repeated, now: t0))
        #expect(try fetchInt(path, "SELECT optedOut FROM phones WHERE phone = '+14155550101'") == 0)
        #expect(try fetchInt(path, "SELECT count(*) FROM consentLog WHERE phone = '+14155550101'") == 2)
    }

    @Test func twilio21610OptsOutAndEndsTheLogin() async throws {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        try queue(path, [(to: "+14155550101", body: "x", purpose: "direct")])
        try executeSQL(
            path,
            "INSERT INTO conversations (phone, state, updatedAt) VALUES ('+14155550101', '{\"step\":{\"idle\":{}},\"loggedInAt\":1795597200}', '2026-11-25 09:00:00.000')"
        )
        #expect(try await store.conversationSnapshot(phone: "+14155550101").0.isLoggedIn)  // given: logged in
        let m = try #require(try await store.claimNextOutbox(now: t0))
        try await store.completeOutbox(id: m.id, outcome: .failed(code: 21610, message: "unsubscribed"), now: t0)
        let (state, _) = try await store.conversationSnapshot(phone: "+14155550101")
        #expect(!state.isLoggedIn)
        #expect(try fetchInt(path, "SELECT optedOut FROM phones WHERE phone = '+14155550101'") == 1)
    }

    @Test func aLookupThatFailsLeavesTheTextUncertainNotFailed() {
        let p = DeliveryPolicy(maxAttempts: 3, baseDelay: 1, maxDelay: 10, jitter: 1...1)
        let refused = RESTFailure.http(status: 401, code: 20003, message: "Authenticate", moreInfo: nil, retryAfter: nil)
        #expect(p.outcome(of: .failure(refused), attempts: 1, now: t0, mayAlreadyExist: true) == .uncertain(code: 20003, message: "Authenticate"))
        #expect(p.outcome(of: .failure(refused), attempts: 1, now: t0) == .failed(code: 20003, message: "Authenticate"))
    }
}

@Suite("Store: outbox edge cases from review")
struct OutboxReviewTests {
    @Test func aRetriedOlderRowWaitsWhileANewerOneToTheSameNumberIsSending() async throws {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        try OutboxStoreTests().queue(
            path,
            [(to: "+14155550101", body: "old", purpose: "reply"), (to: "+14155550101", body: "new", purpose: "reply")]
        )
        try executeSQL(path, "UPDATE outbox SET status = 'failed' WHERE id = 1; UPDATE outbox SET status = 'sending' WHERE id = 2")
        _ = try await store.retryOutbox(ids: [1])
        #expect(try await store.claimNextOutbox(now: t0) == nil)
        try await store.completeOutbox(id: 2, outcome: .accepted(sid: "SM2"), now: t0)
        #expect(try await store.claimNextOutbox(now: t0)?.id == 1)
    }

    @Test func aSidAnotherRowHoldsMakesTheRowUncertainNotAnError() async throws {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        try OutboxStoreTests().queue(path, [(to: "+14155550101", body: "a", purpose: "direct"), (to: "+14155550102", body: "b", purpose: "direct")])
        let first = try #require(try await store.claimNextOutbox(now: t0))
        try await store.completeOutbox(id: first.id, outcome: .accepted(sid: "SMsame"), now: t0)
        let second = try #require(try await store.claimNextOutbox(now: t0))
        try await store.completeOutbox(
            id: second.id,
            outcome: .found(sid: "SMsame", twilioStatus: "sent", errorCode: nil, errorMessage: nil),
            now: t0
        )
        #expect(try fetchRow(path, "SELECT status, twilioSid FROM outbox WHERE id = \(second.id)")?["status"] as String? == "uncertain")
    }

    @Test func aTextHashedAsAPasscodeIsRedactedWhateverTheStateBecame() throws {
        var state = ConversationState(lastActivity: t0)  // the flow was reset while PBKDF2 ran
        let d = try engine.reduce(&state, Inbound(text: "hunter22secret"), facts: facts(), now: t0, passcodeText: true)
        #expect(d.loggedBody == "[redacted]")
        #expect(!d.replies.joined().lowercased().contains("hunter22"))
    }
}

@Suite("Looking a text up at Twilio")
struct ReconcileMatchTests {
    @Test func theTextIsRecognisedAfterTwilioChangedItOnTheWay() {
        let ours = "It’s time — bring the “red” flags… now"
        // exactly; on a trial account; after Smart Encoding; both
        #expect(TwilioSender.sameText(twilio: ours, ours: ours))
        #expect(TwilioSender.sameText(twilio: "Sent from your Twilio trial account - " + ours, ours: ours))
        #expect(TwilioSender.sameText(twilio: "It's time - bring the \"red\" flags... now", ours: ours))
        #expect(TwilioSender.sameText(twilio: "Sent from your Twilio trial account - It's time - bring the \"red\" flags... now", ours: ours))
        // but never another text
        #expect(!TwilioSender.sameText(twilio: "It's time - bring the \"blue\" flags... now", ours: ours))
        #expect(!TwilioSender.sameText(twilio: "Harvest at dawn", ours: "Harvest at dusk"))
        #expect(!TwilioSender.sameText(twilio: "Oh, Harvest at dawn", ours: "Harvest at dawn"))
    }
}
