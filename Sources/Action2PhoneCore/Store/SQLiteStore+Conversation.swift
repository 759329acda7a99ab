// SPDX-License-Identifier: Apache-2.0
import Foundation
import GRDB
import TwilioKit

// MARK: - Effects

extension SQLiteStore {
    /// Applies one conversation effect for `phone` inside the step's transaction.
    static func apply(_ effect: Effect, db: Database, phone: String, now: Date) throws {
        switch effect {
        case .optOut(let text):
            try setOptedOut(db, phone: phone, optedOut: true, source: "keyword", text: text, now: now)
        case .optIn(let text):
            try setOptedOut(db, phone: phone, optedOut: false, source: "keyword", text: text, now: now)
        case .register(let r):
            try db.execute(
                sql: """
                    INSERT INTO users (phone, firstName, lastName, email, passcodeHash, passcodeSalt, passcodeIterations, role, createdAt, lastSeenAt)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    phone, r.firstName, r.lastName, r.email, Data(r.passcode.hash), Data(r.passcode.salt), r.passcode.iterations, r.role.rawValue,
                    now, now,
                ]
            )
        case .loginFailed(let userId, let recent, let lockedUntil):
            // failedLogins and firstFailedLoginAt summarise failedLoginTimes for operators.
            try db.execute(
                sql: "UPDATE users SET failedLogins = ?, firstFailedLoginAt = ?, failedLoginTimes = ?, lockedUntil = ? WHERE id = ?",
                arguments: [recent.count, recent.first, FailedLoginTimes.encode(recent), lockedUntil, userId]
            )
        case .loginSucceeded(let userId):
            try db.execute(
                sql: "UPDATE users SET failedLogins = 0, firstFailedLoginAt = NULL, failedLoginTimes = NULL, lockedUntil = NULL WHERE id = ?",
                arguments: [userId]
            )
        case .changePasscode(let userId, let passcode):
            try Self.setPasscode(db, passcode, userId: userId, fromOrganiser: false)
        case .markRead(let ids):
            guard !ids.isEmpty else { return }
            let placeholders = databaseQuestionMarks(count: ids.count)
            try db.execute(
                sql: "UPDATE inbox SET readAt = ? WHERE readAt IS NULL AND id IN (\(placeholders))",
                arguments: StatementArguments([now] + ids.map { $0 as (any DatabaseValueConvertible) })
            )
        case .sendDirect(let recipientId, let senderId, let body):
            try sendDirect(db, recipientId: recipientId, senderId: senderId, body: body, purpose: "direct", now: now)
        case .broadcast(let senderId, let body):
            try queueBroadcast(db, senderId: senderId, body: body, now: now)
        case .deleteAccount(let userId):
            try deleteAccount(db, userId: userId, now: now)
        }
    }

    /// Stores a message in the recipient's inbox and queues a text unless they opted out or are suppressed.
    /// Returns whether a text was queued.
    @discardableResult
    static func sendDirect(_ db: Database, recipientId: Int64, senderId: Int64?, body: String, purpose: String, now: Date) throws -> Bool {
        guard let phone = try String.fetchOne(db, sql: "SELECT phone FROM users WHERE id = ?", arguments: [recipientId]) else { return false }
        try db.execute(
            sql: "INSERT INTO inbox (userId, kind, senderId, body, createdAt) VALUES (?, 'direct', ?, ?, ?)",
            arguments: [recipientId, senderId, body, now]
        )
        let consent = try SQLiteFacts(db: db, phone: phone).consent()
        guard !consent.optedOut, !consent.suppressed else { return false }
        try enqueue(db, to: phone, body: body, purpose: purpose, inReplyTo: nil, now: now)
        return true
    }

    /// Records a broadcast to everyone registered now, in one row: `fanOutBroadcastChunk` then stores it in their
    /// inboxes and queues a text to each one who can receive it. Returns the broadcast's id.
    @discardableResult
    static func queueBroadcast(_ db: Database, senderId: Int64?, body: String, now: Date) throws -> Int64 {
        try db.execute(
            sql: "INSERT INTO broadcasts (senderId, body, createdAt, lastUserId) VALUES (?, ?, ?, (SELECT coalesce(max(id), 0) FROM users))",
            arguments: [senderId, body, now]
        )
        return db.lastInsertedRowID
    }

    /// People per fan-out transaction: a chunk takes a few milliseconds, so webhooks wait at most that long.
    static let fanOutChunkSize = 500

    /// Whether a broadcast still has people to reach.
    static func hasUnfinishedBroadcast(_ db: Database) throws -> Bool {
        try FastStatement.first(db, "SELECT 1 FROM broadcasts WHERE finishedAt IS NULL LIMIT 1", []) { _ in true } ?? false
    }

    /// Reaches the next `fanOutChunkSize` people of the oldest unfinished broadcast, in the open transaction: each
    /// registered at the broadcast (and not deleted since) gets it in their inbox, and each who can receive texts
    /// gets one queued. `false` when no broadcast was left.
    static func fanOutBroadcastChunk(_ db: Database, now: Date) throws -> Bool {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM broadcasts WHERE finishedAt IS NULL ORDER BY id LIMIT 1") else { return false }
        let id: Int64 = try row.decode(forColumn: "id")
        let senderId: Int64? = try row.decode(forColumn: "senderId")
        let body: String = try row.decode(forColumn: "body")
        let createdAt: Date = try row.decode(forColumn: "createdAt")
        let last: Int64 = try row.decode(forColumn: "lastUserId")
        let from: Int64 = try row.decode(forColumn: "doneThroughUserId")
        // The chunk's people; fewer than a whole chunk means nobody is left after them.
        let chunk = try Row.fetchOne(
            db,
            sql: "SELECT count(*) AS people, max(id) AS through FROM (SELECT id FROM users WHERE id > ? AND id <= ? ORDER BY id LIMIT ?)",
            arguments: [from, last, fanOutChunkSize]
        )
        let through: Int64 = try chunk?.decode(Int64?.self, forColumn: "through") ?? last
        let done = try through >= last || (chunk?.decode(Int.self, forColumn: "people") ?? 0) < fanOutChunkSize
        // The sender as long as they have an account: one deleted meanwhile is no longer named (nor can be).
        try db.execute(
            sql: """
                INSERT INTO inbox (userId, kind, senderId, body, createdAt)
                SELECT id, 'broadcast', (SELECT s.id FROM users s WHERE s.id = ?), ?, ? FROM users WHERE id > ? AND id <= ? ORDER BY id
                """,
            arguments: [senderId, body, createdAt, from, through]
        )
        let stored = db.changesCount
        try db.execute(
            sql: """
                INSERT INTO outbox ("to", body, purpose, status, createdAt, updatedAt)
                SELECT u.phone, ?, 'broadcast', 'queued', ?, ? FROM users u LEFT JOIN phones p ON p.phone = u.phone
                WHERE u.id > ? AND u.id <= ? AND coalesce(p.optedOut, 0) = 0 AND coalesce(p.suppressed, 0) = 0 ORDER BY u.id
                """,
            arguments: [body, now, now, from, through]
        )
        let queued = db.changesCount
        try db.execute(
            sql: "UPDATE broadcasts SET doneThroughUserId = ?, stored = stored + ?, queued = queued + ?, finishedAt = ? WHERE id = ?",
            arguments: [done ? last : through, stored, queued, done ? now : nil, id]
        )
        return true
    }

    /// What an erased text's body becomes.
    static let deletedBody = "[deleted]"
    /// Why an erased reply that named someone who deleted their account was not sent (again).
    static let erasedMention = "erased: it named a person who deleted their account"
    /// Sent to an admin instead of a reply that named someone who deleted their account before it went.
    static let withdrawnReply =
        "Comrade, the answer to your last command named someone who has just erased their data, so it was withdrawn. Reply HELP for commands."

    @discardableResult
    public func upgradePasscodeHash(phone: String, verified: PasscodeHash, upgraded: PasscodeHash) async throws -> Bool {
        try await writer.write { db in
            try db.execute(
                sql: """
                    UPDATE users SET passcodeHash = ?, passcodeSalt = ?, passcodeIterations = ?
                    WHERE phone = ? AND passcodeHash = ? AND passcodeSalt = ? AND passcodeIterations = ?
                    """,
                arguments: [
                    Data(upgraded.hash), Data(upgraded.salt), upgraded.iterations,
                    phone, Data(verified.hash), Data(verified.salt), verified.iterations,
                ]
            )
            return db.changesCount == 1
        }
    }

    /// A new passcode for the account, as PASSCODE and `users reset-passcode` (`fromOrganiser`) set it: failures and
    /// any lock end with the old one.
    static func setPasscode(_ db: Database, _ passcode: PasscodeHash, userId: Int64, fromOrganiser: Bool) throws {
        try db.execute(
            sql: """
                UPDATE users SET passcodeHash = ?, passcodeSalt = ?, passcodeIterations = ?, failedLogins = 0, firstFailedLoginAt = NULL,
                                 failedLoginTimes = NULL, lockedUntil = NULL, passcodeFromOrganiser = ?
                WHERE id = ?
                """,
            arguments: [Data(passcode.hash), Data(passcode.salt), passcode.iterations, fromOrganiser, userId]
        )
    }

    /// Erases a person: profile, inbox and login go; their logged texts and the texts sent to them lose their
    /// bodies; texts still queued for them are cancelled, and one being sent is never sent again (`complete`).
    /// The number's consent state and log stay.
    static func deleteAccount(_ db: Database, userId: Int64, now: Date) throws {
        guard let person = try Row.fetchOne(db, sql: "SELECT phone, email, firstName, lastName FROM users WHERE id = ?", arguments: [userId])
        else { return }
        let phone: String = try person.decode(forColumn: "phone")
        let mentions = PersonMentions(
            phone: phone,
            email: try person.decode(forColumn: "email"),
            name: try person.decode(String.self, forColumn: "firstName") + " " + person.decode(String.self, forColumn: "lastName")
        )
        try eraseMentions(db, of: mentions, now: now)
        try db.execute(sql: "DELETE FROM users WHERE id = ?", arguments: [userId])
        try db.execute(sql: "UPDATE inbound SET body = ?, params = '[]', reply = ? WHERE \"from\" = ?", arguments: [deletedBody, TwiML.empty, phone])
        // Uncertain rather than failed when an earlier attempt may have reached Twilio.
        try db.execute(
            sql: """
                UPDATE outbox SET status = CASE WHEN needsReconcile THEN 'uncertain' ELSE 'failed' END,
                errorMessage = 'recipient deleted their account', updatedAt = ? WHERE "to" = ? AND status = 'queued'
                """,
            arguments: [now, phone]
        )
        try db.execute(sql: "UPDATE outbox SET body = ?, recipientDeleted = 1 WHERE \"to\" = ?", arguments: [deletedBody, phone])
        // By habit, the passcode may come next; the number has no account to tell it by any more.
        try resetConversation(db, phone: phone, now: now, passcodeMayFollow: true)
    }

    /// Rows of the admins' history one chunk of a deletion's erasure reads (`eraseMentionsChunk`): a few milliseconds
    /// of the writer's time, so that a DELETE holds the other webhooks up no longer than a broadcast's chunk does,
    /// however long that history. (Read in the DELETE's own transaction, 300,000 rows held every webhook 1.4 s.)
    /// A quarter of it for a name with a letter outside ASCII (José, Борис): SQLite cannot find such a name in any
    /// case, so every row read is checked by `PersonMentions`, four times slower.
    static let erasureChunkSize = 1000

    /// Admins' commands and the bot's answers to them name people (FIND's list, SEND's confirmation, a number or an
    /// email typed after SEND): of a person who deletes their account, those rows go too, in the inbound log and in
    /// replies sent through the outbox. The replies still to be sent go at once, in the DELETE's transaction; the
    /// rest of the admins' history is erased after it, a chunk at a time, by `eraseMentionsChunk`, from the job
    /// recorded here (in `erasures`, so that a stop in the middle resumes where it was). Only the rows of people who
    /// are or have been admins (`adminPhones`) are read, and only those the DELETE found there. Until the job is done,
    /// a row of theirs about to be used again (a Twilio retry of the command, an operator's retry of the reply) is
    /// looked at first (`eraseNowIfPending`).
    static func eraseMentions(_ db: Database, of person: PersonMentions, now: Date) throws {
        // Queued or being sent (through the outbox_replies index: the queue, not the history).
        try eraseReplies(
            db,
            naming: person,
            where: "status IN ('queued', 'sending') AND \"to\" IN (SELECT phone FROM adminPhones) AND \"to\" != :phone",
            [:],
            now: now
        )
        try db.execute(
            sql: """
                INSERT INTO erasures (phone, email, name, createdAt, outboxThrough, inboundThrough)
                VALUES (?, ?, ?, ?, (SELECT coalesce(max(id), 0) FROM outbox), (SELECT coalesce(max(rowid), 0) FROM inbound))
                """,
            arguments: [person.phone, person.email, person.name, now]
        )
    }

    /// Whether a broadcast still has people to reach, or a deletion admins' rows to erase.
    static func hasBackgroundWork(_ db: Database) throws -> Bool {
        try hasUnfinishedBroadcast(db) || hasUnfinishedErasure(db)
    }

    static func hasUnfinishedErasure(_ db: Database) throws -> Bool {
        try FastStatement.first(db, "SELECT 1 FROM erasures LIMIT 1", []) { _ in true } ?? false
    }

    /// The next chunk of what webhooks leave for after their own transaction, in the open transaction: the oldest
    /// unfinished broadcast's next people or the oldest deletion's next rows to erase, the erasure first when
    /// `erasureFirst` (the caller takes turns, so that neither waits for the other to finish). Returns whether any is
    /// left after it.
    static func backgroundChunk(_ db: Database, now: Date, erasureFirst: Bool) throws -> Bool {
        if erasureFirst {
            if try !eraseMentionsChunk(db, now: now) { _ = try fanOutBroadcastChunk(db, now: now) }
        } else {
            if try !fanOutBroadcastChunk(db, now: now) { _ = try eraseMentionsChunk(db, now: now) }
        }
        return try hasBackgroundWork(db)
    }

    /// `twiml`, the reply first given to the inbound row where `column` = `value`, for a webhook Twilio sent again;
    /// but when the row is an admin's that names someone whose deletion's erasure has not reached it yet, it is erased
    /// first, as that erasure would, and the reply is empty.
    static func replyGivenAgain(_ db: Database, _ twiml: String, inboundWhere column: String, _ value: String) throws -> String {
        guard try hasUnfinishedErasure(db) else { return twiml }
        for person in try pendingErasures(db) {
            try eraseCommands(db, naming: person, where: "\(column) = :value AND \"from\" IN (SELECT phone FROM adminPhones)", ["value": value])
        }
        return try String.fetchOne(db, sql: "SELECT reply FROM inbound WHERE \(column) = ?", arguments: [value]) ?? twiml
    }

    /// Before an operator's retry sends outbox rows `ids` again: erases each that is an admin's reply naming someone
    /// whose deletion's erasure has not reached it yet, as that erasure would.
    static func eraseNowIfPending(_ db: Database, outbox ids: [Int64], now: Date) throws {
        guard try hasUnfinishedErasure(db) else { return }
        let people = try pendingErasures(db)
        for id in ids {
            for person in people {
                try eraseReplies(db, naming: person, where: "id = :id AND \"to\" IN (SELECT phone FROM adminPhones)", ["id": id], now: now)
            }
        }
    }

    private static func pendingErasures(_ db: Database) throws -> [PersonMentions] {
        try Row.fetchAll(db, sql: "SELECT phone, email, name FROM erasures ORDER BY id").map { row in
            PersonMentions(
                phone: try row.decode(forColumn: "phone"),
                email: try row.decode(forColumn: "email"),
                name: try row.decode(forColumn: "name")
            )
        }
    }

    /// Erases the next chunk of the oldest unfinished deletion's mentions, in the open transaction: the admins'
    /// replies in the outbox first (the command each answered is erased with it, since in REST mode the inbound log
    /// keeps no reply to look at: "FIND petrov" names no one by itself), then their commands and TwiML replies in the
    /// inbound log; one admin's rows after another, in order, up to `erasureChunkSize` rows read. `false` when no
    /// deletion was left.
    static func eraseMentionsChunk(_ db: Database, now: Date) throws -> Bool {
        guard let job = try Row.fetchOne(db, sql: "SELECT * FROM erasures ORDER BY id LIMIT 1") else { return false }
        let id: Int64 = try job.decode(forColumn: "id")
        let person = PersonMentions(
            phone: try job.decode(forColumn: "phone"),
            email: try job.decode(forColumn: "email"),
            name: try job.decode(forColumn: "name")
        )
        let outboxThrough: Int64 = try job.decode(forColumn: "outboxThrough")
        let inboundThrough: Int64 = try job.decode(forColumn: "inboundThrough")
        var inReplies: Bool = try job.decode(forColumn: "inReplies")
        // The admin whose rows are being read ("" before the first), and the last row of theirs read.
        var admin: String = try job.decode(forColumn: "adminPhone")
        var after: Int64 = try job.decode(forColumn: "afterId")
        var budget = person.nameIsASCII ? erasureChunkSize : erasureChunkSize / 4
        while budget > 0 {
            let (table, sender, through) = inReplies ? ("outbox", "\"to\"", outboxThrough) : ("inbound", "\"from\"", inboundThrough)
            // The admin's next rows (through the index on their phone, which holds the rowid), as many as the chunk has left.
            let window = try Row.fetchOne(
                db,
                sql: """
                    SELECT count(*) AS rows, max(r) AS last FROM
                    (SELECT rowid AS r FROM \(table) WHERE \(sender) = ? AND rowid > ? AND rowid <= ? ORDER BY rowid LIMIT ?)
                    """,
                arguments: [admin, after, through, budget]
            )
            let rows: Int = try window?.decode(forColumn: "rows") ?? 0
            if let last: Int64 = try window?.decode(forColumn: "last") {
                let these = "\(sender) = :admin AND rowid > :after AND rowid <= :last"
                let arguments: [String: (any DatabaseValueConvertible)?] = ["admin": admin, "after": after, "last": last]
                if inReplies {
                    try eraseReplies(db, naming: person, where: these, arguments, now: now)
                } else {
                    try eraseCommands(db, naming: person, where: these, arguments)
                }
                after = last
            }
            let adminDone = rows < budget
            budget -= max(rows, 1)
            guard adminDone else { continue }
            if let next = try String.fetchOne(db, sql: "SELECT phone FROM adminPhones WHERE phone > ? ORDER BY phone LIMIT 1", arguments: [admin]) {
                (admin, after) = (next, 0)
            } else if inReplies {
                (inReplies, admin, after) = (false, "", 0)
            } else {
                try db.execute(sql: "DELETE FROM erasures WHERE id = ?", arguments: [id])
                return true
            }
        }
        try db.execute(
            sql: "UPDATE erasures SET inReplies = ?, adminPhone = ?, afterId = ? WHERE id = ?",
            arguments: [inReplies, admin, after, id]
        )
        return true
    }

    /// The SQL that is true where `column` may name `person`, with the names of `mentionArguments`: SQLite finds
    /// candidates, and `PersonMentions` keeps those that name the person as a whole word or number (Ann's
    /// an@example.org is not in ivan@example.org).
    private static func mayName(_ person: PersonMentions, _ column: String) -> String {
        // (SQLite's lower() knows ASCII letters only: a name in another script makes every row a candidate.)
        "instr(\(column), :phone) OR instr(lower(\(column)), :email) OR \(person.nameIsASCII ? "instr(lower(\(column)), :name)" : "1")"
    }

    private static func mentionArguments(
        _ person: PersonMentions,
        _ more: [String: (any DatabaseValueConvertible)?]
    ) -> StatementArguments {
        StatementArguments(
            more.merging(
                ["phone": person.phone, "email": person.email.lowercased(), "name": person.name.lowercased(), "digits": person.nationalDigits]
            ) { $1 }
        )
    }

    /// Erases the admins' replies in the outbox that `filter` selects and that name `person`. An erased one is marked
    /// as a deleted person's texts are, so that no retry sends "[deleted]". One still to be sent is withdrawn: the
    /// admin gets a note instead, as the person asked for their details to go. (One being sent goes, and is erased as
    /// it is marked.)
    private static func eraseReplies(
        _ db: Database,
        naming person: PersonMentions,
        where filter: String,
        _ arguments: [String: (any DatabaseValueConvertible)?],
        now: Date
    ) throws {
        let replies = try Row.fetchAll(
            db,
            sql:
                "SELECT id, body, inReplyTo, status, needsReconcile FROM outbox WHERE purpose = 'reply' AND \(filter) AND (\(mayName(person, "body")))",
            arguments: mentionArguments(person, arguments)
        )
        // (A reply in several texts gets one note.)
        var withdrawnFrom = Set<String>()
        for row in replies where try person.isNamed(in: row.decode(forColumn: "body")) {
            let id: Int64 = try row.decode(forColumn: "id")
            let inReplyTo: String? = try row.decode(forColumn: "inReplyTo")
            let status: String = try row.decode(forColumn: "status")
            let mayHaveReachedTwilio: Bool = try row.decode(forColumn: "needsReconcile")
            if status == "queued" && !mayHaveReachedTwilio && inReplyTo.map({ withdrawnFrom.insert($0).inserted }) ?? true {
                // Queued, and nothing of it can have reached Twilio: the note says it was withdrawn.
                try db.execute(sql: "UPDATE outbox SET body = ?, updatedAt = ? WHERE id = ?", arguments: [withdrawnReply, now, id])
            } else if status == "queued" {
                // Another text of a reply withdrawn already, or one that may have reached Twilio: never sent (again).
                try db.execute(
                    sql: """
                        UPDATE outbox SET body = ?, recipientDeleted = 1, status = CASE WHEN needsReconcile THEN 'uncertain' ELSE 'failed' END,
                        errorMessage = ?, updatedAt = ? WHERE id = ?
                        """,
                    arguments: [deletedBody, erasedMention, now, id]
                )
            } else {
                // Sending (its outcome, when it ends, says why it goes no further), or sent: erased.
                try db.execute(
                    sql: "UPDATE outbox SET body = ?, recipientDeleted = 1, updatedAt = ? WHERE id = ?",
                    arguments: [deletedBody, now, id]
                )
            }
            if let inReplyTo { try eraseCommand(db, messageSid: inReplyTo) }
        }
    }

    /// Erases the admins' commands in the inbound log that `filter` selects and that name `person`, in their text
    /// (a number typed with spaces or dashes too) or in the TwiML reply logged with them.
    private static func eraseCommands(
        _ db: Database,
        naming person: PersonMentions,
        where filter: String,
        _ arguments: [String: (any DatabaseValueConvertible)?]
    ) throws {
        let digitsOnly = "replace(replace(replace(replace(replace(body, ' ', ''), '-', ''), '.', ''), '(', ''), ')', '')"
        let commands = try Row.fetchAll(
            db,
            sql: """
                SELECT messageSid, body, reply FROM inbound
                WHERE \(filter) AND (\(mayName(person, "body")) OR instr(\(digitsOnly), :digits) OR \(mayName(person, "reply")))
                """,
            arguments: mentionArguments(person, arguments)
        )
        for row in commands where try person.isNamed(in: row.decode(forColumn: "body")) || person.isNamed(in: row.decode(forColumn: "reply")) {
            try eraseCommand(db, messageSid: try row.decode(forColumn: "messageSid"))
        }
    }

    private static func eraseCommand(_ db: Database, messageSid: String) throws {
        try db.execute(
            sql: "UPDATE inbound SET body = ?, params = '[]', reply = ? WHERE messageSid = ?",
            arguments: [deletedBody, TwiML.empty, messageSid]
        )
    }

    /// Ends the questions no one has answered since `cutoff`: a registration begun and left keeps a name, an email and
    /// a passcode's hash in its state, which nothing else would ever erase (DELETE needs an account). The number's next
    /// text is answered as after any silence, without a time-out note; a passcode question ended so keeps its texts
    /// treated as passcodes. Returns how many were ended.
    public func forgetAbandonedQuestions(before cutoff: Date) async throws -> Int {
        try await writer.write { db in
            let rows = try Row.fetchAll(
                db,
                sql: "SELECT phone, state FROM conversations WHERE updatedAt < ? AND json_extract(state, '$.step.idle') IS NULL",
                arguments: [cutoff]
            )
            var ended = 0
            for row in rows {
                let phone: String = try row.decode(forColumn: "phone")
                guard let state = StoredState.decode(try row.decode(forColumn: "state")), state.step != .idle else { continue }
                try db.execute(
                    sql: "UPDATE conversations SET state = ? WHERE phone = ?",
                    arguments: [StoredState.encode(state.reset(lastActivity: state.lastActivity)), phone]
                )
                ended += 1
            }
            return ended
        }
    }

    /// Ends the login and any question of `phone` (DELETE, an operator's opt-out, or Twilio reporting the number opted
    /// out). A passcode question ended so still has the texts after it treated as passcodes (`reset(lastActivity:)`).
    static func resetConversation(_ db: Database, phone: String, now: Date, passcodeMayFollow: Bool = false) throws {
        guard let stored = try String.fetchOne(db, sql: "SELECT state FROM conversations WHERE phone = ?", arguments: [phone]) else { return }
        var reset = (StoredState.decode(stored) ?? ConversationState()).reset(lastActivity: nil)
        if passcodeMayFollow { reset.passcodeMayFollow = true }
        try db.execute(sql: "UPDATE conversations SET state = ?, updatedAt = ? WHERE phone = ?", arguments: [StoredState.encode(reset), now, phone])
    }
}

// MARK: - Facts

/// `ConversationFacts` read from the open transaction.
final class SQLiteFacts: ConversationFacts {
    let db: Database
    let phone: String
    /// The texting phone's account, read once per step (the service and the engine both ask for it).
    private var cachedAccount: Account??
    /// The texting phone's consent, when `openStep` read it.
    private var cachedConsent: Consent?

    init(db: Database, phone: String) {
        self.db = db
        self.phone = phone
    }

    /// Reads, in one statement, what every inbound step needs: the reply already given to `messageSid` (a
    /// retry), the stored conversation state, and the texting phone's consent and account (kept for
    /// `consent()` and `account()`).
    func openStep(messageSid: String) throws -> (previousReply: String?, state: String?) {
        let opening = try FastStatement.first(db, Self.openStepSQL, [.text(messageSid), .text(phone)]) { row in
            let consent = Consent(optedOut: row.bool(2), suppressed: row.bool(3))
            let account = row.isNull(4) ? nil : try Self.account(row, from: 4)
            return (previousReply: row.text(0), state: row.text(1), consent: consent, account: account)
        }
        guard let opening else { return (nil, nil) }  // never: the statement always returns one row
        cachedConsent = opening.consent
        cachedAccount = .some(opening.account)
        return (opening.previousReply, opening.state)
    }

    /// A row of: reply, state, optedOut, suppressed, then `accountColumns` (NULL without an account).
    static let openStepSQL = """
        SELECT (SELECT reply FROM inbound WHERE messageSid = ?), c.state, coalesce(p.optedOut, 0), coalesce(p.suppressed, 0), \(
            accountColumns.split(separator: ", ").map { "u." + $0 }.joined(separator: ", "))
        FROM (SELECT ? AS phone) AS k
        LEFT JOIN conversations AS c ON c.phone = k.phone
        LEFT JOIN phones AS p ON p.phone = k.phone
        LEFT JOIN users AS u ON u.phone = k.phone
        """

    func consent(of phone: String) throws -> Consent {
        if phone == self.phone, let cachedConsent { return cachedConsent }
        return try FastStatement.first(db, "SELECT optedOut, suppressed FROM phones WHERE phone = ?", [.text(phone)]) {
            Consent(optedOut: $0.bool(0), suppressed: $0.bool(1))
        } ?? Consent()
    }

    func account() throws -> Account? {
        if let cachedAccount { return cachedAccount }
        let account = try FastStatement.first(db, "SELECT \(Self.accountColumns) FROM users WHERE phone = ?", [.text(phone)]) { try Self.account($0) }
        cachedAccount = .some(account)
        return account
    }

    /// (Names and emails are stored composed: the key is looked up composed, whoever asks.)
    func account(phoneOrEmail key: String) throws -> Account? {
        let key = Inbound.composed(key)
        return try Row.fetchOne(db, sql: "SELECT * FROM users WHERE phone = ? OR email = ? ORDER BY id LIMIT 1", arguments: [key, key]).map(
            Self.account
        )
    }

    func isEmailRegistered(_ email: String) throws -> Bool {
        try FastStatement.first(db, "SELECT 1 FROM users WHERE email = ?", [.text(email)]) { _ in true } ?? false
    }

    func unreadMessages(userId: Int64, limit: Int) throws -> [InboxItem] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT i.id, i.kind, i.body, i.createdAt, s.firstName || ' ' || s.lastName AS sender
                FROM inbox i LEFT JOIN users s ON s.id = i.senderId
                WHERE i.userId = ? AND i.readAt IS NULL ORDER BY i.id LIMIT ?
                """,
            arguments: [userId, limit]
        ).map {
            try InboxItem(
                id: $0.decode(forColumn: "id"),
                senderName: $0.decode(forColumn: "sender"),
                kind: $0.decode(forColumn: "kind"),
                body: $0.decode(forColumn: "body"),
                createdAt: $0.decode(forColumn: "createdAt")
            )
        }
    }

    func unreadCount(userId: Int64) throws -> Int {
        try FastStatement.first(db, "SELECT count(*) FROM inbox WHERE userId = ? AND readAt IS NULL", [.int(userId)]) { Int($0.int64(0)) } ?? 0
    }

    func userCounts(activeSince: Date) throws -> UserCounts {
        let row = try Row.fetchOne(
            db,
            sql: """
                SELECT (SELECT count(*) FROM users) AS registered,
                       (SELECT count(*) FROM users u JOIN phones p ON p.phone = u.phone WHERE p.optedOut) AS optedOut,
                       (SELECT count(*) FROM users WHERE role = 'admin') AS admins,
                       (SELECT count(*) FROM conversations c JOIN users u ON u.phone = c.phone
                         WHERE json_extract(c.state, '$.loggedInAt') IS NOT NULL AND c.updatedAt >= ?) AS loggedIn
                """,
            arguments: [activeSince]
        )!
        return try UserCounts(
            registered: row.decode(forColumn: "registered"),
            optedOut: row.decode(forColumn: "optedOut"),
            admins: row.decode(forColumn: "admins"),
            loggedIn: row.decode(forColumn: "loggedIn")
        )
    }

    func findUsers(matching text: String, limit: Int) throws -> [Account] {
        let text = Inbound.composed(text)
        func like(_ text: String) -> String {
            "%" + text.replacing("\\", with: "\\\\").replacing("%", with: "\\%").replacing("_", with: "\\_") + "%"
        }
        let pattern = like(text)
        // SQLite's LIKE ignores the case of ASCII letters only: a name in another script is also looked for as
        // written in capitals, in small letters, and capitalised (анна finds Анна, ИВАНОВА finds Иванова).
        var namePatterns = [pattern]
        if !text.utf8.allSatisfy({ $0 < 0x80 }) {
            for variant in [text.lowercased(), text.uppercased(), text.capitalized] where !namePatterns.contains(like(variant)) {
                namePatterns.append(like(variant))
            }
        }
        // A whole number in any form, else a part of one written with dashes, dots or spaces (555-0105) by its digits.
        var phonePattern = pattern
        if let phone = PhoneNumber.normalize(text) {
            phonePattern = like(phone)
        } else if text.allSatisfy({ "0123456789+-.() ".contains($0) }), text.filter(\.isNumber).count >= 3 {
            phonePattern = like((text.hasPrefix("+") ? "+" : "") + text.filter(\.isNumber))
        }
        let name = Array(repeating: "firstName || ' ' || lastName LIKE ? ESCAPE '\\'", count: namePatterns.count).joined(separator: " OR ")
        return try Row.fetchAll(
            db,
            sql: """
                SELECT * FROM users
                WHERE \(name) OR email LIKE ? ESCAPE '\\' OR phone LIKE ? ESCAPE '\\' OR phone LIKE ? ESCAPE '\\'
                ORDER BY id LIMIT ?
                """,
            arguments: StatementArguments(namePatterns + [pattern, pattern, phonePattern]) + [limit]
        ).map(Self.account)
    }

    /// Counted inside the BROADCAST and YES webhooks' transaction, so every webhook in that batch waits for it: the
    /// people who cannot be texted are found from `phones` (only numbers whose consent ever changed have a row)
    /// rather than by looking every person up there. At 200,000 people: 7 ms instead of 43 ms.
    func broadcastAudience() throws -> BroadcastAudience {
        let row = try Row.fetchOne(
            db,
            sql: """
                SELECT (SELECT count(*) FROM users) AS registered,
                       (SELECT count(*) FROM phones p JOIN users u ON u.phone = p.phone WHERE p.optedOut OR p.suppressed) AS untextable
                """
        )!
        let registered: Int = try row.decode(forColumn: "registered")
        let untextable: Int = try row.decode(forColumn: "untextable")
        return BroadcastAudience(registered: registered, textable: registered - untextable)
    }

    /// The columns `account(_: FastStatement.Row)` reads, in its order.
    static let accountColumns =
        "id, phone, firstName, lastName, email, role, createdAt, passcodeHash, passcodeSalt, passcodeIterations, failedLogins, firstFailedLoginAt, lockedUntil, "
        + "failedLoginTimes, passcodeFromOrganiser"

    /// The account in a row of `accountColumns`, starting at column `first`.
    static func account(_ row: FastStatement.Row, from first: CInt = 0) throws -> Account {
        guard let createdAt = row.date(first + 6) else {
            throw DatabaseError(resultCode: .SQLITE_MISMATCH, message: "users.createdAt is not a date", sql: nil)
        }
        return Account(
            id: row.int64(first),
            phone: row.text(first + 1) ?? "",
            firstName: row.text(first + 2) ?? "",
            lastName: row.text(first + 3) ?? "",
            email: row.text(first + 4) ?? "",
            role: row.text(first + 5).flatMap(Role.init(rawValue:)) ?? .user,
            createdAt: createdAt,
            passcode: PasscodeHash(hash: row.bytes(first + 7), salt: row.bytes(first + 8), iterations: Int(row.int64(first + 9))),
            recentFailedLogins: FailedLoginTimes.decode(row.text(first + 13), count: Int(row.int64(first + 10)), first: row.date(first + 11)),
            lockedUntil: row.date(first + 12),
            passcodeFromOrganiser: row.int64(first + 14) != 0
        )
    }

    static func account(_ row: Row) throws -> Account {
        try Account(
            id: row.decode(forColumn: "id"),
            phone: row.decode(forColumn: "phone"),
            firstName: row.decode(forColumn: "firstName"),
            lastName: row.decode(forColumn: "lastName"),
            email: row.decode(forColumn: "email"),
            role: Role(rawValue: row.decode(forColumn: "role")) ?? .user,
            createdAt: row.decode(forColumn: "createdAt"),
            passcode: PasscodeHash(
                hash: [UInt8](row.decode(Data.self, forColumn: "passcodeHash")),
                salt: [UInt8](row.decode(Data.self, forColumn: "passcodeSalt")),
                iterations: row.decode(forColumn: "passcodeIterations")
            ),
            recentFailedLogins: FailedLoginTimes.decode(
                row.decode(forColumn: "failedLoginTimes"),
                count: row.decode(forColumn: "failedLogins"),
                first: row.decode(forColumn: "firstFailedLoginAt")
            ),
            lockedUntil: row.decode(forColumn: "lockedUntil"),
            passcodeFromOrganiser: row.decode(forColumn: "passcodeFromOrganiser")
        )
    }
}

/// `users.failedLoginTimes`: when each wrong passcode still inside the lockout window was sent, oldest first,
/// as SQLite dates separated by commas (`2026-12-01 10:00:00.000,2026-12-01 10:04:00.000`).
enum FailedLoginTimes {
    static func encode(_ times: [Date]) -> String? {
        times.isEmpty ? nil : times.compactMap { String.fromDatabaseValue($0.databaseValue) }.joined(separator: ",")
    }

    /// The times in `text`; for a row written before the column existed, `count` failures at `first` (they
    /// leave the window when the old fixed window would have ended).
    static func decode(_ text: String?, count: Int, first: Date?) -> [Date] {
        guard let text else { return first.map { Array(repeating: $0, count: min(max(count, 0), 64)) } ?? [] }  // a damaged count must not trap
        return text.split(separator: ",").compactMap { Date.fromDatabaseValue(String($0).databaseValue) }
    }
}

extension PersonMentions {
    /// Whether SQLite's `lower()`, which knows ASCII letters only, can find the name in any case.
    fileprivate var nameIsASCII: Bool { name.utf8.allSatisfy { $0 < 0x80 } }
}
