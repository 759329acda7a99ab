import Foundation
import GRDB
import Testing

@testable import Action2PhoneCore

@Suite("Direct sqlite3 statements on the hot path")
struct FastStatementTests {
    private func makeDatabase() throws -> DatabaseQueue {
        let path = makeTestDatabasePath()
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let queue = try DatabaseQueue(path: path)
        try queue.write { try $0.execute(sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, n INTEGER, at TEXT, data BLOB)") }
        return queue
    }

    @Test func bindsAndReadsTextIntegersNullsDatesAndBlobs() throws {
        let queue = try makeDatabase()
        let at = Date(timeIntervalSince1970: 1_764_576_000.25)
        try queue.inTransaction { db in
            try FastStatement.execute(
                db,
                "INSERT INTO t (name, n, at, data) VALUES (?, ?, ?, x'00ff10')",
                [.text("Привет \"😀\""), .int(-42), .text(StoredDate.text(at))]
            )
            try FastStatement.execute(db, "INSERT INTO t (name, n, at) VALUES (?, ?, ?)", [.null, .int(Int64.max), .text(nil as String?)])
            return .commit
        }
        try queue.read { db in
            let first = try FastStatement.first(db, "SELECT name, n, at, data FROM t WHERE id = ?", [.int(1)]) { row in
                (row.text(0), row.int64(1), row.date(2), row.bytes(3))
            }
            #expect(first?.0 == "Привет \"😀\"")
            #expect(first?.1 == -42)
            #expect(first?.2 == at)
            #expect(first?.3 == [0x00, 0xFF, 0x10])
            let second = try FastStatement.first(db, "SELECT name, n, at, data FROM t WHERE id = ?", [.int(2)]) { row in
                (row.text(0), row.isNull(0), row.int64(1), row.date(2), row.bytes(3))
            }
            #expect(second?.0 == nil && second?.1 == true && second?.2 == Int64.max && second?.3 == nil && second?.4 == [])
            // No row is nil; a statement run again with other arguments does not keep the old ones.
            let none = try FastStatement.first(db, "SELECT name, n, at, data FROM t WHERE id = ?", [.int(3)]) { $0.int64(1) }
            #expect(none == nil)
        }
    }

    @Test func shortStringsAndUnboundParametersAfterAReuse() throws {
        // Short strings live in the String itself (no heap buffer): SQLite must have copied them.
        let queue = try makeDatabase()
        try queue.inTransaction { db in
            for name in ["a", "", "é", "0123456789abcde"] {
                try FastStatement.execute(db, "INSERT INTO t (name, at) VALUES (?, ?)", [.text(name), .text("x")])
            }
            // Run again with fewer arguments: the parameter left out is NULL, not the previous run's value.
            try FastStatement.execute(db, "INSERT INTO t (name, at) VALUES (?, ?)", [.text("last")])
            return .commit
        }
        let rows = try queue.read { try Row.fetchAll($0, sql: "SELECT name, at FROM t ORDER BY id") }
        #expect(rows.map { $0["name"] as String? } == ["a", "", "é", "0123456789abcde", "last"])
        #expect(rows.map { $0["at"] as String? } == ["x", "x", "x", "x", nil])
    }

    @Test func textIsBoundUpToItsFirstNULAsGRDBBindsIt() throws {
        let queue = try makeDatabase()
        try queue.inTransaction { db in
            try FastStatement.execute(db, "INSERT INTO t (name) VALUES (?)", [.text("a\u{0}b")])
            try db.execute(sql: "INSERT INTO t (name) VALUES (?)", arguments: ["a\u{0}b"])
            return .commit
        }
        #expect(try queue.read { try String.fetchAll($0, sql: "SELECT hex(name) FROM t ORDER BY id") } == ["61", "61"])
    }

    @Test func refusesToWriteOutsideATransactionButReads() throws {
        // Given a connection in autocommit mode (as after SQLite rolled a transaction back)
        let queue = try makeDatabase()
        try queue.writeWithoutTransaction { db in
            // When the hot path tries to write, or to open a savepoint, it is refused and nothing is stored
            #expect(throws: DatabaseError.self) { try FastStatement.execute(db, "INSERT INTO t (name) VALUES (?)", [.text("lost")]) }
            #expect(throws: DatabaseError.self) { try FastStatement.savepoint(db, "SAVEPOINT step") }
            #expect(!db.isInsideTransaction)
            // Reads still work.
            let count = try FastStatement.first(db, "SELECT count(*) FROM t", []) { $0.int64(0) }
            #expect(count == 0)
        }
    }

    @Test func aFailingStatementThrowsSQLitesErrorAndCanRunAgain() throws {
        let queue = try makeDatabase()
        try queue.inTransaction { db in
            try FastStatement.execute(db, "INSERT INTO t (id, name) VALUES (?, ?)", [.int(1), .text("a")])
            let error = #expect(throws: DatabaseError.self) {
                try FastStatement.execute(db, "INSERT INTO t (id, name) VALUES (?, ?)", [.int(1), .text("b")])
            }
            #expect(error?.resultCode == .SQLITE_CONSTRAINT)
            try FastStatement.execute(db, "INSERT INTO t (id, name) VALUES (?, ?)", [.int(2), .text("c")])
            return .commit
        }
        #expect(try queue.read { try String.fetchAll($0, sql: "SELECT name FROM t ORDER BY id") } == ["a", "c"])
    }
}

@Suite("Text normalization")
struct InputNormalizationTests {
    @Test func theASCIIShortcutAgreesWithTheFullFold() {
        // Every string of up to 3 characters from an alphabet with the cases that matter: spaces, tabs,
        // newlines, a control character, a curly quote, a non-ASCII letter.
        let alphabet: [Character] = ["a", " ", "\t", "\n", "\u{7}", "\u{B}", "\u{C}", "\u{1C}", "\u{7F}", "\u{85}", "\u{2019}", "é", "\r\n"]
        var strings = [""]
        var frontier = [""]
        for _ in 1...3 {
            frontier = frontier.flatMap { s in alphabet.map { s + String($0) } }
            strings += frontier
        }
        for s in strings {
            #expect(Inbound.normalize(s) == Inbound.folded(s), "\(s.debugDescription)")
        }
        #expect(Inbound.isNormalASCII("LOGIN 1234"))
        #expect(!Inbound.isNormalASCII(" HELP") && !Inbound.isNormalASCII("A  B") && !Inbound.isNormalASCII("HELP\n"))
    }
}

@Suite("One read opens each inbound step")
struct OpenStepTests {
    @Test func readsTheEarlierReplyStateConsentAndAccountAsTheSeparateLookupsDo() throws {
        let path = makeTestDatabasePath()
        _ = try SQLiteStore.open(path: path)
        let queue = try DatabaseQueue(path: path)
        let now = Date(timeIntervalSince1970: 1_764_576_000.5)
        try queue.write { db in
            try db.execute(
                sql: """
                    INSERT INTO users (phone, firstName, lastName, email, passcodeHash, passcodeSalt, passcodeIterations, role, createdAt,
                                       failedLogins, firstFailedLoginAt, lockedUntil)
                    VALUES ('+14155550100', 'Ivan', 'Petrov', 'ivan@example.org', x'0102ff', x'aa00', 600000, 'admin', ?, 3, ?, ?)
                    """,
                arguments: [now, now.addingTimeInterval(-60), now.addingTimeInterval(900)]
            )
            try db.execute(sql: "INSERT INTO phones (phone, optedOut, suppressed, updatedAt) VALUES ('+14155550100', 1, 1, ?)", arguments: [now])
            try db.execute(
                sql: "INSERT INTO conversations (phone, state, updatedAt) VALUES ('+14155550100', '{\"step\":\"idle\"}', ?)",
                arguments: [now]
            )
            try db.execute(
                sql:
                    "INSERT INTO inbound (messageSid, \"from\", \"to\", body, params, reply, receivedAt) VALUES ('SM1', '+14155550100', '+15005550006', 'HELP', '[]', '<Response/>', ?)",
                arguments: [now]
            )
        }
        try queue.inTransaction { db in
            // A known phone and MessageSid
            let facts = SQLiteFacts(db: db, phone: "+14155550100")
            let opening = try facts.openStep(messageSid: "SM1")
            #expect(opening.previousReply == "<Response/>")
            #expect(opening.state == #"{"step":"idle"}"#)
            let separately = try Row.fetchOne(db, sql: "SELECT * FROM users WHERE phone = '+14155550100'").map(SQLiteFacts.account)
            #expect(try facts.account() == separately)
            #expect(try facts.account()?.lockedUntil == now.addingTimeInterval(900))
            #expect(try facts.account()?.passcode.hash == [0x01, 0x02, 0xFF])
            #expect(try facts.consent() == Consent(optedOut: true, suppressed: true))
            // An unknown phone and MessageSid: nothing, and the defaults
            let stranger = SQLiteFacts(db: db, phone: "+14155550199")
            let nothing = try stranger.openStep(messageSid: "SM2")
            #expect(nothing.previousReply == nil && nothing.state == nil)
            #expect(try stranger.account() == nil)
            #expect(try stranger.consent() == Consent())
            return .rollback
        }
    }
}
