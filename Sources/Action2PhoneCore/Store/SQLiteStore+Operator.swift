// SPDX-License-Identifier: Apache-2.0
import Foundation
import GRDB
import TwilioKit

/// What operators do from the command line. Every method is one transaction.
extension SQLiteStore {
    static let userSelect = """
        SELECT u.*, coalesce(p.optedOut, 0) AS optedOut, coalesce(p.suppressed, 0) AS suppressed,
               (SELECT count(*) FROM inbox i WHERE i.userId = u.id AND i.readAt IS NULL) AS unread
        FROM users u LEFT JOIN phones p ON p.phone = u.phone
        """

    static func userRecord(_ row: Row, now: Date) throws -> UserRecord {
        let lockedUntil: Date? = try row.decode(forColumn: "lockedUntil")
        return try UserRecord(
            id: row.decode(forColumn: "id"),
            phone: row.decode(forColumn: "phone"),
            firstName: row.decode(forColumn: "firstName"),
            lastName: row.decode(forColumn: "lastName"),
            email: row.decode(forColumn: "email"),
            role: Role(rawValue: row.decode(forColumn: "role")) ?? .user,
            optedOut: row.decode(forColumn: "optedOut"),
            suppressed: row.decode(forColumn: "suppressed"),
            createdAt: row.decode(forColumn: "createdAt"),
            lastSeenAt: row.decode(forColumn: "lastSeenAt"),
            unread: row.decode(forColumn: "unread"),
            locked: lockedUntil.map { $0 > now } ?? false,
            lockedUntil: lockedUntil
        )
    }

    public func listUsers(_ filter: UserFilter, now: Date = Date()) async throws -> [UserRecord] {
        try await writer.read { db in
            var conditions: [String] = []
            if filter.optedOut { conditions.append("coalesce(p.optedOut, 0) = 1") }
            if filter.admins { conditions.append("u.role = 'admin'") }
            let whereClause = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
            return try Row.fetchAll(db, sql: Self.userSelect + whereClause + " ORDER BY u.id LIMIT ?", arguments: [filter.limit])
                .map { try Self.userRecord($0, now: now) }
        }
    }

    /// The consent state of a number, registered or not, and its latest change in the consent log; `nil` when it
    /// never changed (it may be texted).
    public func numberConsent(phone: String) async throws -> NumberConsent? {
        try await writer.read { db in
            guard let state = try Row.fetchOne(db, sql: "SELECT optedOut, suppressed FROM phones WHERE phone = ?", arguments: [phone]),
                let last = try Row.fetchOne(
                    db,
                    sql: "SELECT action, source, createdAt FROM consentLog WHERE phone = ? ORDER BY id DESC LIMIT 1",
                    arguments: [phone]
                )
            else { return nil }
            return NumberConsent(
                optedOut: try state.decode(forColumn: "optedOut"),
                suppressed: try state.decode(forColumn: "suppressed"),
                lastAction: try last.decode(forColumn: "action"),
                lastSource: try last.decode(forColumn: "source"),
                lastChange: try last.decode(forColumn: "createdAt")
            )
        }
    }

    /// One user by E.164 phone, email (any case, composed as emails are stored) or numeric id.
    public func user(_ key: String, now: Date = Date()) async throws -> UserRecord? {
        let key = Inbound.composed(key)
        return try await writer.read { db in
            try Row.fetchOne(
                db,
                sql: Self.userSelect + " WHERE u.phone = ? OR u.email = ? OR CAST(u.id AS TEXT) = ? LIMIT 1",
                arguments: [key, key, key]
            ).map { try Self.userRecord($0, now: now) }
        }
    }

    public func findUsers(_ text: String, limit: Int = 50, now: Date = Date()) async throws -> [UserRecord] {
        let ids = try await writer.read { db in try SQLiteFacts(db: db, phone: "").findUsers(matching: text, limit: limit).map(\.id) }
        var out: [UserRecord] = []
        for id in ids { if let u = try await user(String(id), now: now) { out.append(u) } }
        return out
    }

    /// Grants or removes the admin role; `false` when no one has that phone.
    public func setRole(phone: String, _ role: Role) async throws -> Bool {
        try await writer.write { db in
            try db.execute(sql: "UPDATE users SET role = ? WHERE phone = ?", arguments: [role.rawValue, phone])
            return db.changesCount > 0
        }
    }

    /// Gives the account on `phone` a new passcode (`users reset-passcode`: one the operator passes on),
    /// clears its failed logins and lock, and ends its login and any question; `false` when no one has that phone.
    public func resetPasscode(phone: String, to passcode: PasscodeHash, now: Date = Date()) async throws -> Bool {
        try await writer.write { db in
            guard let id = try Int64.fetchOne(db, sql: "SELECT id FROM users WHERE phone = ?", arguments: [phone]) else { return false }
            try Self.setPasscode(db, passcode, userId: id, fromOrganiser: true)
            try Self.resetConversation(db, phone: phone, now: now)
            return true
        }
    }

    /// As the `DELETE` command, the erasure of the admins' rows that name the person finished before it returns (by
    /// this process, or by a server on the same database meanwhile); `false` when no one has that phone.
    public func deleteUser(phone: String, now: Date = Date()) async throws -> Bool {
        let deleted = try await writer.write { db in
            guard let id = try Int64.fetchOne(db, sql: "SELECT id FROM users WHERE phone = ?", arguments: [phone]) else { return false }
            try Self.deleteAccount(db, userId: id, now: now)
            return true
        }
        guard deleted else { return false }
        do {
            try await finishErasures()
        } catch {
            throw DeletedNotYetErased(phone: phone, cause: error)
        }
        return true
    }

    /// An account deleted, whose mentions in the admins' rows this process could not finish erasing: `serve` does.
    public struct DeletedNotYetErased: Error, CustomStringConvertible {
        public let phone: String
        public let cause: any Error
        public var description: String {
            "the account of \(phone) is deleted, but the admins' commands and replies that name them are not all erased yet (\(cause)); action2phone serve finishes it on this database"
        }
    }

    @discardableResult
    public func finishErasures(while keepGoing: @escaping @Sendable () -> Bool = { true }) async throws -> Int {
        try await runChunks(whilePending: "SELECT EXISTS (SELECT 1 FROM erasures)", keepGoing, Self.eraseMentionsChunk)
    }

    /// Runs `chunk` in one transaction after another while it says it wrote one and `keepGoing` says so, if `pending`
    /// finds work; returns how many it wrote. (`pending` is a read: the server asks every second, mostly for nothing.)
    private func runChunks(
        whilePending pending: String,
        _ keepGoing: @escaping @Sendable () -> Bool,
        _ chunk: @escaping @Sendable (Database, Date) throws -> Bool
    ) async throws -> Int {
        guard try await writer.read({ db in try Bool.fetchOne(db, sql: pending) ?? false }) else { return 0 }
        var chunks = 0
        while keepGoing(), try await writer.write({ db in try chunk(db, Date()) }) { chunks += 1 }
        return chunks
    }

    /// An operator's direct message: into the person's inbox, and texted unless they opted out or are
    /// suppressed. `nil` when no one has that phone; otherwise whether a text was queued.
    public func operatorSend(phone: String, body: String, now: Date = Date()) async throws -> Bool? {
        try await writer.write { db in
            guard let id = try Int64.fetchOne(db, sql: "SELECT id FROM users WHERE phone = ?", arguments: [phone]) else { return nil }
            return try Self.sendDirect(db, recipientId: id, senderId: nil, body: body, purpose: "operator", now: now)
        }
    }

    /// Who a broadcast would reach now.
    public func broadcastAudience() async throws -> BroadcastAudience {
        try await writer.read { db in try SQLiteFacts(db: db, phone: "").broadcastAudience() }
    }

    @discardableResult
    public func fanOutBroadcasts(while keepGoing: @escaping @Sendable () -> Bool = { true }) async throws -> Int {
        try await runChunks(whilePending: "SELECT EXISTS (SELECT 1 FROM broadcasts WHERE finishedAt IS NULL)", keepGoing, Self.fanOutBroadcastChunk)
    }

    /// A broadcast recorded, whose fan-out this process could not finish: `serve` finishes it. Sending it again
    /// would reach everyone twice.
    public struct BroadcastRecordedNotFinished: Error, CustomStringConvertible {
        public let id: Int64
        public let cause: any Error
        public var description: String {
            "broadcast \(id) is recorded, but not yet in every inbox (\(cause)); action2phone serve finishes it on this database: do not send it again"
        }
    }

    /// An operator's broadcast, fanned out before it returns (by this process, or by a server on the same database
    /// meanwhile): (inbox rows, texts queued).
    public func operatorBroadcast(body: String, now: Date = Date()) async throws -> (stored: Int, queued: Int) {
        let id = try await writer.write { db in try Self.queueBroadcast(db, senderId: nil, body: body, now: now) }
        do {
            try await fanOutBroadcasts()
        } catch {
            throw BroadcastRecordedNotFinished(id: id, cause: error)
        }
        return try await writer.read { db in
            let row = try Row.fetchOne(db, sql: "SELECT stored, queued FROM broadcasts WHERE id = ?", arguments: [id])
            return try (row?.decode(forColumn: "stored") ?? 0, row?.decode(forColumn: "queued") ?? 0)
        }
    }

    /// Opts a number out or back in on an operator's word (consent log source `operator`). Opting out ends the
    /// login and any question, as a STOP keyword does.
    public func setConsent(phone: String, optedOut: Bool, note: String, now: Date = Date()) async throws {
        try await writer.write { db in
            try Self.setOptedOut(db, phone: phone, optedOut: optedOut, source: "operator", text: note, now: now)
            if optedOut { try Self.resetConversation(db, phone: phone, now: now) }
        }
    }

    /// Clears a suppression so the number gets broadcasts and direct messages again; `false` when it was not suppressed.
    public func unsuppress(phone: String, now: Date = Date()) async throws -> Bool {
        try await writer.write { db in
            try db.execute(
                sql: "UPDATE phones SET suppressed = 0, suppressedReason = NULL, updatedAt = ? WHERE phone = ? AND suppressed",
                arguments: [now, phone]
            )
            guard db.changesCount > 0 else { return false }
            try db.execute(
                sql:
                    "INSERT INTO consentLog (phone, action, source, text, createdAt) VALUES (?, 'unsuppress', 'operator', 'cleared by an operator', ?)",
                arguments: [phone, now]
            )
            return true
        }
    }

    /// Queues rows again. `uncertain` rows are first looked for at Twilio before any resend; `failed` and
    /// `undelivered` ones are sent again, each with a fresh set of attempts. Rows in any other state are refused
    /// (they were sent or are on their way), as are unknown ids, and rows to a number that opted out or cannot
    /// receive texts (the worker would only refuse them). `ids` empty means every row with `status`, but those not
    /// sent because their number had opted out, which are skipped (a START later is no consent to what was stopped):
    /// an operator sends them by id. `lookUp` false sends them without the lookup first, for a text it cannot settle
    /// (the operator has decided that a second copy is better than none).
    public func retryOutbox(
        ids: [Int64],
        status: OutboxStatus? = nil,
        lookUp: Bool = true,
        now: Date = Date()
    ) async throws -> (queued: [Int64], refused: [OutboxRetryRefusal]) {
        try await writer.write { db in
            var targets = ids
            if ids.isEmpty, let status {
                targets = try Int64.fetchAll(db, sql: "SELECT id FROM outbox WHERE status = ? ORDER BY id", arguments: [status.rawValue])
            }
            var queued: [Int64] = []
            var refused: [OutboxRetryRefusal] = []
            try Self.eraseNowIfPending(db, outbox: targets, now: now)
            for id in targets {
                guard
                    let row = try Row.fetchOne(
                        db,
                        sql: "SELECT status, \"to\", recipientDeleted, errorCode, errorMessage FROM outbox WHERE id = ?",
                        arguments: [id]
                    )
                else {
                    refused.append(.init(id: id, reason: "no outbox row with id \(id)"))
                    continue
                }
                let current: String = try row.decode(forColumn: "status")
                let to: String = try row.decode(forColumn: "to")
                let consent = try SQLiteFacts(db: db, phone: to).consent()
                if consent.optedOut {
                    refused.append(.init(id: id, reason: "row \(id) is to \(to), which opted out: nothing is sent to it until it texts START"))
                    continue
                }
                if consent.suppressed {
                    refused.append(
                        .init(
                            id: id,
                            reason: "row \(id) is to \(to), which Twilio said cannot receive texts: action2phone users unsuppress \(to) first"
                        )
                    )
                    continue
                }
                if try row.decode(Bool.self, forColumn: "recipientDeleted") {
                    refused.append(.init(id: id, reason: "row \(id) was erased when a person deleted their account"))
                    continue
                }
                if ids.isEmpty {
                    let errorCode: Int? = try row.decode(forColumn: "errorCode")
                    let errorMessage: String? = try row.decode(forColumn: "errorMessage")
                    if errorCode == 21610 || errorMessage == Self.optedOutRefusal {
                        refused.append(
                            .init(id: id, reason: "row \(id) was not sent because \(to) had opted out: action2phone outbox retry \(id) sends it")
                        )
                        continue
                    }
                    // twilio.md §10.14: never retried. (21408, a region the account may not send to, is: the operator
                    // may have allowed it since.)
                    if let errorCode, [21211, 21612].contains(errorCode) {
                        let meaning = TwilioErrorCodes.meaning(errorCode).map { " (\($0))" } ?? ""
                        refused.append(
                            .init(
                                id: id,
                                reason:
                                    "row \(id) failed with Twilio error \(errorCode)\(meaning), and would again: action2phone outbox retry \(id) sends it anyway"
                            )
                        )
                        continue
                    }
                }
                guard ["uncertain", "failed", "undelivered"].contains(current) else {
                    refused.append(.init(id: id, reason: "row \(id) is \(current): only uncertain, failed or undelivered rows can be retried"))
                    continue
                }
                // The message it sent before (its SID) is remembered, not taken for the new one. Unless earlier attempts
                // may have created a message no SID names (an uncertain row, or one that failed after a timeout), the
                // lookup before a resend searches from the new first attempt, not the old one.
                try db.execute(
                    sql: """
                        INSERT OR IGNORE INTO outboxEarlierSids (sid, outboxId) SELECT twilioSid, id FROM outbox WHERE id = ? AND twilioSid IS NOT NULL;
                        UPDATE outbox SET status = 'queued', nextAttemptAt = NULL, attempts = 0, twilioSid = NULL,
                        needsReconcile = ? AND (needsReconcile OR ? = 'uncertain') AND firstAttemptAt IS NOT NULL,
                        firstAttemptAt = CASE WHEN ? AND (needsReconcile OR ? = 'uncertain') THEN firstAttemptAt END, updatedAt = ? WHERE id = ?
                        """,
                    arguments: [id, lookUp, current, lookUp, current, now, id]
                )
                queued.append(id)
            }
            return (queued, refused)
        }
    }
}
