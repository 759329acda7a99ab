import Foundation
import GRDB
import InMemoryLogging
import Logging
import ServiceLifecycle
import Testing

@testable import Action2PhoneCore
@testable import Action2PhoneServer
@testable import TwilioKit

/// Runs the real outbox worker with the real REST client against a local fake of Twilio's API.
struct OutboxHarness {
    let path: String
    let store: SQLiteStore

    init() throws {
        path = testScratch.appendingPathComponent("a2p-outbox-\(UUID().uuidString)/test.sqlite").path
        store = try SQLiteStore.open(path: path)
    }

    func client(_ base: String, timeout: TimeInterval = 5) -> TwilioRESTClient {
        FakeTwilio.client(base, timeout: timeout, statusCallback: "https://bot.example.org/sms/status")
    }

    static let fastPolicy = DeliveryPolicy(maxAttempts: 4, baseDelay: 0.05, maxDelay: 2, jitter: 1...1)

    /// Queues texts directly, as the conversation or the CLI would.
    func enqueue(_ texts: [(to: String, body: String)]) throws {
        try DatabaseQueue(path: path).write { db in
            for t in texts {
                try db.execute(
                    sql: "INSERT INTO outbox (\"to\", body, purpose, status, createdAt, updatedAt) VALUES (?, ?, 'direct', 'queued', ?, ?)",
                    arguments: [t.to, t.body, Date(), Date()]
                )
            }
        }
    }

    /// Registers `count` people (ids 1…count) and records a broadcast to them whose fan-out has not begun.
    func recordUnfinishedBroadcast(toPeople count: Int) async throws {
        try await DatabaseQueue(path: path).write { db in
            try db.execute(
                sql: """
                    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
                    INSERT INTO users (phone, firstName, lastName, email, passcodeHash, passcodeSalt, passcodeIterations, createdAt)
                    SELECT printf('+1415%07d', i), 'C', 'N' || i, 'c' || i || '@example.org', x'00', x'00', 1000, '2026-11-25 09:00:00.000' FROM n
                    """,
                arguments: [count]
            )
            try db.execute(sql: "INSERT INTO broadcasts (body, createdAt, lastUserId) VALUES ('Harvest at dawn', ?, ?)", arguments: [Date(), count])
        }
    }

    func rows() throws -> [Row] {
        try DatabaseQueue(path: path).read { try Row.fetchAll($0, sql: "SELECT * FROM outbox ORDER BY id") }
    }

    func scalar(_ sql: String) throws -> Int {
        try DatabaseQueue(path: path).read { try Int.fetchOne($0, sql: sql) ?? -1 }
    }

    /// Runs `worker` until no row is `queued` or `sending` (or `timeout`), then shuts it down gracefully.
    func run(_ worker: OutboxWorker, timeout: Duration = .seconds(60), until done: (() async throws -> Bool)? = nil) async throws {
        let group = ServiceGroup(configuration: .init(services: [worker], logger: Logger(label: "test")))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let deadline = ContinuousClock.now.advanced(by: timeout)
            let finished = done ?? { try scalar("SELECT count(*) FROM outbox WHERE status IN ('queued', 'sending')") == 0 }
            while ContinuousClock.now < deadline, try await !finished() {
                try await Task.sleep(for: .milliseconds(20))
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }
}

/// Delegates to a real sender, noting when each send starts.
struct RecordingSender: MessageSender {
    /// One call to Twilio: a send or a lookup, to whom, and when the worker made it.
    struct Call: Sendable {
        var isLookup: Bool
        var to: String
        var at: ContinuousClock.Instant
    }

    let inner: any MessageSender
    let onSend: @Sendable () -> Void
    /// How much longer each lookup takes than the fake's answer (Twilio's list can be slow).
    let lookupDelay: Duration
    let calls = Locked<[Call]>([])
    init(_ inner: any MessageSender, lookupDelay: Duration = .zero, onSend: @escaping @Sendable () -> Void = {}) {
        self.inner = inner
        self.lookupDelay = lookupDelay
        self.onSend = onSend
    }
    func send(to: String, body: String) async -> Result<SentMessage, RESTFailure> {
        onSend()
        calls.withLock { $0.append(Call(isLookup: false, to: to, at: .now)) }
        return await inner.send(to: to, body: body)
    }
    func findExisting(to: String, body: String, since: Date) async -> Result<[MessageResource], RESTFailure> {
        calls.withLock { $0.append(Call(isLookup: true, to: to, at: .now)) }
        try? await Task.sleep(for: lookupDelay)
        return await inner.findExisting(to: to, body: body, since: since)
    }
    func checkCredentials() async -> CredentialsCheck { await inner.checkCredentials() }
}

@Suite("Outbox worker against a fake Twilio API")
struct OutboxWorkerTests {
    let logger = Logger(label: "test")

    func worker(_ h: OutboxHarness, _ base: String, rate: Double = 50, timeout: TimeInterval = 5, maxAttempts: Int = 4) -> OutboxWorker {
        var policy = OutboxHarness.fastPolicy
        policy.maxAttempts = maxAttempts
        return OutboxWorker(
            store: h.store,
            sender: TwilioSender(client: h.client(base, timeout: timeout)),
            rate: rate,
            policy: policy,
            pollInterval: .milliseconds(10),
            logger: logger
        )
    }

    @Test func aRedirectIsNotFollowedSoTheCredentialsNeverLeaveTheConfiguredAPI() async throws {
        // Given an API base that answers every request with a redirect to another server
        let elsewhere = FakeTwilio()
        let redirecting = FakeTwilio()
        let h = try OutboxHarness()
        try await elsewhere.run { elsewhereBase in
            redirecting.redirect(to: elsewhereBase)
            try await redirecting.run { base in
                let client = h.client(base)
                // When the account is read and a text is created through it
                let account = await client.fetchAccount()
                let created = await client.createMessage(to: "+14155553000", body: "Harvest")
                // Then neither request is repeated to the other server (with the Authorization header), and each fails
                // as not sent: the outbox pauses and tries again later, as for an answer that is not Twilio's
                for result in [account.map { _ in () }, created.map { _ in () }] {
                    guard case .failure(let failure) = result, case .transport(.notSent, let detail) = failure else {
                        Issue.record("expected a failure as not sent, got \(result)")
                        continue
                    }
                    #expect(detail.contains("HTTP 307, a redirect; not followed"), "\(detail)")
                    #expect(DeliveryPolicy.isOutage(failure))
                }
            }
        }
        #expect(elsewhere.accountFetches == 0 && elsewhere.createRequests == 0 && elsewhere.created.isEmpty)
    }

    @Test func sendsEachTextOnceAtTheConfiguredRateEvenlySpaced() async throws {
        // Given 12 texts queued and a rate of 10 per second
        let h = try OutboxHarness()
        try h.enqueue((0..<12).map { (to: "+1415555\(String(format: "%04d", 3000 + $0))", body: "Harvest report \($0)") })
        let fake = FakeTwilio()
        let starts = Locked<[ContinuousClock.Instant]>([])
        try await fake.run { base in
            // When the worker runs
            let recording = RecordingSender(TwilioSender(client: h.client(base))) { starts.withLock { $0.append(.now) } }
            let worker = OutboxWorker(
                store: h.store,
                sender: recording,
                rate: 10,
                policy: OutboxHarness.fastPolicy,
                pollInterval: .milliseconds(10),
                logger: logger
            )
            try await h.run(worker)
        }
        // Then each was created once, with the sender, the body and the status callback URL
        let created = fake.created
        #expect(created.count == 12)
        #expect(Set(created.map(\.to)).count == 12)
        #expect(
            created.allSatisfy {
                $0.from == FakeTwilio.from && $0.statusCallback == "https://bot.example.org/sms/status" && $0.body.hasPrefix("Harvest report")
            }
        )
        // And the worker kept to 1/rate = 100 ms: a slot lost to a late wake-up may be made up, but at most
        // 20 ms is ever owed, so no run of sends comes faster than the rate allows, and twelve sends span at
        // least eleven intervals less that. (The times are taken when each send's task starts: on a machine as
        // loaded as the whole suite makes it, that can lag its slot by tens of milliseconds.)
        let started = starts.current
        #expect(started.count == 12)
        for i in started.indices {
            for j in started.indices where j > i {
                let allowed = Duration.milliseconds(100 * (j - i) - 20 - 60)  // 60 ms for the start of the send task
                #expect(started[j] - started[i] >= allowed, "sends \(i) to \(j) took \(started[j] - started[i])")
            }
        }
        // And Twilio saw them arrive spread out, not in a burst. (The exact spacing is checked on the starts above:
        // an arrival also waits for loopback and the fake's scheduling, and the first one for a new connection, so
        // on a loaded machine the arrivals' span can be shorter than the starts'. One run under load measured
        // 509.5 ms against 550 ms of intervals at 20 per second.)
        let arrivals = fake.state.withLock { $0.postsByTo.values.flatMap { $0 } }.sorted()
        #expect(arrivals.last! - arrivals.first! >= .milliseconds(8 * 100))
        // And every row is sent with Twilio's SID
        let rows = try h.rows()
        #expect(rows.allSatisfy { $0["status"] as String == "sent" && $0["attempts"] as Int == 1 })
        #expect(Set(rows.compactMap { $0["twilioSid"] as String? }) == Set(created.map(\.sid)))
    }

    @Test func aBroadcastLeftUnfinishedIsFinishedWithoutAnyWebhook() async throws {
        // Given a broadcast recorded and cut short (by a stop, or an operator's broadcast command that ended), to 700 people
        let h = try OutboxHarness()
        try await h.recordUnfinishedBroadcast(toPeople: 700)
        // When the worker runs, with no webhook coming in
        let worker = OutboxWorker(
            store: h.store,
            sender: SimulatedSender(logger: logger),
            rate: 10_000,
            pollInterval: .milliseconds(10),
            logger: logger
        )
        // (a deadline, not a measure: it takes about a second, far longer on a machine busy building)
        try await h.run(worker, timeout: .seconds(60)) { try h.scalar("SELECT count(*) FROM outbox WHERE status = 'simulated'") == 700 }
        // Then everyone has it once, and it was sent
        #expect(try h.scalar("SELECT count(*) FROM broadcasts WHERE finishedAt IS NULL") == 0)
        #expect(try h.scalar("SELECT count(DISTINCT userId) FROM inbox") == 700)
        #expect(try h.scalar("SELECT count(*) FROM outbox WHERE status = 'simulated'") == 700)
    }

    @Test func stoppingDoesNotWaitForAWholeFanOut() async throws {
        // Given a broadcast to 100,000 people left unfinished
        let h = try OutboxHarness()
        try await h.recordUnfinishedBroadcast(toPeople: 100_000)
        // When the server is told to stop as soon as the worker has written the first chunk
        let worker = OutboxWorker(store: h.store, sender: SimulatedSender(logger: logger), rate: 1, pollInterval: .milliseconds(10), logger: logger)
        try await h.run(worker) { try h.scalar("SELECT doneThroughUserId FROM broadcasts") > 0 }
        // Then it stopped between chunks, not after all two hundred, and the rest is left for the next start
        let done = try h.scalar("SELECT doneThroughUserId FROM broadcasts")
        #expect(done > 0 && done < 100_000, "\(done)")
        #expect(try h.scalar("SELECT count(*) FROM inbox") == done)
    }

    @Test func anErasureLeftUnfinishedIsFinishedThoughABroadcastCannotBe() async throws {
        // Given a deletion whose erasure of an admin's rows another process left unfinished (a FIND named Boris), and
        // a broadcast whose fan-out fails every time
        let h = try OutboxHarness()
        try await h.recordUnfinishedBroadcast(toPeople: 10)
        try await DatabaseQueue(path: h.path).write { db in
            try db.execute(sql: "CREATE TRIGGER inbox_refused BEFORE INSERT ON inbox BEGIN SELECT RAISE(ABORT, 'inbox refused'); END")
            try db.execute(
                sql: """
                    INSERT INTO adminPhones (phone) VALUES ('+14155550101');
                    INSERT INTO inbound (messageSid, "from", "to", body, params, reply, receivedAt)
                    VALUES ('SM1', '+14155550101', '+15005550006', 'FIND bor', '[]', '<Response><Message>Boris X, +14155550102</Message></Response>',
                            '2026-11-25 09:00:00.000'),
                           ('SM2', '+14155550101', '+15005550006', 'USERS', '[]', '<Response><Message>3 registered</Message></Response>',
                            '2026-11-25 09:00:00.000');
                    INSERT INTO erasures (phone, email, name, createdAt, outboxThrough, inboundThrough)
                    VALUES ('+14155550102', 'boris@example.org', 'Boris X', '2026-11-25 09:00:00.000', 0, 2);
                    """
            )
        }
        // When the server runs
        let worker = OutboxWorker(store: h.store, sender: SimulatedSender(logger: logger), rate: 1, pollInterval: .milliseconds(10), logger: logger)
        try await h.run(worker) { try h.scalar("SELECT count(*) FROM erasures") == 0 }
        // Then the erasure is finished: the FIND is erased, the rest kept
        #expect(try h.scalar("SELECT count(*) FROM erasures") == 0)
        #expect(try h.scalar("SELECT count(*) FROM broadcasts WHERE finishedAt IS NULL") == 1)
        #expect(try h.scalar("SELECT count(*) FROM inbound WHERE messageSid = 'SM1' AND body = '[deleted]' AND reply NOT LIKE '%Boris%'") == 1)
        #expect(try h.scalar("SELECT count(*) FROM inbound WHERE messageSid = 'SM2' AND body = 'USERS'") == 1)
    }

    @Test func aStatusCallbackKeptWhileTheDatabaseWasFullIsStoredByTheServer() async throws {
        // Given a status callback that came while the database was full (kept in memory), and room again since
        let h = try OutboxHarness()
        try await h.store.writer.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA max_page_count = \(try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0)")
        }
        let callback = try StatusCallback(fields: [
            .init("MessageSid", "SM" + String(repeating: "b", count: 32)), .init("MessageStatus", "undelivered"), .init("ErrorCode", "30003"),
            .init("ErrorMessage", String(repeating: "z", count: 100_000)),
        ])
        await #expect(throws: (any Error).self) { try await h.store.applyStatusCallback(callback, now: Date()) }
        try await h.store.writer.writeWithoutTransaction { try $0.execute(sql: "PRAGMA max_page_count = 1073741823") }
        // When the server runs
        let worker = OutboxWorker(store: h.store, sender: SimulatedSender(logger: logger), rate: 1, pollInterval: .milliseconds(10), logger: logger)
        try await h.run(worker) { try h.scalar("SELECT count(*) FROM pendingCallbacks") == 1 }
        // Then the callback is stored, once
        #expect(try h.scalar("SELECT count(*) FROM pendingCallbacks WHERE status = 'undelivered' AND errorCode = 30003") == 1)
    }

    @Test func aLookupThatFindsNothingLeavesTheSendToALaterSlot() async throws {
        // Given, at one send a second, a text whose earlier attempt may have reached Twilio (it is looked up first,
        // and the lookup takes 100 ms) and another text
        let h = try OutboxHarness()
        try h.enqueue((0..<2).map { (to: "+1415555\(4000 + $0)", body: "Five-year plan, part \($0)") })
        try await DatabaseQueue(path: h.path).write {
            try $0.execute(sql: "UPDATE outbox SET attempts = 1, needsReconcile = 1, firstAttemptAt = ? WHERE id = 1", arguments: [Date()])
        }
        let fake = FakeTwilio()
        let recording = Locked<RecordingSender?>(nil)
        try await fake.run { base in
            let sender = RecordingSender(TwilioSender(client: h.client(base)), lookupDelay: .milliseconds(100))
            recording.withLock { $0 = sender }
            let worker = OutboxWorker(
                store: h.store,
                sender: sender,
                rate: 1,
                policy: OutboxHarness.fastPolicy,
                pollInterval: .milliseconds(10),
                logger: logger
            )
            try await h.run(worker)
        }
        // Then it was not there, and was sent once like the other, in a slot of its own: a whole interval (1 s, less
        // the 20 ms the schedule may make up) after its lookup began. Sent straight after its lookup, it went out
        // 100 ms after it, next to the other text's slot. (Half the interval is the bound: a loaded machine can start
        // a task late.)
        #expect(fake.created.count == 2 && Set(fake.created.map(\.to)).count == 2)
        #expect(fake.state.withLock { $0.lists } == 1)
        let calls = try #require(recording.current).calls.current.filter { $0.to == "+14155554000" }
        try #require(calls.map(\.isLookup) == [true, false])
        #expect(calls[1].at - calls[0].at >= .milliseconds(500), "\(calls.map(\.at))")
        let rows = try h.rows()
        #expect(
            rows.allSatisfy { ($0["status"] as String) == "sent" && ($0["attempts"] as Int) <= 2 && ($0["needsReconcile"] as Bool) == false },
            "\(rows)"
        )
    }

    @Test func theLookupReadsBackToTheFirstAttemptPageByPage() async throws {
        // Given two texts whose first attempt, ten minutes ago, may have reached Twilio: since then Twilio holds the
        // first one and 60 newer messages to its number (two pages), and 600 newer messages to the second number
        let h = try OutboxHarness()
        try h.enqueue([(to: "+14155556001", body: "the original"), (to: "+14155556002", body: "lost in the crowd")])
        let firstAttempt = Date().addingTimeInterval(-600)
        try await DatabaseQueue(path: h.path).write {
            try $0.execute(sql: "UPDATE outbox SET attempts = 1, needsReconcile = 1, firstAttemptAt = ?", arguments: [firstAttempt])
        }
        let fake = FakeTwilio()
        func message(_ to: String, _ body: String, _ at: Date) -> FakeTwilio.Created {
            .init(sid: "SM" + Crypto.hex(Crypto.randomBytes(16)), to: to, from: FakeTwilio.from, body: body, statusCallback: nil, at: .now, date: at)
        }
        let original = message("+14155556001", "the original", firstAttempt.addingTimeInterval(1))
        fake.state.withLock { s in
            s.created.append(original)
            for i in 0..<60 { s.created.append(message("+14155556001", "later \(i)", firstAttempt.addingTimeInterval(100 + Double(i)))) }
            for i in 0..<600 { s.created.append(message("+14155556002", "other \(i)", firstAttempt.addingTimeInterval(100 + Double(i) / 2))) }
        }
        try await fake.run { base in try await h.run(worker(h, base)) }
        // Then the first is found on the second page and not sent again; for the second, ten pages were not enough to
        // tell, so it is left to an operator rather than risk a second text
        #expect(fake.created.count == 661)
        let rows = try h.rows()
        #expect(rows[0]["status"] as String == "sent" && rows[0]["twilioSid"] as String? == original.sid, "\(rows[0])")
        #expect(rows[1]["status"] as String == "uncertain", "\(rows[1])")
        #expect((rows[1]["errorMessage"] as String).contains("more than 500 messages"))
        #expect(fake.state.withLock { $0.lists } == 2 + 10)
    }

    @Test func permanentErrorsFailAtOnceWithTwilioCodeAndMessage() async throws {
        let h = try OutboxHarness()
        try h.enqueue([(to: "+15005550001", body: "a"), (to: "+15005550004", body: "b"), (to: "+15005550009", body: "c")])
        let fake = FakeTwilio()
        try await fake.run { base in try await h.run(worker(h, base)) }
        let rows = try h.rows()
        #expect(rows.map { $0["status"] as String } == ["failed", "failed", "failed"])
        #expect(rows.map { $0["errorCode"] as Int? } == [21211, 21610, 21614])
        #expect(rows.map { $0["attempts"] as Int } == [1, 1, 1])
        #expect((rows[0]["errorMessage"] as String).contains("not a valid phone number"))
        // 21610 opts the number out (consent log source twilio); 21614 suppresses it
        #expect(try h.scalar("SELECT optedOut FROM phones WHERE phone = '+15005550004'") == 1)
        #expect(try h.scalar("SELECT count(*) FROM consentLog WHERE phone = '+15005550004' AND action = 'optOut' AND source = 'twilio'") == 1)
        #expect(try h.scalar("SELECT suppressed FROM phones WHERE phone = '+15005550009'") == 1)
        #expect(fake.created.isEmpty)
    }

    @Test func tooManyRequestsHonoursRetryAfter() async throws {
        let h = try OutboxHarness()
        try h.enqueue([(to: "+15005550429", body: "patience")])
        let fake = FakeTwilio()
        try await fake.run { base in try await h.run(worker(h, base)) }
        let posts = fake.posts(to: "+15005550429")
        #expect(posts.count == 3)
        #expect(zip(posts.dropFirst(), posts).allSatisfy { $0 - $1 >= .milliseconds(950) }, "Retry-After: 1 was not honoured: \(posts)")
        #expect(fake.created(to: "+15005550429").count == 1)
        #expect(try h.rows()[0]["status"] as String == "sent")
    }

    @Test func aFullSenderQueueAtTwilioIsWaitedOutNotFailed() async throws {
        // Given a text Twilio refuses twice with 21611 (the sender's queue holds 10 hours of texts: "later, slow down")
        let h = try OutboxHarness()
        try h.enqueue([(to: "+15005550008", body: "the harvest report")])
        let fake = FakeTwilio()
        try await fake.run { base in try await h.run(worker(h, base)) }
        // Then it is tried again after a pause, sent once, and no lookup was needed (the refusal created nothing)
        let posts = fake.posts(to: "+15005550008")
        try #require(posts.count == 3)
        #expect(posts[1] - posts[0] >= .milliseconds(45))
        #expect(fake.created(to: "+15005550008").count == 1)
        #expect(try h.rows()[0]["status"] as String == "sent")
        #expect(fake.state.withLock { $0.lists } == 0)
    }

    @Test func tooManyRequestsWithoutRetryAfterBacksOff() async throws {
        let h = try OutboxHarness()
        try h.enqueue([(to: "+15005550430", body: "patience")])
        let fake = FakeTwilio()
        try await fake.run { base in try await h.run(worker(h, base)) }
        let posts = fake.posts(to: "+15005550430")
        try #require(posts.count == 2)
        #expect(posts[1] - posts[0] >= .milliseconds(45))
        #expect(fake.created(to: "+15005550430").count == 1)
        #expect(fake.state.withLock { $0.lists } == 0)  // a 429 was never processed: no reconciliation needed
    }

    @Test func aTextGoesThroughAMessagingServiceWithoutANumber() async throws {
        // Given a worker sending through a Messaging Service
        let h = try OutboxHarness()
        try h.enqueue([(to: "+14155550100", body: "from the collective")])
        let fake = FakeTwilio()
        try await fake.run { base in
            let client = TwilioRESTClient(
                baseURL: base,
                accountSid: FakeTwilio.accountSid,
                authToken: FakeTwilio.authToken,
                sender: .messagingService("MG" + String(repeating: "a", count: 32)),
                timeout: 5
            )
            try await h.run(
                OutboxWorker(
                    store: h.store,
                    sender: TwilioSender(client: client),
                    rate: 50,
                    policy: OutboxHarness.fastPolicy,
                    pollInterval: .milliseconds(10),
                    logger: logger
                )
            )
        }
        // Then the create named the service and no From, and Twilio's answer ("accepted", from null) is a text sent
        let created = try #require(fake.created.first)
        #expect(created.messagingServiceSid == "MG" + String(repeating: "a", count: 32) && created.from == nil)
        #expect(fake.created.count == 1)
        let row = try h.rows()[0]
        #expect(row["status"] as String == "sent")
        #expect(row["twilioSid"] as String == created.sid)
    }

    @Test func aRequestTimeoutIsAnAnswerToNoRequestAndTheTextIsSentAgain() async throws {
        // Given Twilio answering a text's first POST 408 (it did not read the request; nothing was created)
        let h = try OutboxHarness()
        try h.enqueue([(to: "+15005550408", body: "again, comrade")])
        let fake = FakeTwilio()
        try await fake.run { base in try await h.run(worker(h, base)) }
        // Then the text is sent again, without a lookup first, and goes out once
        #expect(fake.posts(to: "+15005550408").count == 2)
        #expect(fake.created(to: "+15005550408").count == 1)
        #expect(try h.rows()[0]["status"] as String == "sent")
        #expect(fake.state.withLock { $0.lists } == 0)
    }

    @Test func anOutageLongerThanTheAttemptsSpanPausesTheOutboxAndLosesNothing() async throws {
        // Given 20 texts and a policy whose 4 attempts span 0.35 s, and a Twilio that answers 503 for 1.5 s
        let h = try OutboxHarness()
        let numbers = (0..<20).map { "+1415555\(2000 + $0)" }
        try h.enqueue(numbers.map { (to: $0, body: "the tractors are late, comrade") })
        let fake = FakeTwilio()
        // (and at least 4 requests, however slow the machine)
        fake.outage(for: .milliseconds(1500), atLeast: 4)
        try await fake.run { base in try await h.run(worker(h, base, maxAttempts: 4)) }
        // Then the outbox paused instead of spending every text's attempts at the send rate (20 × 4 requests):
        // one probe per pause (0.05, 0.1, 0.2, 0.4, 0.8 s), each on a text not tried yet (and a few sends that
        // started before the first 503 came back, when the machine is slow)
        #expect(fake.outageAnswers <= 15, "\(fake.outageAnswers) requests during the outage")
        let rows = try h.rows()
        #expect(rows.map { $0["status"] as String } == Array(repeating: "sent", count: 20))
        #expect(rows.allSatisfy { ($0["attempts"] as Int) <= 2 }, "\(rows.map { $0["attempts"] as Int })")
        for number in numbers { #expect(fake.created(to: number).count == 1, "\(number)") }
    }

    @Test func refusedCredentialsHoldEverySendInsteadOfFailingTheQueue() async throws {
        // Given 20 texts, and a Twilio that refuses the credentials (a rotated token) until it is fixed
        let h = try OutboxHarness()
        let numbers = (0..<20).map { "+1415555\(4000 + $0)" }
        try h.enqueue(numbers.map { (to: $0, body: "the committee meets at six") })
        let fake = FakeTwilio()
        fake.refuseCredentials(true)
        var duringHold: (failed: Int, queued: Int, creates: Int)? = nil
        try await fake.run { base in
            let worker = OutboxWorker(
                store: h.store,
                sender: TwilioSender(client: h.client(base)),
                rate: 10,
                policy: OutboxHarness.fastPolicy,
                pollInterval: .milliseconds(10),
                credentialsCheckInterval: .milliseconds(200),
                logger: logger
            )
            try await h.run(worker) {
                // When, after two checks found them still refused (about 0.4 s), the credentials are accepted again
                if duringHold == nil, fake.accountFetches >= 2 {
                    duringHold = (
                        try h.scalar("SELECT count(*) FROM outbox WHERE status = 'failed'"),
                        try h.scalar("SELECT count(*) FROM outbox WHERE status = 'queued'"),
                        fake.createRequests
                    )
                    fake.refuseCredentials(false)
                }
                return try duringHold != nil && h.scalar("SELECT count(*) FROM outbox WHERE status IN ('queued', 'sending')") == 0
            }
        }
        // Then during the refusal only the texts in flight failed (SPEC: a 4xx fails at once; at 10 a second that is
        // one, or a few on a slow machine), nothing more was sent, and the rest stayed queued
        let hold = try #require(duringHold)
        #expect((1...10).contains(hold.failed), "\(hold.failed) failed")
        #expect(hold.creates == hold.failed && hold.queued == 20 - hold.failed, "\(hold)")
        // And once they were accepted, the queued texts went out, each once; the failed ones keep Twilio's code
        let rows = try h.rows()
        #expect(rows.filter { $0["status"] as String == "sent" }.count == 20 - hold.failed)
        #expect(rows.filter { $0["status"] as String == "failed" }.allSatisfy { $0["errorCode"] as Int? == 20003 })
        for number in numbers { #expect(fake.created(to: number).count <= 1, "\(number)") }
    }

    @Test func healthzSaysWhenEverySendIsHeldForRefusedCredentials() async throws {
        // Given a server with its outbox worker, and a Twilio that refuses the credentials (a rotated token)
        let fake = FakeTwilio()
        fake.refuseCredentials(true)
        try await fake.run { base in
            let client = TwilioRESTClient(
                baseURL: base,
                accountSid: FakeTwilio.accountSid,
                authToken: FakeTwilio.authToken,
                sender: .number(FakeTwilio.from),
                timeout: 30
            )
            let services: (SQLiteStore) -> [any Service] = { store in
                [
                    OutboxWorker(
                        store: store,
                        sender: TwilioSender(client: client),
                        rate: 10,
                        policy: OutboxHarness.fastPolicy,
                        pollInterval: .milliseconds(10),
                        credentialsCheckInterval: .milliseconds(200),
                        logger: logger
                    )
                ]
            }
            try await TestServer.run(services: services) { server in
                func health() async throws -> (Int, String) {
                    let r = try await server.send("GET", "/healthz")
                    return (r.status, r.body)
                }
                func waitFor(_ body: String) async throws -> (Int, String) {
                    var last = try await health()
                    for _ in 0..<200 where last.1 != body {
                        try await Task.sleep(for: .milliseconds(50))
                        last = try await health()
                    }
                    return last
                }
                #expect(try await health() == (200, #"{"status":"ok","database":"ok"}"#))
                // When a text is refused with 20003, every send is held: /healthz says so, and stays 200 (the webhooks
                // are answered; a load balancer must not take the server away for it)
                try await DatabaseQueue(path: server.databasePath).write { db in
                    try db.execute(
                        sql: "INSERT INTO outbox (\"to\", body, purpose, status, createdAt, updatedAt) VALUES (?, ?, 'direct', 'queued', ?, ?)",
                        arguments: ["+14155554000", "the committee meets at six", Date(), Date()]
                    )
                }
                let held = try await waitFor(#"{"status":"ok","database":"ok","outbox":"held"}"#)
                #expect(held == (200, #"{"status":"ok","database":"ok","outbox":"held"}"#))
                // And once a check finds the credentials accepted again, the field goes
                fake.refuseCredentials(false)
                let lifted = try await waitFor(#"{"status":"ok","database":"ok"}"#)
                #expect(lifted == (200, #"{"status":"ok","database":"ok"}"#))
            }
        }
    }

    @Test func aCheckOfTheCredentialsReadsTheAccountWithoutSending() async throws {
        let h = try OutboxHarness()
        let fake = FakeTwilio()
        try await fake.run { base in
            let sender = TwilioSender(client: h.client(base, timeout: 30))  // a deadline only: the suite runs many servers at once
            #expect(await sender.checkCredentials() == .accepted)
            fake.setAccountStatus("suspended")
            #expect(await sender.checkCredentials() == .refused("the account is suspended"))
            fake.setAccountStatus("active")
            fake.refuseCredentials(true)
            guard case .refused(let reason) = await sender.checkCredentials() else { throw TestError("not refused") }
            #expect(reason.contains("401") && reason.contains("20003"))
            // An answer that is neither the account nor a refusal (here a 404) cannot tell
            let elsewhere = TwilioSender(client: h.client(base + "/elsewhere", timeout: 30))
            guard case .unknown = await elsewhere.checkCredentials() else { throw TestError("not unknown") }
        }
        #expect(fake.createRequests == 0)
    }

    @Test func lookupsThatWorkDoNotEndAPauseWhileCreatesFail() async throws {
        // Given 20 texts whose last attempt got a 5xx (each next attempt looks the text up first), and a Twilio
        // whose lookups work while creates answer 503 for 1.5 s
        let h = try OutboxHarness()
        let numbers = (0..<20).map { "+1415555\(3000 + $0)" }
        try h.enqueue(numbers.map { (to: $0, body: "the harvest is delayed") })
        try await DatabaseQueue(path: h.path).write {
            try $0.execute(sql: "UPDATE outbox SET attempts = 1, needsReconcile = 1, firstAttemptAt = ?", arguments: [Date()])
        }
        let fake = FakeTwilio()
        fake.outage(for: .milliseconds(1500), atLeast: 4, sparingLookups: true)
        try await fake.run { base in try await h.run(worker(h, base, maxAttempts: 8)) }
        // Then a lookup that found nothing did not reopen the outbox: the pauses still grew, one create per pause
        #expect(fake.outageAnswers <= 15, "\(fake.outageAnswers) creates during the outage")
        #expect(try h.rows().map { $0["status"] as String } == Array(repeating: "sent", count: 20))
        for number in numbers { #expect(fake.created(to: number).count == 1, "\(number)") }
    }

    /// (Also with Twilio's clock a minute behind this machine's: the message is created "a minute before" the attempt.)
    @Test(arguments: [0, -60] as [TimeInterval])
    func serverErrorAfterCreatingIsReconciledNotResent(twilioClockSkew: TimeInterval) async throws {
        let h = try OutboxHarness()
        try h.enqueue([(to: "+15005550500", body: "only once please")])
        let fake = FakeTwilio()
        fake.state.withLock { $0.clockSkew = twilioClockSkew }
        try await fake.run { base in try await h.run(worker(h, base)) }
        #expect(fake.posts(to: "+15005550500").count == 1)
        #expect(fake.created(to: "+15005550500").count == 1)
        let row = try h.rows()[0]
        #expect(row["status"] as String == "sent")
        #expect(row["twilioSid"] as String? == fake.created(to: "+15005550500").first?.sid)
    }

    @Test func anUncertainTextTheLookupCannotSettleIsSentWhenTheOperatorSaysSo() async throws {
        // Given a text left uncertain after an attempt that may have reached Twilio
        let h = try OutboxHarness()
        try h.enqueue([(to: "+14155550100", body: "the harvest is in"), (to: "+14155550101", body: "the harvest is in")])
        try await DatabaseQueue(path: h.path).write { db in
            try db.execute(
                sql: "UPDATE outbox SET status = 'uncertain', needsReconcile = 1, attempts = 3, firstAttemptAt = ?, errorMessage = 'cannot tell'",
                arguments: [Date().addingTimeInterval(-3600)]
            )
        }
        // When an operator retries one as it is, and the other without the lookup
        #expect(try await h.store.retryOutbox(ids: [1]).queued == [1])
        #expect(try await h.store.retryOutbox(ids: [2], lookUp: false).queued == [2])
        let fake = FakeTwilio()
        try await fake.run { base in try await h.run(worker(h, base)) }
        // Then the first is looked up before it is sent, the second sent at once; each goes out once
        #expect(fake.state.withLock { $0.lists } == 1)
        #expect(fake.created.count == 2)
        #expect(try h.rows().map { $0["status"] as String } == ["sent", "sent"])
    }

    @Test func aRetryTimeFurtherAheadThanAnyWaitIsDueNow() async throws {
        // Given texts whose retry times were written by a clock since set back (a day ahead) and by a working one
        let h = try OutboxHarness()
        try h.enqueue([(to: "+14155550100", body: "a day late"), (to: "+14155550101", body: "in a minute")])
        try await DatabaseQueue(path: h.path).write { db in
            try db.execute(sql: "UPDATE outbox SET nextAttemptAt = ? WHERE id = 1", arguments: [Date().addingTimeInterval(86_400)])
            try db.execute(sql: "UPDATE outbox SET nextAttemptAt = ? WHERE id = 2", arguments: [Date().addingTimeInterval(60)])
        }
        // Then the first is due now, and the second waits its minute
        let claimed = try await h.store.claimOutbox(now: Date(), limit: 10)
        #expect(claimed.map(\.id) == [1])
        #expect(try await h.store.claimOutbox(now: Date().addingTimeInterval(61), limit: 10).map(\.id) == [2])
    }

    @Test func serverErrorWithoutCreatingIsResentOnce() async throws {
        let h = try OutboxHarness()
        try h.enqueue([(to: "+15005550501", body: "second time lucky")])
        let fake = FakeTwilio()
        try await fake.run { base in try await h.run(worker(h, base)) }
        #expect(fake.posts(to: "+15005550501").count == 2)
        #expect(fake.created(to: "+15005550501").count == 1)
        #expect(fake.state.withLock { $0.lists } == 1)
        #expect(try h.rows()[0]["status"] as String == "sent")
    }

    @Test func reconciliationNeverAdoptsAnotherRowsMessage() async throws {
        // Given the same text twice to one number, the second POST failing with a 500 before Twilio created it
        let h = try OutboxHarness()
        try h.enqueue([(to: "+15005550502", body: "HELP reply"), (to: "+15005550502", body: "HELP reply")])
        let fake = FakeTwilio()
        try await fake.run { base in try await h.run(worker(h, base)) }
        // Then the lookup does not mistake the first text's message for the second's: both are sent, each once
        let rows = try h.rows()
        #expect(rows.map { $0["status"] as String } == ["sent", "sent"])
        #expect(fake.created(to: "+15005550502").count == 2)
        #expect(Set(rows.compactMap { $0["twilioSid"] as String? }).count == 2)
        #expect(fake.posts(to: "+15005550502").count == 3)
    }

    @Test func aRetriedUndeliveredTextIsSentAgainEvenWhenTheResendMeetsA500() async throws {
        // Given a text sent once and reported undelivered, then retried by an operator at once (within the lookup's
        // 15 s of slack), and a Twilio that answers the resend with a 500 before creating anything
        let h = try OutboxHarness()
        try h.enqueue([(to: "+15005550504", body: "the meeting moved")])
        let fake = FakeTwilio()
        try await fake.run { base in
            try await h.run(worker(h, base))
            let first = try #require(fake.created(to: "+15005550504").first)
            let callback = [FormField("MessageSid", first.sid), FormField("MessageStatus", "undelivered"), FormField("ErrorCode", "30008")]
            try await h.store.applyStatusCallback(StatusCallback(fields: callback), now: Date())
            #expect(try await h.store.retryOutbox(ids: [1]).queued == [1])
            try await h.run(worker(h, base))
            // Then the lookup after the 500 did not take the first message for the resend's: it was sent again
            #expect(fake.posts(to: "+15005550504").count == 3)
            #expect(fake.created(to: "+15005550504").count == 2)
            let row = try h.rows()[0]
            #expect(row["status"] as String == "sent")
            #expect(row["twilioSid"] as String? == fake.created(to: "+15005550504").last?.sid)
            // And a late callback about the first message changes nothing, and is not kept for later
            let late = [FormField("MessageSid", first.sid), FormField("MessageStatus", "delivered")]
            #expect(try await h.store.applyStatusCallback(StatusCallback(fields: late), now: Date()))
            #expect(try h.rows()[0]["status"] as String == "sent")
            #expect(try await DatabaseQueue(path: h.path).read { try Int.fetchOne($0, sql: "SELECT count(*) FROM pendingCallbacks") } == 0)
        }
    }

    @Test func anAnswerThatTricklesInIsCutOffByTheWholeRequestsDeadline() async throws {
        // Given a Twilio that creates the message and then answers a byte every 0.3 s (never idle for a whole second)
        let h = try OutboxHarness()
        try h.enqueue([(to: "+15005550505", body: "drip, drip")])
        let fake = FakeTwilio(slowDelay: .seconds(3))
        let started = ContinuousClock.now
        try await fake.run { base in try await h.run(worker(h, base, timeout: 1)) }
        // Then the send gave up after its deadline (twice the 1 s timeout), not after the whole trickle, and the
        // lookup found the message it had created: sent once
        #expect(fake.posts(to: "+15005550505").count == 1)
        #expect(fake.created(to: "+15005550505").count == 1)
        let row = try h.rows()[0]
        #expect(row["status"] as String == "sent")
        #expect(row["twilioSid"] as String? == fake.created(to: "+15005550505").first?.sid)
        #expect(ContinuousClock.now - started < .seconds(60))
    }

    @Test func timeoutAfterSendingIsReconciledNotResent() async throws {
        let h = try OutboxHarness()
        try h.enqueue([(to: "+15005550503", body: "slow and steady")])
        let fake = FakeTwilio(slowDelay: .seconds(3))
        try await fake.run { base in try await h.run(worker(h, base, timeout: 1)) }
        #expect(fake.posts(to: "+15005550503").count == 1)
        #expect(fake.created(to: "+15005550503").count == 1)
        #expect(try h.rows()[0]["status"] as String == "sent")
    }

    @Test func droppedConnectionsRetryThenEndUncertainNeverDuplicated() async throws {
        let h = try OutboxHarness()
        try h.enqueue([(to: "+14155550100", body: "into the void")])
        try await DroppingServer.run { base in try await h.run(worker(h, base, maxAttempts: 3)) }
        let row = try h.rows()[0]
        // The connection was dropped after the request went out: Twilio may have it, so after the attempts
        // run out an operator decides (outbox retry) rather than a second text going out on its own.
        #expect(row["status"] as String == "uncertain")
        #expect(row["attempts"] as Int == 3)
        #expect(row["needsReconcile"] as Bool)
    }

    @Test func aPOSTOnAKeptConnectionThatDiesIsNotSentAgainByTheTransport() async throws {
        try await KeptConnectionServer.run(.diesUnderTheNextPOST) { base, posts in
            let client = FakeTwilio.client(base)
            // Given a connection kept open after a first answer
            guard case .success = await client.fetchAccount() else {
                Issue.record("the account was not read")
                return
            }
            // When it dies under a POST, before any answer
            let sent = await client.createMessage(to: "+14155550100", body: "once")
            // Then the POST went out once (libcurl would have sent it again on a new connection, and had a 201), and the
            // outcome is that it may have been sent: the outbox looks it up before any second try
            #expect(posts() == 1)
            guard case .failure(.transport(.maybeSent, _)) = sent else {
                Issue.record("\(sent)")
                return
            }
        }
    }

    @Test func aConnectionIdleLongerThanTheKeptAgeCarriesNoRequest() async throws {
        try await KeptConnectionServer.run(.saysRequestTimeoutWhenIdle) { base, posts in
            // Given a client that uses a connection idle for up to 1 s again, and a server that ends an idle connection
            // with a 408 written on it
            let client = TwilioRESTClient(
                baseURL: base,
                accountSid: FakeTwilio.accountSid,
                authToken: FakeTwilio.authToken,
                sender: .number(FakeTwilio.from),
                statusCallback: nil,
                timeout: 5,
                keptConnectionAge: .seconds(1)
            )
            guard case .success = await client.createMessage(to: "+14155550100", body: "first") else {
                Issue.record("the first text was not sent")
                return
            }
            // When the next text comes 2.5 s later (libcurl counts the idle time in whole seconds: 2 > 1)
            try await Task.sleep(for: .milliseconds(2500))
            let second = await client.createMessage(to: "+14155550100", body: "second")
            // Then it goes out on a new connection and is answered (on the old one, the 408 left there was taken for
            // its answer)
            guard case .success = second else {
                Issue.record("\(second)")
                return
            }
            #expect(posts() == 2)
        }
    }

    @Test func anAnswerSilentForTheTimeoutIsGivenUpThenNotAtTheWholeDeadline() async throws {
        // Given Twilio taking a text, then saying nothing for 6 s
        let fake = FakeTwilio(slowDelay: .seconds(6))
        try await fake.run { base in
            let client = FakeTwilio.client(base, timeout: 2)
            // When a client whose timeout is 2 s (4 s in all) sends it
            let started = ContinuousClock.now
            let sent = await client.createMessage(to: "+15005550503", body: "hello?")
            let waited = ContinuousClock.now - started
            // Then it gives up after 2 s of silence, not at the whole deadline (libcurl's own speed check, averaged over
            // seconds, took the whole 4 s), and the text may have been sent. (Which of the two ended it, as the
            // transport says: the time this task took to wake up again is the test process's, busy with other tests.)
            #expect(waited >= .milliseconds(1900), "\(waited)")
            guard case .failure(.transport(.maybeSent, let detail)) = sent, detail.contains("timed out waiting for Twilio: no answer for 2 s")
            else {
                Issue.record("\(sent)")
                return
            }
        }
    }

    @Test func refusedConnectionsAreRetriedAndFinallyFail() async throws {
        let h = try OutboxHarness()
        try h.enqueue([(to: "+14155550100", body: "nobody home")])
        // A port with nothing listening: the request never left, so retrying is safe and reconciling is not needed.
        // (A port bound and closed without listening: a server's listening socket closed just before may still take
        // a connection into its backlog, and answer it with a reset once the request is sent.)
        try await h.run(worker(h, "http://127.0.0.1:\(try unusedLoopbackPort())", maxAttempts: 3))
        let row = try h.rows()[0]
        #expect(row["status"] as String == "failed", "\(row)")
        #expect(row["attempts"] as Int == 3)
        #expect(!(row["needsReconcile"] as Bool))
        #expect((row["errorMessage"] as String).contains("gave up after 3 attempts"))
    }

    @Test func nothingIsLostOrSentTwiceAcrossARestart() async throws {
        // Given a row a crash left `sending`, and one still queued
        let h = try OutboxHarness()
        try h.enqueue([(to: "+14155550101", body: "was in flight"), (to: "+14155550102", body: "still queued")])
        try await DatabaseQueue(path: h.path).write { try $0.execute(sql: "UPDATE outbox SET status = 'sending', attempts = 1 WHERE id = 1") }
        let fake = FakeTwilio()
        // When the worker starts again
        try await fake.run { base in try await h.run(worker(h, base)) }
        // Then the interrupted one is uncertain and not resent; the queued one is sent
        let rows = try h.rows()
        #expect(rows[0]["status"] as String == "uncertain")
        #expect(rows[1]["status"] as String == "sent")
        #expect(fake.created.map(\.to) == ["+14155550102"])
    }

    @Test func aTextToANumberThatOptedOutMeanwhileIsNotSent() async throws {
        let h = try OutboxHarness()
        try h.enqueue([(to: "+14155550101", body: "too late")])
        try await DatabaseQueue(path: h.path).write {
            try $0.execute(sql: "INSERT INTO phones (phone, optedOut, updatedAt) VALUES ('+14155550101', 1, ?)", arguments: [Date()])
        }
        let fake = FakeTwilio()
        try await fake.run { base in try await h.run(worker(h, base)) }
        #expect(fake.created.isEmpty)
        #expect(try h.rows()[0]["status"] as String == "failed")
    }

    @Test func textsToOneNumberGoOutInOrder() async throws {
        let h = try OutboxHarness()
        try h.enqueue((1...5).map { (to: "+15005550777", body: "part \($0)") })
        let fake = FakeTwilio()
        try await fake.run { base in try await h.run(worker(h, base, rate: 100)) }
        #expect(fake.created.map(\.body) == ["part 1", "part 2", "part 3", "part 4", "part 5"])
    }

    @Test func gracefulShutdownFinishesTheSendInFlight() async throws {
        let h = try OutboxHarness()
        try h.enqueue([(to: "+15005550777", body: "slow but sure")])
        let fake = FakeTwilio()
        try await fake.run { base in
            // Shut down as soon as the send has started (the fake answers after 400 ms)
            try await h.run(worker(h, base)) { !fake.posts(to: "+15005550777").isEmpty }
        }
        #expect(try h.rows()[0]["status"] as String == "sent")
        #expect(fake.created.count == 1)
    }

    @Test func localModeSimulatesAndLogs() async throws {
        let h = try OutboxHarness()
        try h.enqueue([(to: "+14155550100", body: "hello from local mode\n2026-12-01 error : forged line")])
        let logs = InMemoryLogHandler()
        let logged = Logger(label: "test", factory: { _ in logs })
        let worker = OutboxWorker(store: h.store, sender: SimulatedSender(logger: logged), rate: 50, pollInterval: .milliseconds(10), logger: logger)
        try await h.run(worker)
        #expect(try h.rows()[0]["status"] as String == "simulated")
        // The text is logged on one line: its line break cannot forge an entry of its own
        let lines = logs.entries.map { "\($0.message)" }.filter { $0.hasPrefix("local mode, not sent") }
        #expect(lines == [#"local mode, not sent: SMS to +14155550100: "hello from local mode\n2026-12-01 error : forged line""#])
    }

    @Test func statusCallbacksMoveSentRowsForward() async throws {
        let h = try OutboxHarness()
        try h.enqueue([(to: "+14155550100", body: "track me")])
        let fake = FakeTwilio()
        try await fake.run { base in try await h.run(worker(h, base)) }
        let sid = try #require(fake.created.first?.sid)
        try await h.store.applyStatusCallback(StatusCallback(fields: [.init("MessageSid", sid), .init("MessageStatus", "delivered")]), now: Date())
        try await h.store.applyStatusCallback(StatusCallback(fields: [.init("MessageSid", sid), .init("MessageStatus", "sent")]), now: Date())
        #expect(try h.rows()[0]["status"] as String == "delivered")
    }
}

@Suite("Delivery policy")
struct DeliveryPolicyTests {
    let now = Date(timeIntervalSince1970: 1_795_597_200)

    @Test func backoffGrowsExponentiallyWithJitterAndACap() {
        let p = DeliveryPolicy(maxAttempts: 10, baseDelay: 1, maxDelay: 30, jitter: 0.5...1.0)
        for attempt in 1...8 {
            let d = p.delay(afterAttempt: attempt, retryAfter: nil)
            let full = min(30, pow(2, Double(attempt - 1)))
            #expect(d >= full * 0.5 && d <= full)
        }
        #expect(p.delay(afterAttempt: 1, retryAfter: 7) == 7)
        #expect(p.delay(afterAttempt: 1, retryAfter: 999) == 30)
    }

    @Test func aShortRetryAfterNeverShortensTheBackoff() {
        // A 429 with `Retry-After: 3` on every attempt: the waits still grow, so 8 attempts outlast a
        // one-minute outage (they used to be spent in 21 s).
        let p = DeliveryPolicy(maxAttempts: 8, baseDelay: 1, maxDelay: 300, jitter: 0.5...1.0)
        for attempt in 1...7 {
            let d = p.delay(afterAttempt: attempt, retryAfter: 3)
            #expect(d >= max(3, pow(2, Double(attempt - 1)) * 0.5))
        }
        let shortest = (1...7).reduce(0.0) { $0 + max(3, pow(2, Double($1 - 1)) * 0.5) }
        #expect(shortest > 60)
    }

    @Test func classification() {
        let p = DeliveryPolicy(maxAttempts: 3, baseDelay: 1, maxDelay: 10, jitter: 1...1)
        #expect(p.outcome(of: .success(.accepted(sid: "SM1")), attempts: 1, now: now) == .accepted(sid: "SM1"))
        #expect(
            p.outcome(of: .failure(.http(status: 400, code: 21211, message: "bad", moreInfo: nil, retryAfter: nil)), attempts: 1, now: now)
                == .failed(code: 21211, message: "bad")
        )
        #expect(
            p.outcome(of: .failure(.http(status: 401, code: nil, message: "who", moreInfo: nil, retryAfter: nil)), attempts: 1, now: now)
                == .failed(code: nil, message: "[HTTP 401] who")
        )
        // (An answer that is not Twilio's error JSON: no code, and the status stays in the message, not in errorCode)
        #expect(
            p.outcome(
                of: .failure(.http(status: 404, code: nil, message: "[HTTP 404] Failed to execute request", moreInfo: nil, retryAfter: nil)),
                attempts: 1,
                now: now
            ) == .failed(code: nil, message: "[HTTP 404] Failed to execute request")
        )
        #expect(
            p.outcome(of: .failure(.http(status: 429, code: 20429, message: "slow", moreInfo: nil, retryAfter: 5)), attempts: 1, now: now)
                == .retry(at: now.addingTimeInterval(5), code: 20429, message: "slow", reconcile: false)
        )
        #expect(
            p.outcome(of: .failure(.http(status: 400, code: 21611, message: "queue full", moreInfo: nil, retryAfter: nil)), attempts: 1, now: now)
                == .retry(at: now.addingTimeInterval(1), code: 21611, message: "queue full", reconcile: false)
        )
        #expect(DeliveryPolicy.isOutage(.http(status: 400, code: 21611, message: "", moreInfo: nil, retryAfter: nil)))
        #expect(
            p.outcome(of: .failure(.http(status: 503, code: nil, message: "down", moreInfo: nil, retryAfter: nil)), attempts: 2, now: now)
                == .retry(at: now.addingTimeInterval(2), code: nil, message: "down", reconcile: true)
        )
        #expect(
            p.outcome(of: .failure(.transport(.notSent, "refused")), attempts: 1, now: now)
                == .retry(at: now.addingTimeInterval(1), code: nil, message: "refused", reconcile: false)
        )
        #expect(
            p.outcome(of: .failure(.transport(.maybeSent, "lost")), attempts: 3, now: now)
                == .uncertain(code: nil, message: "gave up after 3 attempts: lost")
        )
        #expect(
            p.outcome(of: .failure(.transport(.notSent, "refused")), attempts: 3, now: now)
                == .failed(code: nil, message: "gave up after 3 attempts: refused")
        )
    }

    @Test func retryAfterParsesSecondsAndDates() {
        #expect(TwilioRESTClientTestHooks.retryAfter("3") == 3)
        #expect(TwilioRESTClientTestHooks.retryAfter("") == nil)
        #expect(TwilioRESTClientTestHooks.retryAfter("Wed, 21 Oct 2015 07:28:00 GMT") == 0)
    }
}

@Suite("REST reply mode end to end")
struct RestReplyModeTests {
    @Test func repliesGoOutThroughTheOutboxInOrder() async throws {
        let fake = FakeTwilio()
        try await fake.run { base in
            let config = TestServer.makeConfig { $0.replyMode = .rest }
            let client = TwilioRESTClient(
                baseURL: base,
                accountSid: FakeTwilio.accountSid,
                authToken: FakeTwilio.authToken,
                sender: .number(FakeTwilio.from)
            )
            try await TestServer.run(
                config,
                services: { store in
                    [
                        OutboxWorker(
                            store: store,
                            sender: TwilioSender(client: client),
                            rate: 50,
                            pollInterval: .milliseconds(10),
                            logger: Logger(label: "t")
                        )
                    ]
                }
            ) { server in
                // When a phone texts three times in REST mode
                for body in ["HELP", "JOIN", "Ivan"] {
                    let reply = try await server.post(fields: smsFields(body: body))
                    // Then each webhook answers an empty <Response/> at once
                    #expect(reply.status == 200 && reply.body == TwiML.empty)
                }
                // And the replies reach Twilio, in order, addressed to the phone
                let deadline = ContinuousClock.now.advanced(by: .seconds(10))
                while fake.created.count < 3 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
                let sent = fake.created
                #expect(sent.map(\.to) == ["+14155550100", "+14155550100", "+14155550100"])
                #expect(sent.count == 3)
                if sent.count == 3 {
                    #expect(sent[0].body.contains("reply JOIN to register"))
                    #expect(sent[1].body.contains("first name"))
                    #expect(sent[2].body.contains("Thank you, Ivan"))
                }
            }
        }
    }
}

@Suite("Outbox worker pacing at low rates")
struct OutboxLowRateTests {
    @Test func afterIdleTimeTextsAreClaimedOneSlotAtATime() async throws {
        // Given a worker at 5 texts a second that has been idle for a while
        let h = try OutboxHarness()
        let fake = FakeTwilio()
        try await fake.run { base in
            let worker = OutboxWorker(
                store: h.store,
                sender: TwilioSender(client: h.client(base)),
                rate: 5,
                policy: OutboxHarness.fastPolicy,
                pollInterval: .milliseconds(10),
                logger: Logger(label: "t")
            )
            var enqueued = false
            try await h.run(worker) {
                if !enqueued {
                    // When, after a second of idling, four texts arrive at once
                    try await Task.sleep(for: .seconds(1))
                    try h.enqueue((0..<4).map { (to: "+1415555\(String(format: "%04d", 8000 + $0))", body: "x") })
                    enqueued = true
                }
                return try h.scalar("SELECT count(*) FROM outbox WHERE status = 'sent'") == 4
            }
        }
        // Then no text was claimed long before its own slot, 200 ms apart: the four claims (each text's first attempt)
        // span at least two slots, however late a busy machine ran the first (claimed at once, they would span none).
        // (Counting texts `sending` at once could not tell: on a loaded machine a send outlasts its slot.)
        let claims = try h.rows().compactMap { $0["firstAttemptAt"] as Date? }.sorted()
        #expect(claims.count == 4)
        #expect(claims.last!.timeIntervalSince(claims.first!) >= 0.4, "\(claims)")
        #expect(fake.created.count == 4)
    }
}

@Suite("Sliding window")
struct SlidingWindowTests {
    @Test func noMoreThanCapacityStartsInOneWindow() {
        var w = SlidingWindow(capacity: 3, interval: .milliseconds(100))
        let t0 = ContinuousClock.now
        for i in 0..<3 {
            #expect(w.nextFree(after: t0.advanced(by: .milliseconds(i))) == nil)
            w.record(t0.advanced(by: .milliseconds(i)))
        }
        #expect(w.nextFree(after: t0.advanced(by: .milliseconds(10))) == t0.advanced(by: .milliseconds(300)))
        w.record(t0.advanced(by: .milliseconds(300)))
        #expect(w.nextFree(after: t0.advanced(by: .milliseconds(300))) == t0.advanced(by: .milliseconds(301)))
    }
}
