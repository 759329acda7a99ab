// SPDX-License-Identifier: Apache-2.0
import Foundation
import GRDB

extension SQLiteStore {
    public func recoverInterruptedSends(now: Date) async throws -> Int {
        try await writeCountingFailures(.outbox) { db in
            try db.execute(
                sql: """
                    UPDATE outbox SET status = 'uncertain', updatedAt = ?,
                    errorMessage = 'interrupted while sending: it may or may not have reached Twilio (action2phone outbox retry resends it)'
                    WHERE status = 'sending'
                    """,
                arguments: [now]
            )
            return db.changesCount
        }
    }

    public func claimNextOutbox(now: Date) async throws -> OutboxMessage? {
        try await claimOutbox(now: now, limit: 1).first
    }

    public func claimOutbox(now: Date, limit: Int) async throws -> [OutboxMessage] {
        try await writeCountingFailures(.outbox) { db in
            var claimed: [OutboxMessage] = []
            while claimed.count < limit, let message = try Self.claimOne(db, now: now) { claimed.append(message) }
            return claimed
        }
    }

    /// No retry is scheduled further ahead than this (the delivery policy waits at most 5 minutes, a `Retry-After`
    /// included): one further ahead was written by a clock that has since been set back (a machine that started with
    /// a wrong time), and is due now, rather than holding that number's texts for as long as the clock was wrong.
    static let latestRetry: TimeInterval = 15 * 60

    /// Why a text whose number opted out after it was queued failed.
    static let optedOutRefusal = "not sent: the recipient opted out"

    public func claimProbe(now: Date) async throws -> OutboxMessage? {
        try await writeCountingFailures(.outbox) { db in try Self.claimOne(db, now: now, leastTriedFirst: true) }
    }

    /// Claims one due row inside the open transaction (rows claimed before it in the same transaction count
    /// as `sending`, so two texts to one number are never claimed together): the oldest reply, else the oldest
    /// text holding a reply back, else the oldest text; or, for a probe, the one tried least often (replies first
    /// among equals).
    static func claimOne(_ db: Database, now: Date, leastTriedFirst: Bool = false) throws -> OutboxMessage? {
        try {
            // A bounded loop: rows whose number opted out after they were queued fail here and the next is tried, as
            // do those whose number became suppressed (Twilio says it cannot receive texts), except replies: that
            // person has just texted.
            for _ in 0..<100 {
                func fetch(_ sql: String) throws -> Row? {
                    try Row.fetchOne(db.cachedStatement(sql: sql), arguments: [now, now.addingTimeInterval(latestRetry)])
                }
                let found =
                    leastTriedFirst ? try fetch(DueSQL.probe) : try fetch(DueSQL.reply) ?? fetch(DueSQL.replyBlocker) ?? fetch(DueSQL.any)
                guard let row = found else { return nil }
                let id: Int64 = try row.decode(forColumn: "id")
                let refusal: String? =
                    if try row.decode(Bool.self, forColumn: "optedOut") {
                        optedOutRefusal
                    } else if try row.decode(Bool.self, forColumn: "suppressed") {
                        "not sent: the number cannot receive texts (suppressed; action2phone users unsuppress clears it)"
                    } else { nil }
                if let refusal {
                    // Uncertain rather than failed when an earlier attempt may have reached Twilio.
                    let status = try row.decode(Bool.self, forColumn: "needsReconcile") ? "uncertain" : "failed"
                    try db.execute(
                        sql: "UPDATE outbox SET status = ?, errorCode = NULL, errorMessage = ?, updatedAt = ? WHERE id = ?",
                        arguments: [status, refusal, now, id]
                    )
                    continue
                }
                return try Row.fetchOne(
                    db,
                    sql: """
                        UPDATE outbox SET status = 'sending', attempts = attempts + 1, firstAttemptAt = coalesce(firstAttemptAt, ?), updatedAt = ?
                        WHERE id = ? RETURNING *
                        """,
                    arguments: [now, now, id]
                ).map(Self.outboxMessage)
            }
            return nil
        }()
    }

    /// The statements that find the next due row, built once.
    private enum DueSQL {
        /// The due row `o` at the front of its number's queue, among `rows`, that `filter` keeps, first in `order`.
        static func due(_ filter: String, orderBy order: String, from rows: String = "outbox o") -> String {
            """
            SELECT o.id, o.needsReconcile, coalesce(p.optedOut, 0) AS optedOut, coalesce(p.suppressed, 0) AND o.purpose != 'reply' AS suppressed
            FROM \(rows) LEFT JOIN phones p ON p.phone = o."to"
            WHERE o.status = 'queued' AND (o.nextAttemptAt IS NULL OR o.nextAttemptAt <= ?1 OR o.nextAttemptAt > ?2) \(filter)
              AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e."to" = o."to" AND e.id != o.id
                              AND (e.status = 'sending' OR (e.status = 'queued' AND e.id < o.id)))
            ORDER BY \(order) LIMIT 1
            """
        }
        // Conversation replies go before direct messages and broadcasts: a person waiting for an answer should
        // not wait behind a 10,000-text broadcast. Texts to one number never overtake each other.
        static let reply = due("AND o.purpose = 'reply'", orderBy: "o.id")
        // A reply held back by an earlier text to its number (a broadcast queued to that person) takes that text
        // along first, so it does not wait for the whole broadcast. Found from the few queued replies.
        static let replyBlocker = due(
            "AND r.status = 'queued' AND r.purpose = 'reply'",
            orderBy: "r.id",
            from: #"outbox r JOIN outbox o ON o."to" = r."to" AND o.id < r.id"#
        )
        static let any = due("", orderBy: "o.id")
        // A probe goes round the queue (each one that fails spends an attempt), replies first among equals.
        static let probe = due("", orderBy: "o.attempts, o.purpose != 'reply', o.id")
    }

    public func completeOutbox(id: Int64, outcome: DeliveryOutcome, now: Date) async throws {
        try await completeOutbox([(id, outcome)], now: now)
    }

    public func completeOutbox(_ outcomes: [(id: Int64, outcome: DeliveryOutcome)], now: Date) async throws {
        try await writeCountingFailures(.outbox) { db in
            for (id, outcome) in outcomes { try Self.complete(db, id: id, outcome: outcome, now: now) }
        }
    }

    static func complete(_ db: Database, id: Int64, outcome: DeliveryOutcome, now: Date) throws {
        try {
            guard
                let row = try Row.fetchOne(
                    db,
                    sql: "SELECT \"to\", recipientDeleted, needsReconcile FROM outbox WHERE id = ? AND status = 'sending'",
                    arguments: [id]
                )
            else {
                return  // not ours any more (an operator changed it): leave it alone
            }
            let to: String = try row.decode(forColumn: "to")
            var outcome = outcome
            if try row.decode(Bool?.self, forColumn: "recipientDeleted") == true {
                // The recipient deleted their account while this was being sent, or it named someone who did: its text
                // is gone, and it is never queued again. Uncertain when this or an earlier attempt may have reached Twilio.
                let recipientStays = try Bool.fetchOne(db, sql: "SELECT 1 FROM users WHERE phone = ?", arguments: [to]) == true
                let erased = recipientStays ? erasedMention : "recipient deleted their account"
                switch outcome {
                case .notFound:
                    outcome = .failed(code: nil, message: erased)
                case .retry(_, let code, let message, let reconcile):
                    let reason = "\(erased); \(message)"
                    outcome =
                        try reconcile || row.decode(Bool?.self, forColumn: "needsReconcile") == true
                        ? .uncertain(code: code, message: reason) : .failed(code: code, message: reason)
                default:
                    break
                }
            }
            switch outcome {
            case .accepted(let sid), .found(let sid, _, _, _):
                // A SID another row already holds means this row's attempt cannot be told apart: never adopt it.
                if try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM outbox WHERE twilioSid = ? AND id != ?)", arguments: [sid, id]) == true {
                    outcome = .uncertain(code: nil, message: "Twilio reported SID \(sid), which another outbox row already holds")
                }
            default: break
            }
            switch outcome {
            case .found(let sid, let twilioStatus, let code, let message):
                try db.execute(
                    sql: """
                        UPDATE outbox SET status = 'sent', twilioSid = ?, needsReconcile = 0, nextAttemptAt = NULL,
                        errorCode = NULL, errorMessage = NULL, updatedAt = ? WHERE id = ?
                        """,
                    arguments: [sid, now, id]
                )
                _ = try Self.applyStatus(db, sid: sid, twilioStatus: twilioStatus, errorCode: code, errorMessage: message, now: now)
                try Self.applyPendingCallbacks(db, sid: sid, now: now)
            case .accepted(let sid):
                try db.execute(
                    sql: """
                        UPDATE outbox SET status = 'sent', twilioSid = ?, needsReconcile = 0, nextAttemptAt = NULL,
                        errorCode = NULL, errorMessage = NULL, updatedAt = ? WHERE id = ?
                        """,
                    arguments: [sid, now, id]
                )
                try Self.applyPendingCallbacks(db, sid: sid, now: now)
            case .notFound:
                // The lookup was not a send: its attempt is given back.
                try db.execute(
                    sql: """
                        UPDATE outbox SET status = 'queued', needsReconcile = 0, nextAttemptAt = NULL, attempts = max(attempts - 1, 0),
                        updatedAt = ? WHERE id = ?
                        """,
                    arguments: [now, id]
                )
            case .simulated:
                // (An error from before an operator's retry no longer applies.)
                try db.execute(
                    sql: "UPDATE outbox SET status = 'simulated', errorCode = NULL, errorMessage = NULL, updatedAt = ? WHERE id = ?",
                    arguments: [now, id]
                )
            case .failed(let code, let message):
                try db.execute(
                    sql: "UPDATE outbox SET status = 'failed', errorCode = ?, errorMessage = ?, nextAttemptAt = NULL, updatedAt = ? WHERE id = ?",
                    arguments: [code, message, now, id]
                )
                if let code { try Self.recordRecipientError(db, phone: to, code: code, now: now) }
            case .retry(let at, let code, let message, let reconcile):
                try db.execute(
                    sql: """
                        UPDATE outbox SET status = 'queued', nextAttemptAt = ?, errorCode = ?, errorMessage = ?,
                        needsReconcile = needsReconcile OR ?, updatedAt = ? WHERE id = ?
                        """,
                    arguments: [at, code, message, reconcile, now, id]
                )
            case .uncertain(let code, let message):
                try db.execute(
                    sql: "UPDATE outbox SET status = 'uncertain', errorCode = ?, errorMessage = ?, nextAttemptAt = NULL, updatedAt = ? WHERE id = ?",
                    arguments: [code, message, now, id]
                )
            }
        }()
    }

    public func firstUnrecordedSid(_ sids: [String]) async throws -> String? {
        guard !sids.isEmpty else { return nil }
        return try await writer.read { db in
            let taken = Set(
                try String.fetchAll(
                    db,
                    sql: """
                        SELECT twilioSid FROM outbox WHERE twilioSid IN (\(databaseQuestionMarks(count: sids.count)))
                        UNION ALL SELECT sid FROM outboxEarlierSids WHERE sid IN (\(databaseQuestionMarks(count: sids.count)))
                        """,
                    arguments: StatementArguments(sids + sids)
                )
            )
            return sids.first { !taken.contains($0) }
        }
    }

    public func outboxMessages(status: OutboxStatus?, limit: Int) async throws -> [OutboxMessage] {
        try await writer.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM outbox WHERE (? IS NULL OR status = ?) ORDER BY id DESC LIMIT ?",
                arguments: [status?.rawValue, status?.rawValue, limit]
            ).map(Self.outboxMessage)
        }
    }

    static func outboxMessage(_ row: Row) throws -> OutboxMessage {
        try OutboxMessage(
            id: row.decode(forColumn: "id"),
            to: row.decode(forColumn: "to"),
            body: row.decode(forColumn: "body"),
            status: OutboxStatus(rawValue: row.decode(forColumn: "status")) ?? .failed,
            attempts: row.decode(forColumn: "attempts"),
            twilioSid: row.decode(forColumn: "twilioSid"),
            errorCode: row.decode(forColumn: "errorCode"),
            errorMessage: row.decode(forColumn: "errorMessage"),
            createdAt: row.decode(forColumn: "createdAt"),
            updatedAt: row.decode(forColumn: "updatedAt"),
            purpose: row.decode(forColumn: "purpose"),
            firstAttemptAt: row.decode(forColumn: "firstAttemptAt"),
            needsReconcile: row.decode(forColumn: "needsReconcile")
        )
    }
}
