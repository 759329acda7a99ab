import Foundation
import GRDB
import Testing
import TwilioKit

@testable import Action2PhoneCore

@Suite("SQLite store")
struct SQLiteStoreTests {
    @Test func heldStatusCallbacksAreTakenOldestFirstAndPutBackInFront() throws {
        let held = HeldStatusCallbacks()
        let callbacks = try (1...3).map { try StatusCallback(fields: [.init("MessageSid", "SM\($0)"), .init("MessageStatus", "sent")]) }
        for callback in callbacks { held.hold(callback, receivedAt: Date()) }
        let taken = held.take(2)
        #expect(taken.map(\.0.messageSid) == ["SM1", "SM2"] && held.count == 1)
        held.putBack(taken)
        #expect(held.take(10).map(\.0.messageSid) == ["SM1", "SM2", "SM3"] && held.count == 0)
    }

    @Test func aFullDiskIsReportedByTheHealthCheck() async throws {
        // Given a database on a disk with room, and the same database asked for more room than any disk has
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        #expect((SQLiteStore.freeBytes(onDiskOf: path) ?? 0) > 0)
        try await store.ping()
        let greedy = try SQLiteStore(DatabasePool(path: path, configuration: SQLiteStore.makeConfiguration()), minimumFreeDisk: .max)
        // Then the health check says the disk is full, though no write has failed yet
        await #expect {
            try await greedy.ping()
        } throws: { "\($0)".contains("the disk holding the database is full") }
    }

    @Test func aStatusCallbackThatCannotBeStoredCountsForHealth() async throws {
        // Given a database that may not grow any more
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        try await store.writer.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA max_page_count = \(try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0)")
        }
        // When a status callback about a send not yet recorded (kept for later) needs room
        let callback = try StatusCallback(fields: [
            .init("MessageSid", "SM" + String(repeating: "a", count: 32)), .init("MessageStatus", "failed"),
            .init("ErrorMessage", String(repeating: "x", count: 100_000)),
        ])
        await #expect(throws: StatusCallbackHeld.self) { try await store.applyStatusCallback(callback, now: Date()) }
        // Then health reports failing writes, as for a webhook's
        await #expect {
            try await store.ping()
        } throws: { "\($0)".contains("writes are failing") && "\($0)".contains("database or disk is full") }
        // And the callback is kept, not lost (Twilio does not send it again): tried again in vain while the database
        // is full, then stored once it may grow
        #expect(store.heldCallbacks.count == 1)
        await #expect(throws: DatabaseError.self) { try await store.retryHeldStatusCallbacks() }
        #expect(store.heldCallbacks.count == 1)
        // (with another kept beside it, which the database will refuse for itself: it is dropped, not kept for good)
        let refused = try StatusCallback(fields: [
            .init("MessageSid", "SM" + String(repeating: "c", count: 32)), .init("MessageStatus", "sent"),
            .init("ErrorMessage", String(repeating: "x", count: 100_000)),
        ])
        await #expect(throws: StatusCallbackHeld.self) { try await store.applyStatusCallback(refused, now: Date()) }
        try await store.writer.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA max_page_count = 1073741823")
            try db.execute(
                sql: "CREATE TRIGGER refused BEFORE INSERT ON pendingCallbacks WHEN NEW.status = 'sent' BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        }
        #expect(try await store.retryHeldStatusCallbacks() == (stored: 1, dropped: 1))
        #expect(store.heldCallbacks.count == 0)
        #expect(try fetchInt(path, "SELECT count(*) FROM pendingCallbacks WHERE status = 'failed' AND length(errorMessage) = 100000") == 1)
        // (and health is good again once the probe's failed answer is no longer reused: a quarter second after writes work)
        try await Task.sleep(for: .milliseconds(300))
        try await store.ping()
    }

    @Test func freshFileIsMigratedInWALMode() throws {
        // Given a path whose folder does not exist yet
        let path = makeTestDatabasePath()
        // When the store opens it
        let store = try SQLiteStore.open(path: path)
        // Then every migration is applied, in WAL mode
        #expect(
            try store.appliedMigrations() == [
                "v1 users, phones, consent log, conversations, inbound, inbox, outbox, pending callbacks", "v2 failed login times",
                "v3 outbox recipientDeleted", "v4 broadcasts fanned out after the webhook", "v5 admins index",
                "v6 passcode from an organiser", "v7 outbox earlier SIDs", "v8 names and emails composed",
                "v9 admins past and present", "v10 erasures after DELETE",
            ]
        )
        let queue = try DatabaseQueue(path: path)
        #expect(try queue.read { try String.fetchOne($0, sql: "PRAGMA journal_mode") } == "wal")
        // and readable by its owner alone, its WAL too
        for file in [path, path + "-wal"] {
            #expect((try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? NSNumber)?.intValue == 0o600, "\(file)")
        }
        // and every commit synced (2 = FULL): an acknowledged webhook survives a power loss. Asked of the writer's own
        // connection (a read would ask a reader's), which is the one that commits.
        #expect(try store.writer.writeWithoutTransaction { try Int.fetchOne($0, sql: "PRAGMA synchronous") } == 2)
        // and erased rows zeroed, not left in free pages (Debian's SQLite does that by default; this guards the others)
        #expect(try store.writer.writeWithoutTransaction { try Int.fetchOne($0, sql: "PRAGMA secure_delete") } == 1)
        let tables = try queue.read {
            try String.fetchAll($0, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        }
        #expect(
            tables == [
                "adminPhones", "broadcasts", "consentLog", "conversations", "erasures", "grdb_migrations", "inbound", "inbox", "outbox",
                "outboxEarlierSids",
                "pendingCallbacks",
                "phones",
                "users",
            ]
        )
    }

    @Test func onlyAnEmptyRegularFileOfOursIsTakenForANewDatabase() throws {
        let folder = makeTestDatabasePath() + ".d"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let empty = folder + "/empty.sqlite"
        let full = folder + "/full.sqlite"
        FileManager.default.createFile(atPath: empty, contents: nil)
        FileManager.default.createFile(atPath: full, contents: Data("x".utf8))
        try FileManager.default.createSymbolicLink(atPath: folder + "/link.sqlite", withDestinationPath: empty)
        #expect(SQLiteStore.isEmptyFile(empty))
        // Never a device (its mode would be changed for every user of the machine), a link, a folder or a file with data
        for path in ["/dev/null", folder + "/link.sqlite", folder, full, folder + "/missing.sqlite"] {
            #expect(!SQLiteStore.isEmptyFile(path), "\(path)")
        }
    }

    @Test func namesAndEmailsStoredWithDecomposedAccentsAreComposedOnUpgrade() async throws {
        // Given a database from before v8 with a name and an email typed as e + U+0301, and two look-alike emails
        let path = try await databaseMigrated(
            upTo: "v7 outbox earlier SIDs",
            with: [
                ("+14155550100", "Rene\u{301}e", "rene\u{301}e@example.org", "user"),
                ("+14155550101", "Zoe\u{308}", "zoe\u{308}@example.org", "user"),
                ("+14155550102", "Zoë", "zo\u{EB}@example.org", "user"),
            ]
        )
        // When the store opens it
        _ = try SQLiteStore.open(path: path)
        // Then names and emails are composed, but an email whose composed form is already someone's stays as it was
        let rows = try fetchRows(path, "SELECT phone, hex(firstName) AS first, hex(email) AS email FROM users ORDER BY phone")
        let hex = { (s: String) in s.utf8.map { String(format: "%02X", $0) }.joined() }
        #expect(rows.map { $0["first"] as String } == [hex("Ren\u{E9}e"), hex("Zo\u{EB}"), hex("Zo\u{EB}")])
        #expect(rows.map { $0["email"] as String } == [hex("ren\u{E9}e@example.org"), hex("zoe\u{308}@example.org"), hex("zo\u{EB}@example.org")])
    }

    @Test func aVersionOneDatabaseIsUpgradedWithItsFailedLoginsKept() async throws {
        // Given a database from before v2, with someone who sent 2 wrong passcodes
        let path = makeTestDatabasePath()
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let first = Date(timeIntervalSince1970: 1_764_000_000)
        let old = try DatabaseQueue(path: path)
        try Schema.migrator.migrate(old, upTo: "v1 users, phones, consent log, conversations, inbound, inbox, outbox, pending callbacks")
        try await old.write { db in
            try db.execute(
                sql: """
                    INSERT INTO users (phone, firstName, lastName, email, passcodeHash, passcodeSalt, passcodeIterations, createdAt, failedLogins, firstFailedLoginAt)
                    VALUES ('+14155550100', 'Ivan', 'Petrov', 'ivan@example.org', x'00', x'00', 1000, ?, 2, ?)
                    """,
                arguments: [first, first]
            )
            // and an admin
            try db.execute(
                sql: """
                    INSERT INTO users (phone, firstName, lastName, email, passcodeHash, passcodeSalt, passcodeIterations, role, createdAt)
                    VALUES ('+14155550199', 'Vera', 'Commissar', 'vera@example.org', x'00', x'00', 1000, 'admin', ?)
                    """,
                arguments: [first]
            )
            // and a text to someone who deleted their account then (its body erased)
            try db.execute(
                sql:
                    "INSERT INTO outbox (\"to\", body, purpose, status, createdAt, updatedAt) VALUES ('+14155550101', '[deleted]', 'direct', 'failed', ?, ?)",
                arguments: [first, first]
            )
        }
        try old.close()
        // When the store opens it
        let store = try SQLiteStore.open(path: path)
        // Then v2 (and every later migration) is applied and the failures still count, at the first one's time
        #expect(try store.appliedMigrations().contains("v2 failed login times"))
        let (_, account) = try await store.conversationSnapshot(phone: "+14155550100")
        #expect(account?.recentFailedLogins == [first, first])
        // and the erased text is marked as to a deleted account (v3), so it is never retried
        #expect(try fetchInt(path, "SELECT recipientDeleted FROM outbox") == 1)
        // and no one's passcode is taken for an organiser's (v6)
        #expect(try fetchInt(path, "SELECT count(*) FROM users WHERE passcodeFromOrganiser") == 0)
        // and the admins' index (v5) holds the admin there was
        #expect(try fetchInt(path, "SELECT count(*) FROM users INDEXED BY users_admins WHERE role = 'admin'") == 1)
    }

    @Test func aDatabaseThroughALinkIsCreatedPrivateAtItsTarget() throws {
        // Given db/action2phone.sqlite linked to a file on another volume, not yet created
        let path = makeTestDatabasePath()
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("volume"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: "volume/live.sqlite")
        // When the store opens it
        _ = try SQLiteStore.open(path: path)
        // Then the target is the database, readable by its owner alone, and the link is still a link
        let target = folder.appendingPathComponent("volume/live.sqlite").path
        #expect((try FileManager.default.attributesOfItem(atPath: target)[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: path) == "volume/live.sqlite")
    }

    @Test func aDatabaseThroughAChainOfLinksOrALinkedFolderIsCreatedPrivateWhereTheyLead() throws {
        // Given, none of the databases there yet: a.sqlite → b.sqlite → real/c.sqlite, and a folder F linked to
        // real/sub holding l.sqlite → ../y.sqlite (real/y.sqlite: `..` is taken from real/sub, not from F's folder)
        let folder = URL(fileURLWithPath: makeTestDatabasePath()).deletingLastPathComponent()
        func at(_ name: String) -> String { folder.appendingPathComponent(name).path }
        try FileManager.default.createDirectory(atPath: at("real/sub"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: at("a.sqlite"), withDestinationPath: "b.sqlite")
        try FileManager.default.createSymbolicLink(atPath: at("b.sqlite"), withDestinationPath: "real/c.sqlite")
        try FileManager.default.createSymbolicLink(atPath: at("F"), withDestinationPath: "real/sub")
        try FileManager.default.createSymbolicLink(atPath: at("real/sub/l.sqlite"), withDestinationPath: "../y.sqlite")
        // When the store opens them
        _ = try SQLiteStore.open(path: at("a.sqlite"))
        _ = try SQLiteStore.open(path: at("F/l.sqlite"))
        // Then each database is made where its links lead, readable by its owner alone, and nothing is made on the way
        for target in ["real/c.sqlite", "real/y.sqlite"] {
            #expect((try? FileManager.default.attributesOfItem(atPath: at(target))[.posixPermissions] as? NSNumber)?.intValue == 0o600, "\(target)")
            #expect(SQLiteStore.linkTarget(at(target)) == at(target))
        }
        #expect(!FileManager.default.fileExists(atPath: at("y.sqlite")))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: at("b.sqlite")) == "real/c.sqlite")
        // And a link into a folder that does not exist is refused, saying where it leads
        try FileManager.default.createSymbolicLink(atPath: at("broken.sqlite"), withDestinationPath: "nowhere/x.sqlite")
        #expect {
            try SQLiteStore.open(path: at("broken.sqlite"))
        } throws: { error in
            "\(error)" == "it is a link to \(at("nowhere/x.sqlite")), in a folder that does not exist"
        }
        // And so is a loop of links, and a path ending in / (a folder's)
        try FileManager.default.createSymbolicLink(atPath: at("loop1.sqlite"), withDestinationPath: "loop2.sqlite")
        try FileManager.default.createSymbolicLink(atPath: at("loop2.sqlite"), withDestinationPath: "loop1.sqlite")
        #expect { try SQLiteStore.open(path: at("loop1.sqlite")) } throws: { "\($0)".hasPrefix("its links lead round in a loop") }
        #expect { try SQLiteStore.open(path: at("new.sqlite") + "/") } throws: { "\($0)".hasPrefix("it ends in /, which names a folder") }
        #expect(!FileManager.default.fileExists(atPath: at("new.sqlite")))
    }

    @Test func aPathWithDotDotThroughALinkedFolderIsTakenAsTheKernelTakesIt() throws {
        // Given a folder A linked to deep/inner, and the path A/../n/x.sqlite (deep/n/x.sqlite to the kernel), none made yet
        let folder = URL(fileURLWithPath: makeTestDatabasePath()).deletingLastPathComponent()
        func at(_ name: String) -> String { folder.appendingPathComponent(name).path }
        try FileManager.default.createDirectory(atPath: at("deep/inner"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: at("A"), withDestinationPath: "deep/inner")
        // When the store opens it, by its absolute path and by one relative to the working directory (`../../tmp/…`)
        let up = String(repeating: "../", count: FileManager.default.currentDirectoryPath.split(separator: "/").count)
        _ = try SQLiteStore.open(path: at("A") + "/../n/x.sqlite")
        _ = try SQLiteStore.open(path: up + at("A").dropFirst() + "/../m/x.sqlite")
        // Then each database is made where the kernel finds it, private, and no folder n or m beside A
        for made in ["deep/n/x.sqlite", "deep/m/x.sqlite"] {
            #expect((try? FileManager.default.attributesOfItem(atPath: at(made))[.posixPermissions] as? NSNumber)?.intValue == 0o600, "\(made)")
        }
        #expect(!FileManager.default.fileExists(atPath: at("n")) && !FileManager.default.fileExists(atPath: at("m")))
    }

    @Test func reopeningKeepsDataAndAppliesNothingTwice() async throws {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        _ = try await store.processInbound(
            InboundRecord(messageSid: "SM1", from: "+14155550100", to: "+15005550006", body: "hi"),
            replyMode: .twiml,
            now: Date()
        ) { _, _ in
            Decision(replies: ["hello"], loggedBody: "hi")
        }
        let again = try SQLiteStore.open(path: path)
        #expect(try await again.previousReply(messageSid: "SM1", idempotencyToken: nil)?.contains("hello") == true)
    }

    @Test func consentLogIsAppendOnly() async throws {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        _ = try await store.processInbound(
            InboundRecord(messageSid: "SM1", from: "+14155550100", to: "+15005550006", body: "STOP"),
            replyMode: .twiml,
            now: Date()
        ) { _, _ in
            Decision(replies: [], effects: [.optOut(text: "STOP")], loggedBody: "STOP")
        }
        #expect(try fetchInt(path, "SELECT count(*) FROM consentLog") == 1)
        #expect(throws: DatabaseError.self) { try executeSQL(path, "UPDATE consentLog SET text = 'x'") }
        #expect(throws: DatabaseError.self) { try executeSQL(path, "DELETE FROM consentLog") }
        #expect(try fetchInt(path, "SELECT optedOut FROM phones") == 1)
    }

    @Test func aFailedDecisionLeavesNothingHalfApplied() async throws {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        struct Boom: Error {}
        await #expect(throws: Boom.self) {
            try await store.processInbound(
                InboundRecord(messageSid: "SM1", from: "+14155550100", to: "+15005550006", body: "x"),
                replyMode: .rest,
                now: Date()
            ) { state, facts in
                state.lastActivity = Date()
                _ = try facts.consent()
                throw Boom()
            }
        }
        for table in ["inbound", "conversations", "outbox"] {
            #expect(try fetchInt(path, "SELECT count(*) FROM \(table)") == 0)
        }
    }

    @Test func restRepliesQueueNoBlankText() async throws {
        // A reply part of control characters alone would be an empty SMS: dropped, as in TwiML
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        let record = InboundRecord(messageSid: "SM1", from: "+14155550100", to: "+15005550006", body: "x")
        _ = try await store.processInbound(record, replyMode: .rest, now: Date()) { _, _ in
            Decision(replies: ["\u{1}\u{7}", "real"], loggedBody: "x")
        }
        #expect(try fetchRows(path, "SELECT body FROM outbox").map { $0["body"] as String } == ["real"])
    }

    @Test func duplicateSidDoesNotDecideAgain() async throws {
        let store = try SQLiteStore.open(path: makeTestDatabasePath())
        let record = InboundRecord(messageSid: "SM1", from: "+14155550100", to: "+15005550006", body: "x")
        let first = try await store.processInbound(record, replyMode: .twiml, now: Date()) { _, _ in Decision(replies: ["one"], loggedBody: "x") }
        let second = try await store.processInbound(record, replyMode: .twiml, now: Date()) { _, _ in Decision(replies: ["two"], loggedBody: "x") }
        #expect(first == .processed(twiml: TwiML.messagingResponse(["one"])))
        #expect(second == .duplicate(twiml: TwiML.messagingResponse(["one"])))
    }

    @Test func loggedBodyReplacesTheBodyEverywhere() async throws {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        let record = InboundRecord(
            messageSid: "SM1",
            from: "+14155550100",
            to: "+15005550006",
            body: "hunter22",
            fields: [.init("Body", "hunter22"), .init("MessageSid", "SM1")]
        )
        _ = try await store.processInbound(record, replyMode: .twiml, now: Date()) { _, _ in Decision(replies: ["ok"], loggedBody: "[redacted]") }
        let row = try #require(try fetchRow(path, "SELECT body, params FROM inbound"))
        #expect(row["body"] as String == "[redacted]")
        #expect(!(row["params"] as String).contains("hunter22"))
    }
}

@Suite("Phone numbers")
struct PhoneNumberTests {
    @Test(arguments: [
        ("703-123-4567", "+17031234567"), ("(703) 123 4567", "+17031234567"), ("1 703 123 4567", "+17031234567"),
        ("+1 703.123.4567", "+17031234567"), ("+44 7911 123456", "+447911123456"), ("0044 7911 123456", "+447911123456"),
        (" +14155550100 ", "+14155550100"), ("+44 (0) 7911 123456", "+447911123456"), ("+44(0)7911-123456", "+447911123456"),
    ])
    func normalizes(_ raw: String, _ e164: String) {
        #expect(PhoneNumber.normalize(raw) == e164)
    }

    @Test(arguments: [
        "", "12345", "703-123-456", "+0123456789", "ivan@example.org", "+1 (703) 123-4567 ext 9", "123-456-7890", "+1234567890123456",
        // a North American number a digit short or long, or with an area code starting 0 or 1
        "+1415555010", "+141555501000", "1415555010", "+1 055 555 0100", "1 155 555 0100", "+1234567",
    ])
    func rejects(_ raw: String) {
        #expect(PhoneNumber.normalize(raw) == nil)
    }

    @Test func webhookSendersThatAreNotNumbersStayAsSent() {
        #expect(PhoneNumber.canonicalSender("12345") == "12345")
        #expect(PhoneNumber.canonicalSender("MyBrand") == "MyBrand")
        #expect(PhoneNumber.canonicalSender("whatsapp:+14155550100") == "whatsapp:+14155550100")
        #expect(PhoneNumber.canonicalSender("+14155550100") == "+14155550100")
    }

    @Test(arguments: [
        "+14155550100", "+4479111234", "+1234567", "+123456789012345", "+1234567890123456", "+04155550100", "+1 415 555 0100", "+1415555010a", "+",
        "", "+1415555010", "+141555501000", "+10555550100",
    ])
    func theE164ShortcutAgreesWithNormalize(_ raw: String) {
        #expect(PhoneNumber.isE164(raw) == (PhoneNumber.normalize(raw) == raw))
        #expect(PhoneNumber.canonicalSender(raw) == (raw.hasPrefix("+") ? (PhoneNumber.normalize(raw) ?? raw) : raw))
    }

    @Test(arguments: ["HELP", " HELP", "HELP ", "\tA B\n", "a\u{301}", " é ", "\r\nx\r\n", "x\u{3000}", "", " ", "a"])
    func trimmingTakesWhiteSpaceOffBothEnds(_ raw: String) {
        var expected = Substring(raw)
        while let f = expected.first, f.isWhitespace { expected = expected.dropFirst() }
        while let l = expected.last, l.isWhitespace { expected = expected.dropLast() }
        #expect(raw.trimmingWhitespace() == String(expected))
    }

    @Test func secretNeverPrints() {
        let secret = Secret("s3cr3t-value")
        #expect("\(secret)" == "[redacted]")
        #expect(String(reflecting: secret) == "[redacted]")
        #expect(secret.reveal() == "s3cr3t-value")
    }

    @Test(.enabled(if: geteuid() == 0, "giving a file to another user needs root (as the tests run in CI)"))
    func anEmptyFileAnotherUserMadeIsRefusedNotTakenAsTheDatabase() throws {
        // Given an empty file another user made, readable and writable by all, where the database is to be
        let path = makeTestDatabasePath()
        try FileManager.default.createDirectory(atPath: SQLiteStore.folderPath(of: path), withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o666]))
        #expect(chown(path, 65534, 65534) == 0)
        // When it is opened, then it is refused, saying whose it is, and nothing is written in it
        #expect {
            try SQLiteStore.open(path: path)
        } throws: { error in
            "\(error)".contains("it is an empty file another user (uid 65534) made")
        }
        #expect((try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) == 0)
        // And once it is this user's, it becomes the database, private
        #expect(chown(path, geteuid(), getegid()) == 0)
        _ = try SQLiteStore.open(path: path)
        #expect(try mode(path) == 0o600)
    }

    @Test func devTokenIsCreatedOncePrivatelyAndReused() throws {
        let path = makeTestDatabasePath()
        let first = try DevToken.loadOrCreate(forDatabase: path)
        let second = try DevToken.loadOrCreate(forDatabase: path)
        #expect(first == second)
        #expect(first.reveal().count == 32)
        let attributes = try FileManager.default.attributesOfItem(atPath: DevToken.path(forDatabase: path))
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
    }

    func mode(_ path: String) throws -> Int? {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue
    }

    @Test func aDevTokenFileOthersCanReadIsMadePrivateAndOneTooShortIsReplacedPrivately() throws {
        // Given a token file written by hand, readable by everyone
        let path = makeTestDatabasePath()
        let tokenPath = DevToken.path(forDatabase: path)
        try FileManager.default.createDirectory(atPath: (tokenPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data((String(repeating: "ab", count: 16) + "\n").utf8).write(to: URL(fileURLWithPath: tokenPath))
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: tokenPath)
        // When it is loaded, then it is used, and only its owner can read it now
        #expect(try DevToken.loadOrCreate(forDatabase: path).reveal() == String(repeating: "ab", count: 16))
        #expect(try mode(tokenPath) == 0o600)
        // And a file too short to be a token is replaced by a new private one, with nothing left beside it
        try FileManager.default.removeItem(atPath: tokenPath)
        try Data("short\n".utf8).write(to: URL(fileURLWithPath: tokenPath))
        let fresh = try DevToken.loadOrCreate(forDatabase: path)
        #expect(fresh.reveal().count == 32)
        #expect(try mode(tokenPath) == 0o600)
        #expect(try String(contentsOfFile: tokenPath, encoding: .utf8) == fresh.reveal() + "\n")
        let folder = (tokenPath as NSString).deletingLastPathComponent
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.contains(".new-") }.isEmpty)
    }

    @Test func processesStartedTogetherAgreeOnOneDevToken() throws {
        // Given several starting at once on a database with no token yet (serve and chat, say)
        for _ in 0..<20 {
            let path = makeTestDatabasePath()
            let tokens = Locked<[String]>([])
            DispatchQueue.concurrentPerform(iterations: 8) { _ in
                let token = (try? DevToken.loadOrCreate(forDatabase: path).reveal()) ?? "failed"
                tokens.withLock { $0.append(token) }
            }
            // Then every one of them got the token that is in the file: none read a file still being written
            let inFile = try String(contentsOfFile: DevToken.path(forDatabase: path), encoding: .utf8).trimmingCharacters(in: .newlines)
            #expect(Set(tokens.current) == [inFile], "\(tokens.current)")
        }
    }

    @Test(.enabled(if: geteuid() == 0, "only root can give a file to another user"))
    func aDevTokenFileAnotherUserOwnsIsRefused() throws {
        // Given a token file that belongs to another user (someone could have put it there)
        let path = makeTestDatabasePath()
        let tokenPath = DevToken.path(forDatabase: path)
        try FileManager.default.createDirectory(atPath: (tokenPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data((String(repeating: "cd", count: 16) + "\n").utf8).write(to: URL(fileURLWithPath: tokenPath))
        #expect(chown(tokenPath, 65534, 65534) == 0)
        // Then it is not used, and the error says what to do
        #expect {
            try DevToken.loadOrCreate(forDatabase: path)
        } throws: { error in
            "\(error)".contains("belongs to another user: remove it")
        }
    }
}

@Suite("Hand-written JSON")
struct JSONTextTests {
    @Test(arguments: ["plain", "quote \" and \\ backslash", "new\nline\ttab\rcr", "\u{0}\u{1}\u{1F}", "Привет 😀 ñ", "</script>", ""])
    func roundTripsThroughFoundation(_ text: String) throws {
        var json = ""
        JSONText.append(text, to: &json)
        let decoded = try JSONSerialization.jsonObject(with: Data("[\(json)]".utf8)) as? [String]
        #expect(decoded == [text])
    }

    @Test(arguments: ["plain", "quote \" and \\ backslash", "new\nline\ttab\rcr", "\u{0}\u{1}\u{8}\u{C}\u{1F}", "Привет 😀 ñ", "</script>", ""])
    func escapesExactlyAsJSONEncoderInBothWriters(_ text: String) throws {
        let expected = String(decoding: try JSONEncoder().encode(text), as: UTF8.self)
        var string = ""
        JSONText.append(text, to: &string)
        var bytes: [UInt8] = []
        JSONText.append(text, to: &bytes)
        #expect(string == expected)
        #expect(String(decoding: bytes, as: UTF8.self) == expected)
    }

    @Test func theInboundLogsFieldsAsNameValuePairsWithTheLoggedBody() {
        let fields: [FormField] = [.init("Body", "LOGIN secret"), .init("From", "+14155550100"), .init("Media/Url", "a\"b")]
        #expect(SQLiteStore.paramsJSON(fields, body: "[redacted]") == #"[{"Body":"[redacted]"},{"From":"+14155550100"},{"Media\/Url":"a\"b"}]"#)
    }
}

@Suite("Conversation state storage")
struct ConversationStateStorageTests {
    @Test func aTextFromARegisteredPhoneUpdatesItsLastSeenTime() async throws {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        try executeSQL(
            path,
            """
            INSERT INTO users (phone, firstName, lastName, email, passcodeHash, passcodeSalt, passcodeIterations, createdAt)
            VALUES ('+14155550100', 'Ivan', 'Petrov', 'ivan@example.org', x'01', x'02', 1, '2026-11-30 10:00:00.000')
            """
        )
        let at = Date(timeIntervalSince1970: 1_795_597_200.25)
        for (sid, phone) in [("SM1", "+14155550100"), ("SM2", "+14155550199")] {
            _ = try await store.processInbound(InboundRecord(messageSid: sid, from: phone, to: "+15005550006", body: "x"), replyMode: .twiml, now: at)
            {
                _,
                _ in Decision(replies: [])
            }
        }
        #expect(try fetchRow(path, "SELECT lastSeenAt FROM users WHERE phone = '+14155550100'")?["lastSeenAt"] == StoredDate.text(at))
        #expect(try fetchInt(path, "SELECT count(*) FROM users") == 1)
    }

    @Test func lastActivityKeepsSubSecondPrecision() async throws {
        // A session must not expire early because a stored time lost its fraction of a second.
        let store = try SQLiteStore.open(path: makeTestDatabasePath())
        let at = Date(timeIntervalSince1970: 1_795_597_200.75)
        _ = try await store.processInbound(
            InboundRecord(messageSid: "SM1", from: "+14155550100", to: "+15005550006", body: "x"),
            replyMode: .twiml,
            now: at
        ) {
            state,
            _ in
            state.lastActivity = at
            state.loggedInAt = at
            return Decision(replies: [])
        }
        let (state, _) = try await store.conversationSnapshot(phone: "+14155550100")
        #expect(state.lastActivity == at)
        #expect(state.loggedInAt == at)
    }
}
