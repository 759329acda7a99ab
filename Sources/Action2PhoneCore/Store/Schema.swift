// SPDX-License-Identifier: Apache-2.0
import GRDB

/// The database schema as named, append-only migrations. Never edit one that has shipped: add another.
enum Schema {
    /// The first migration, which every Action2Phone database has recorded.
    static let firstMigration = "v1 users, phones, consent log, conversations, inbound, inbox, outbox, pending callbacks"

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration(firstMigration) { db in
            try db.create(table: "users") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("phone", .text).notNull().unique()
                t.column("firstName", .text).notNull()
                t.column("lastName", .text).notNull()
                t.column("email", .text).notNull().unique().collate(.nocase)
                t.column("passcodeHash", .blob).notNull()
                t.column("passcodeSalt", .blob).notNull()
                t.column("passcodeIterations", .integer).notNull().check { $0 >= 1 }
                t.column("role", .text).notNull().defaults(to: "user").check { ["user", "admin"].contains($0) }
                t.column("createdAt", .datetime).notNull()
                t.column("lastSeenAt", .datetime)
                t.column("failedLogins", .integer).notNull().defaults(to: 0)
                t.column("firstFailedLoginAt", .datetime)
                t.column("lockedUntil", .datetime)
            }
            // Consent state per number, registered or not; survives DELETE for opt-out compliance.
            try db.create(table: "phones") { t in
                t.primaryKey("phone", .text)
                t.column("optedOut", .boolean).notNull().defaults(to: false)
                t.column("suppressed", .boolean).notNull().defaults(to: false)
                t.column("suppressedReason", .text)
                t.column("updatedAt", .datetime).notNull()
            }
            try db.create(table: "consentLog") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("phone", .text).notNull().indexed()
                t.column("action", .text).notNull().check { ["optOut", "optIn", "suppress", "unsuppress"].contains($0) }
                t.column("source", .text).notNull().check { ["keyword", "twilio", "operator"].contains($0) }
                t.column("text", .text)
                t.column("createdAt", .datetime).notNull()
            }
            try db.execute(
                sql: """
                    CREATE TRIGGER consentLog_no_update BEFORE UPDATE ON consentLog
                    BEGIN SELECT RAISE(ABORT, 'consentLog is append-only'); END;
                    CREATE TRIGGER consentLog_no_delete BEFORE DELETE ON consentLog
                    BEGIN SELECT RAISE(ABORT, 'consentLog is append-only'); END;
                    """
            )
            // Conversation state per number: the pending question, its answers so far, the login.
            try db.create(table: "conversations") { t in
                t.primaryKey("phone", .text)
                t.column("state", .text).notNull()
                t.column("updatedAt", .datetime).notNull()
            }
            // Every webhook that passed validation, with the exact reply sent (for retried MessageSids).
            try db.create(table: "inbound") { t in
                t.primaryKey("messageSid", .text)
                t.column("idempotencyToken", .text).unique()
                t.column("from", .text).notNull().indexed()
                t.column("to", .text).notNull()
                t.column("body", .text).notNull()
                t.column("numMedia", .integer).notNull().defaults(to: 0)
                t.column("params", .text).notNull()
                t.column("reply", .text).notNull()
                t.column("receivedAt", .datetime).notNull()
            }
            try db.create(table: "inbox") { t in
                t.autoIncrementedPrimaryKey("id")
                t.belongsTo("user", inTable: "users", onDelete: .cascade).notNull()
                t.column("kind", .text).notNull().check { ["direct", "broadcast"].contains($0) }
                t.belongsTo("sender", inTable: "users", onDelete: .setNull)
                t.column("body", .text).notNull()
                t.column("createdAt", .datetime).notNull()
                t.column("readAt", .datetime)
            }
            try db.create(index: "inbox_unread", on: "inbox", columns: ["userId", "readAt", "id"])
            try db.create(table: "outbox") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("to", .text).notNull()
                t.column("body", .text).notNull()
                t.column("purpose", .text).notNull().check { ["reply", "direct", "broadcast", "operator"].contains($0) }
                t.column("status", .text).notNull().defaults(to: "queued").check {
                    ["queued", "sending", "sent", "delivered", "undelivered", "failed", "uncertain", "simulated"].contains($0)
                }
                t.column("attempts", .integer).notNull().defaults(to: 0)
                t.column("twilioSid", .text).unique()
                t.column("errorCode", .integer)
                t.column("errorMessage", .text)
                t.column("inReplyTo", .text)
                t.column("createdAt", .datetime).notNull()
                t.column("updatedAt", .datetime).notNull()
                t.column("nextAttemptAt", .datetime)
                t.column("firstAttemptAt", .datetime)
                // Set after a 5xx, timeout or dropped connection: Twilio may have created the message, so the
                // next attempt first looks for it (Twilio has no idempotency key for sends).
                t.column("needsReconcile", .boolean).notNull().defaults(to: false)
            }
            try db.create(index: "outbox_queue", on: "outbox", columns: ["status", "id"])
            try db.create(index: "outbox_replies", on: "outbox", columns: ["status", "purpose", "id"])
            // Status callbacks that arrived before their message's SID was recorded (Twilio can call back
            // while the create request is still being answered, or while a lost answer is reconciled).
            try db.create(table: "pendingCallbacks") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("messageSid", .text).notNull().indexed()
                t.column("status", .text).notNull()
                t.column("errorCode", .integer)
                t.column("errorMessage", .text)
                t.column("receivedAt", .datetime).notNull().indexed()
            }
            try db.create(index: "outbox_by_to", on: "outbox", columns: ["to"])
        }
        migrator.registerMigration("v2 failed login times") { db in
            // The lockout counts the wrong passcodes of the last 15 minutes (a sliding window): it needs each one's time.
            try db.alter(table: "users") { t in t.add(column: "failedLoginTimes", .text) }
        }
        migrator.registerMigration("v3 outbox recipientDeleted") { db in
            // A text whose recipient deleted their account is never sent again, whatever its (erased) body says.
            try db.alter(table: "outbox") { t in t.add(column: "recipientDeleted", .boolean).notNull().defaults(to: false) }
            try db.execute(sql: "UPDATE outbox SET recipientDeleted = 1 WHERE body = '[deleted]'")
        }
        migrator.registerMigration("v4 broadcasts fanned out after the webhook") { db in
            // The YES that confirms a broadcast records it here; its inbox rows and texts are written afterwards, a
            // chunk of people per transaction (SPEC §3: no fan-out inside the webhook). `doneThroughUserId` is how far
            // the fan-out has got, so a stop in the middle resumes where it was, never writing anyone twice.
            try db.create(table: "broadcasts") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("senderId", .integer)
                t.column("body", .text).notNull()
                t.column("createdAt", .datetime).notNull()
                t.column("lastUserId", .integer).notNull()
                t.column("doneThroughUserId", .integer).notNull().defaults(to: 0)
                t.column("stored", .integer).notNull().defaults(to: 0)
                t.column("queued", .integer).notNull().defaults(to: 0)
                t.column("finishedAt", .datetime)
            }
            try db.execute(sql: "CREATE INDEX broadcasts_unfinished ON broadcasts (id) WHERE finishedAt IS NULL")
        }
        migrator.registerMigration("v5 admins index") { db in
            // USERS counts the admins inside a webhook's transaction, and `users list --admins` lists them: without
            // this they read every person (27 ms at 200,000 people, while every other webhook waits). Only admins
            // are in it, so registering or texting writes nothing more.
            try db.execute(sql: "CREATE INDEX users_admins ON users (id) WHERE role = 'admin'")
        }
        migrator.registerMigration("v6 passcode from an organiser") { db in
            // Set by users reset-passcode, cleared by PASSCODE: the login reply suggests choosing one's own.
            try db.alter(table: "users") { t in t.add(column: "passcodeFromOrganiser", .boolean).notNull().defaults(to: false) }
        }
        migrator.registerMigration("v7 outbox earlier SIDs") { db in
            // The Twilio SIDs of the messages a row sent before an operator retried it: the lookup before a resend must
            // not take one of them for the new attempt's message, and a late callback about one changes nothing.
            try db.create(table: "outboxEarlierSids") { t in
                t.primaryKey("sid", .text)
                t.belongsTo("outbox", inTable: "outbox", onDelete: .cascade).notNull()
            }
        }
        migrator.registerMigration("v8 names and emails composed") { db in
            // Names and emails are stored, and matched, composed (NFC) since this version: an é typed as e and an accent
            // is the é. Older rows typed so are composed too, so that FIND, SEND and the duplicate-email check find
            // them; an email whose composed form is someone else's stays as it was (the unique index would refuse it).
            func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
            let rows = try Row.fetchAll(db, sql: "SELECT id, firstName, lastName, email FROM users")
            for row in rows {
                let (first, last, email): (String, String, String) = (row["firstName"], row["lastName"], row["email"])
                let composed = (Inbound.composed(first), Inbound.composed(last), Inbound.composed(email))
                guard bytes(composed.0) != bytes(first) || bytes(composed.1) != bytes(last) || bytes(composed.2) != bytes(email) else { continue }
                let id: Int64 = row["id"]
                let taken = try Bool.fetchOne(db, sql: "SELECT 1 FROM users WHERE email = ? AND id != ?", arguments: [composed.2, id]) == true
                try db.execute(
                    sql: "UPDATE users SET firstName = ?, lastName = ?, email = ? WHERE id = ?",
                    arguments: [composed.0, composed.1, taken ? email : composed.2, id]
                )
            }
        }
        migrator.registerMigration("v9 admins past and present") { db in
            // The phones that have had the admin role: their commands and the answers to them (FIND's list, SEND's
            // confirmation) may name anyone, so a deletion looks there, an admin demoted since included. Kept by
            // triggers; a phone leaves with its account (whose own rows are erased with it).
            try db.execute(
                sql: """
                    CREATE TABLE adminPhones (phone TEXT PRIMARY KEY NOT NULL) WITHOUT ROWID;
                    INSERT INTO adminPhones (phone) SELECT phone FROM users WHERE role = 'admin';
                    CREATE TRIGGER users_admin_registered AFTER INSERT ON users WHEN NEW.role = 'admin'
                        BEGIN INSERT OR IGNORE INTO adminPhones (phone) VALUES (NEW.phone); END;
                    CREATE TRIGGER users_admin_promoted AFTER UPDATE OF role ON users WHEN NEW.role = 'admin'
                        BEGIN INSERT OR IGNORE INTO adminPhones (phone) VALUES (NEW.phone); END;
                    CREATE TRIGGER users_deleted_leave_adminPhones AFTER DELETE ON users
                        BEGIN DELETE FROM adminPhones WHERE phone = OLD.phone; END;
                    """
            )
        }
        migrator.registerMigration("v10 erasures after DELETE") { db in
            // A DELETE erases the admins' rows that name the person after its own transaction, a chunk at a time
            // (`SQLiteStore.eraseMentionsChunk`): what is left to do, and how far it has got, so that a stop in the middle
            // resumes where it was. The row, with the person's details, goes when it is done.
            try db.create(table: "erasures") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("phone", .text).notNull()
                t.column("email", .text).notNull()
                t.column("name", .text).notNull()
                t.column("createdAt", .datetime).notNull()
                // The last outbox row and inbound row when the account was deleted: later ones are not read.
                t.column("outboxThrough", .integer).notNull()
                t.column("inboundThrough", .integer).notNull()
                // The outbox's replies first, then the inbound log; one admin's rows after another.
                t.column("inReplies", .boolean).notNull().defaults(to: true)
                t.column("adminPhone", .text).notNull().defaults(to: "")
                t.column("afterId", .integer).notNull().defaults(to: 0)
            }
        }
        return migrator
    }
}
