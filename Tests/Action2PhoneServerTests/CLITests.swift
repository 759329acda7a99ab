import Action2PhoneCore
import Action2PhoneServer
import Foundation
import GRDB
import Testing
import TwilioKit

func tempDatabase() -> String {
    testScratch.appendingPathComponent("a2p-cli-\(UUID().uuidString)/a.sqlite").path
}

func jsonObject(_ text: String) throws -> Any {
    try JSONSerialization.jsonObject(with: Data(text.utf8))
}

@Suite("action2phone command line")
struct CLITests {
    /// Registers Ivan (+14155550100) through `chat`, piped.
    func registerIvan(_ db: String) async throws -> Executable.Result {
        try await Executable.run(
            ["chat", "--db", db, "--from", "415-555-0100"],
            input: "JOIN\nIvan\nPetrov\nivan@example.org\nsecret-pass\nsecret-pass\nPROFILE\n"
        )
    }

    @Test func aDeletionInChatErasesTheAdminsRowsBeforeChatEnds() async throws {
        // Given Ivan, and an admin with 3,000 commands, the last a FIND whose answer named him
        let db = tempDatabase()
        _ = try await registerIvan(db)
        try await DatabaseQueue(path: db).write { db in
            try db.execute(
                sql: """
                    INSERT INTO adminPhones (phone) VALUES ('+14155550199');
                    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
                    INSERT INTO inbound (messageSid, "from", "to", body, params, reply, receivedAt)
                    SELECT 'SMadmin' || i, '+14155550199', '+15005550006', CASE WHEN i = 3000 THEN 'FIND iva' ELSE 'USERS' END, '[]',
                           CASE WHEN i = 3000 THEN '<Response><Message>Ivan Petrov, +14155550100</Message></Response>' ELSE '' END,
                           '2026-12-01 00:00:00.000' FROM n;
                    """
            )
        }
        // When he deletes his account in chat, which ends with his last text
        let r = try await Executable.run(["chat", "--db", db, "--from", "415-555-0100"], input: "LOGIN secret-pass\nDELETE\nYES\n")
        #expect(r.status == 0 && r.stdout.contains("Your data is erased"), "\(r.stdout)\(r.stderr)")
        // Then the admin's rows that named him were erased before it ended: none is left for a server to finish
        #expect(try await DatabaseQueue(path: db).read { try Int.fetchOne($0, sql: "SELECT count(*) FROM erasures") } == 0)
        let find = try await DatabaseQueue(path: db).read {
            try Row.fetchOne($0, sql: "SELECT body, reply FROM inbound WHERE messageSid = 'SMadmin3000'")
        }
        #expect(find?["body"] == "[deleted]" && (find?["reply"] as String?)?.contains("Ivan") == false, "\(String(describing: find))")
    }

    @Test func aDeletionWhoseErasureCannotFinishIsStillConfirmed() async throws {
        // Given Ivan and Olga, and a database where a deletion's erasure cannot finish
        let db = tempDatabase()
        _ = try await registerIvan(db)
        _ = try await Executable.run(
            ["chat", "--db", db, "--from", "415-555-0101"],
            input: "JOIN\nOlga\nIvanova\nolga@example.org\nsecret-pass\nsecret-pass\n"
        )
        try await DatabaseQueue(path: db).write { db in
            try db.execute(sql: "CREATE TRIGGER erasures_stuck BEFORE DELETE ON erasures BEGIN SELECT RAISE(ABORT, 'disk trouble'); END")
        }
        // When Ivan deletes his account in chat
        let chat = try await Executable.run(["chat", "--db", db, "--from", "415-555-0100"], input: "LOGIN secret-pass\nDELETE\nYES\n")
        // Then he is told it is done (it is), and the operator what is left, and for whom
        #expect(chat.status == 0 && chat.stdout.contains("Your data is erased"), "\(chat.stdout)\(chat.stderr)")
        #expect(chat.stderr.contains("not all erased yet") && chat.stderr.contains("serve finishes it"), "\(chat.stderr)")
        #expect(try await DatabaseQueue(path: db).read { try Int.fetchOne($0, sql: "SELECT count(*) FROM users WHERE phone = '+14155550100'") } == 0)
        // And an operator's `users delete` of Olga says she is deleted, then what is left, and fails
        let delete = try await Executable.run(["users", "delete", "+14155550101", "--db", db])
        #expect(delete.status == 1 && delete.stdout.contains("Deleted user"), "\(delete.stdout)\(delete.stderr)")
        #expect(delete.stderr.contains("the account of +14155550101 is deleted") && delete.stderr.contains("serve finishes it"), "\(delete.stderr)")
    }

    @Test func storedTextIsShownSafelyInATerminalAndASpreadsheet() async throws {
        // Given a person whose stored email and name hold escape sequences and a formula (as a version that did not
        // refuse them could have stored), and an outbox text with them
        let db = tempDatabase()
        _ = try await registerIvan(db)
        let queue = try DatabaseQueue(path: db)
        try await queue.write { db in
            try db.execute(
                sql: "UPDATE users SET email = ?, lastName = ?",
                arguments: ["\u{1B}]0;pwned\u{07}\u{1B}[2Jm@x.org", "=HYPERLINK(\"http://evil\")"]
            )
            try db.execute(
                sql: """
                    INSERT INTO outbox ("to", body, purpose, status, createdAt, updatedAt)
                    VALUES ('+14155550100', ?, 'direct', 'queued', '2026-12-01 00:00:00.000', '2026-12-01 00:00:00.000')
                    """,
                arguments: ["ctl\u{01}\u{1B}[31m red \u{202E}evil\nline two"]
            )
        }
        // When an operator lists them as a table, a record and CSV
        let outputs = [
            try await Executable.run(["users", "list", "--db", db]), try await Executable.run(["users", "show", "+14155550100", "--db", db]),
            try await Executable.run(["users", "list", "--db", db, "--csv"]), try await Executable.run(["outbox", "list", "--db", db]),
            try await Executable.run(["outbox", "list", "--db", db, "--csv"]),
        ]
        // Then no control character or direction override reaches the terminal: each is shown in caret notation
        for r in outputs {
            #expect(r.status == 0, "\(r.stderr)")
            #expect(!r.stdout.unicodeScalars.contains { ($0.value < 0x20 && $0 != "\n") || $0.value == 0x202E }, "\(r.stdout.debugDescription)")
        }
        #expect(outputs[0].stdout.contains("^[]0;pwned^G^[[2Jm@x.org") && outputs[1].stdout.contains("^[]0;pwned^G^[[2Jm@x.org"))
        #expect(outputs[3].stdout.contains("ctl^A^[[31m red <U+202E>evil line two"), "\(outputs[3].stdout)")
        // And a spreadsheet opening the CSV does not run the formula, while a phone number stays a phone number
        #expect(outputs[2].stdout.contains(#"Ivan,"'=HYPERLINK(""http://evil"")",^[]0;"#), "\(outputs[2].stdout)")
        #expect(outputs[2].stdout.contains(",+14155550100,"))
        // And JSON keeps the stored text exactly (escaped as JSON)
        let json = try await Executable.run(["users", "show", "+14155550100", "--db", db, "--json"])
        #expect((try jsonObject(json.stdout) as? [String: Any])?["email"] as? String == "\u{1B}]0;pwned\u{07}\u{1B}[2Jm@x.org")
    }

    @Test func chatReadsStandardInputAndPrintsReplies() async throws {
        let db = tempDatabase()
        let r = try await registerIvan(db)
        #expect(r.status == 0)
        #expect(r.stdout.contains("you > JOIN\nbot > Welcome, future comrade! Reply with your first name."))
        #expect(r.stdout.contains("registered and logged in"))
        #expect(r.stdout.contains("Email: ivan@example.org"))
    }

    @Test func chatUpgradesAPasscodeHashBeforeItEnds() async throws {
        // Given Ivan, registered with passcodes costing 1,000 iterations
        let db = tempDatabase()
        _ = try await registerIvan(db)
        // When he logs in through chat with the cost raised to 2,000
        let r = try await Executable.run(
            ["chat", "--db", db, "--from", "415-555-0100"],
            environment: ["ACTION2PHONE_PBKDF2_ITERATIONS": "2000"],
            input: "LOGOUT\nLOGIN secret-pass\n"
        )
        #expect(r.status == 0 && r.stdout.contains("Welcome back"), "\(r.stdout) \(r.stderr)")
        // Then his hash was made again at 2,000 before chat ended (in this process, not after it)
        let iterations = try await DatabaseQueue(path: db).read { try Int.fetchOne($0, sql: "SELECT passcodeIterations FROM users") }
        #expect(iterations == 2000)
    }

    @Test func usersListShowFindWithTableJSONAndCSV() async throws {
        let db = tempDatabase()
        _ = try await registerIvan(db)
        let list = try await Executable.run(["users", "list", "--db", db, "--json"])
        #expect(list.status == 0)
        let array = try #require(try jsonObject(list.stdout) as? [[String: Any]])
        #expect(array.count == 1)
        #expect(
            Set(array[0].keys)
                == ["id", "phone", "firstName", "lastName", "email", "role", "optedOut", "suppressed", "createdAt", "lastSeenAt", "unread", "locked"]
        )
        #expect(array[0]["phone"] as? String == "+14155550100")
        #expect(array[0]["role"] as? String == "user")
        #expect((array[0]["createdAt"] as? String)?.hasSuffix("Z") == true)
        let table = try await Executable.run(["users", "list", "--db", db])
        #expect(table.stdout.hasPrefix("id  phone"))
        #expect(table.stdout.contains("+14155550100  Ivan"))
        let csv = try await Executable.run(["users", "list", "--db", db, "--csv"])
        #expect(
            csv.stdout.hasPrefix(
                "id,phone,firstName,lastName,email,role,optedOut,suppressed,createdAt,lastSeenAt,unread,locked\n1,+14155550100,Ivan,Petrov"
            )
        )
        #expect(csv.stdout.trimmingCharacters(in: .newlines).hasSuffix("Z,0,false"), "\(csv.stdout)")
        for key in ["+14155550100", "415-555-0100", "IVAN@example.org", "1"] {
            let show = try await Executable.run(["users", "show", key, "--db", db, "--json"])
            #expect(show.status == 0, "\(key): \(show.stderr)")
            #expect((try jsonObject(show.stdout) as? [String: Any])?["email"] as? String == "ivan@example.org")
        }
        let mistyped = try await Executable.run(["users", "show", "+1415555010", "--db", db])
        #expect(mistyped.status == 1 && mistyped.stderr.contains("'+1415555010' is not a phone number, an email or an id"), "\(mistyped.stderr)")
        let detail = try await Executable.run(["users", "show", "+14155550100", "--db", db])
        let lines = detail.stdout.split(separator: "\n")
        for (label, value) in [("last activity", "Z"), ("opted out", " no"), ("locked", " no"), ("unread", " 0"), ("phone", "+14155550100")] {
            #expect(lines.contains { $0.hasPrefix(label) && $0.hasSuffix(value) }, "\(label) in \(detail.stdout)")
        }
        let find = try await Executable.run(["users", "find", "petr", "--db", db, "--json"])
        #expect((try jsonObject(find.stdout) as? [[String: Any]])?.count == 1)
        // More matches than the limit: the first ones, and a note that there are more (an export is never cut silently)
        _ = try await Executable.run(
            ["chat", "--db", db, "--from", "415-555-0101"],
            input: "JOIN\nAnna\nPetrova\nanna@example.org\nsecret-pass\nsecret-pass\n"
        )
        let limited = try await Executable.run(["users", "find", "petr", "--limit", "1", "--db", db, "--json"])
        #expect((try jsonObject(limited.stdout) as? [[String: Any]])?.count == 1)
        #expect(limited.status == 0 && limited.stderr.contains("(the first 1 shown; more match: --limit N shows more)"), "\(limited.stderr)")
        let both = try await Executable.run(["users", "find", "petr", "--db", db, "--csv"])
        #expect(both.stdout.split(separator: "\n").count == 3 && both.stderr.isEmpty, "\(both.stdout)\(both.stderr)")
        // An empty search is a mistake, not a way to list everyone
        let empty = try await Executable.run(["users", "find", " ", "--db", db])
        #expect(empty.status == 64 && empty.stderr.contains("give some text to search for"), "\(empty.stderr)")
        // Nor is a search longer than any name, email or number: it is refused before SQLite, not with its SQL
        let long = try await Executable.run(["users", "find", String(repeating: "petr", count: 15_000), "--db", db])
        #expect(long.status == 64 && long.stderr.contains("the text to search for is 60000 characters long; at most 200"), "\(long.stderr)")
        #expect(!long.stderr.contains("SELECT"), "\(long.stderr)")
    }

    @Test func aForgottenPasscodeIsResetByTheOperatorToANewOne() async throws {
        // Given Ivan, locked out after five wrong passcodes
        let db = tempDatabase()
        _ = try await registerIvan(db)
        let wrong = (1...5).map { "LOGIN wrong-\($0)" }.joined(separator: "\n")
        let locked = try await Executable.run(["chat", "--db", db, "--from", "415-555-0100"], input: "LOGOUT\n" + wrong + "\n")
        #expect(locked.stdout.contains("ask an organiser to reset your passcode"), "\(locked.stdout)")
        // When the operator resets his passcode (a test iteration count is warned about)
        let reset = try await Executable.run(["users", "reset-passcode", "415-555-0100", "--db", db])
        #expect(reset.status == 0 && reset.stderr.contains("warning: PBKDF2 at 1000 iterations"), "\(reset.stderr)")
        let passcode = try #require(reset.stdout.split(separator: "\n").first?.split(separator: " ").last.map(String.init))
        #expect(passcode.wholeMatch(of: /[2-9][a-z2-9]{3}-[a-z2-9]{4}-[a-z2-9]{4}/) != nil, "\(passcode)")
        // Then the new passcode logs him in at once (the lock is gone), and the old one no longer does
        let login = try await Executable.run(["chat", "--db", db, "--from", "415-555-0100"], input: "LOGIN secret-pass\nLOGIN \(passcode)\n")
        #expect(login.stdout.contains("Wrong passcode (1 of 5 tries)") && login.stdout.contains("Welcome back, comrade Ivan"), "\(login.stdout)")
        // and tells him to choose his own, until he has
        #expect(login.stdout.contains("Reply PASSCODE to replace the passcode an organiser gave you."), "\(login.stdout)")
        let own = try await Executable.run(
            ["chat", "--db", db, "--from", "415-555-0100"],
            input: "PASSCODE\n\(passcode)\nmy-own-1917\nmy-own-1917\nLOGOUT\nLOGIN my-own-1917\n"
        )
        #expect(own.stdout.contains("Your passcode is changed") && own.stdout.contains("Reply HELP for commands"), "\(own.stdout)")
        #expect(!own.stdout.contains("an organiser gave"), "\(own.stdout)")
        // And it is stored nowhere in clear
        let stored = try await DatabasePool(path: db).read { db in
            try String.fetchAll(db, sql: "SELECT body FROM inbound UNION ALL SELECT params FROM inbound UNION ALL SELECT state FROM conversations")
        }
        #expect(!stored.contains { $0.contains(passcode) })
        // And a reset while he is logged in, at a DELETE confirmation, ends the login and the question
        let confirming = try await Executable.run(["chat", "--db", db, "--from", "415-555-0100"], input: "DELETE\n")
        #expect(confirming.stdout.contains("Reply YES to confirm"), "\(confirming.stdout)")
        _ = try await Executable.run(["users", "reset-passcode", "415-555-0100", "--db", db])
        let after = try await Executable.run(["chat", "--db", db, "--from", "415-555-0100"], input: "YES\nMESSAGES\n")
        #expect(after.stdout.contains("Please log in first") && !after.stdout.contains("erased"), "\(after.stdout)")
        #expect(try await Executable.run(["users", "show", "415-555-0100", "--db", db]).status == 0)
        // And it finds him by email too; an unknown number or email is refused
        let byEmail = try await Executable.run(["users", "reset-passcode", "IVAN@example.org", "--db", db])
        #expect(byEmail.status == 0 && byEmail.stdout.hasPrefix("New passcode for +14155550100: "), "\(byEmail.stdout)\(byEmail.stderr)")
        let nobody = try await Executable.run(["users", "reset-passcode", "+14155550999", "--db", db])
        #expect(nobody.status == 1 && nobody.stderr.contains("no user with phone +14155550999"))
        let noEmail = try await Executable.run(["users", "reset-passcode", "nobody@example.org", "--db", db])
        #expect(noEmail.status == 1 && noEmail.stderr.contains("no user with email nobody@example.org"))
    }

    @Test func backupCopiesTheDatabaseAndNeverOverwrites() async throws {
        let db = tempDatabase()
        _ = try await registerIvan(db)
        let copy = URL(fileURLWithPath: db).deletingLastPathComponent().appendingPathComponent("backup.sqlite").path
        let first = try await Executable.run(["backup", "--db", db, copy])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(
            first.stdout.contains("to \(copy)") && first.stdout.contains("checked): 1 person, 7 inbound texts, 0 outbox rows."),
            "\(first.stdout)"
        )
        // The copy is a database the tools read as the original
        let list = try await Executable.run(["users", "list", "--db", copy, "--json"])
        #expect(list.stdout.contains("ivan@example.org"))
        // A second backup to the same file is refused; a missing database is named
        let again = try await Executable.run(["backup", "--db", db, copy])
        #expect(again.status == 1 && again.stderr.contains("exists: choose a new file"), "\(again.stderr)")
        let missing = try await Executable.run(["backup", "--db", db + ".nope", copy + "2"])
        #expect(missing.status == 1 && missing.stderr.contains("there is no database at"), "\(missing.stderr)")
        #expect(!FileManager.default.fileExists(atPath: db + ".nope"))
        let notes = db + ".txt"
        try Data("minutes of the meeting".utf8).write(to: URL(fileURLWithPath: notes))
        let text = try await Executable.run(["backup", "--db", notes, copy + "3"])
        #expect(text.status == 1 && text.stderr.contains("\(notes) is not an SQLite database"), "\(text.stderr)")
    }

    @Test func optOutAndInOnAnOperatorsWord() async throws {
        // Given Ivan, registered and logged in, who has just been asked to confirm DELETE
        let db = tempDatabase()
        _ = try await registerIvan(db)
        _ = try await Executable.run(["chat", "--db", db, "--from", "415-555-0100"], input: "DELETE\n")
        // When an operator opts him out
        let out = try await Executable.run(["users", "opt-out", "415-555-0100", "--db", db, "--note", "asked by phone"])
        #expect(out.status == 0 && out.stdout.contains("+14155550100 is opted out") && out.stderr.isEmpty, "\(out.stderr)")
        // (A number a digit short is refused; one no one has is recorded, with a note to check it)
        let short = try await Executable.run(["users", "opt-out", "+1415555010", "--db", db])
        #expect(short.status == 1 && short.stderr.contains("'+1415555010' is not a phone number"), "\(short.stderr)")
        let nobodys = try await Executable.run(["users", "opt-out", "415-555-0166", "--db", db])
        #expect(nobodys.status == 0 && nobodys.stderr.contains("note: no one is registered with +14155550166"), "\(nobodys.stderr)")
        let shown = try #require(try jsonObject(try await Executable.run(["users", "show", "1", "--db", db, "--json"]).stdout) as? [String: Any])
        #expect(shown["optedOut"] as? Bool == true)
        // Then, as after a STOP, his login and the open question are over: opting back in by text finds him logged out,
        // and the question gone
        let back = try await Executable.run(["chat", "--db", db, "--from", "415-555-0100"], input: "START\nPROFILE\n")
        #expect(back.stdout.contains("Welcome back") && back.stdout.contains("Please log in first"), "\(back.stdout)")
        let log = try await DatabasePool(path: db).read {
            try Row.fetchAll($0, sql: "SELECT action, source, text FROM consentLog WHERE phone = '+14155550100' ORDER BY id")
        }
        #expect(log.map { "\($0["action"] as String)/\($0["source"] as String)" } == ["optOut/operator", "optIn/keyword"])
        #expect(log.first?["text"] as String? == "asked by phone")
        // And an operator can opt a number in too
        _ = try await Executable.run(["users", "opt-out", "+14155550100", "--db", db])
        let again = try await Executable.run(["users", "opt-in", "+14155550100", "--db", db])
        #expect(again.status == 0 && again.stdout.contains("+14155550100 is opted in"))
        let optedOut = try await DatabasePool(path: db).read {
            try Bool.fetchOne($0, sql: "SELECT optedOut FROM phones WHERE phone = '+14155550100'")
        }
        #expect(optedOut == false)
        // And a number no one is registered with that opted out (never registered, or deleted since) is shown as such
        _ = try await Executable.run(["chat", "--db", db, "--from", "415-555-0177"], input: "STOP\n")
        let stranger = try await Executable.run(["users", "show", "(415) 555-0177", "--db", db])
        #expect(stranger.status == 1)
        #expect(
            stranger.stderr.contains("no user with phone, email or id '(415) 555-0177'; the number is opted out (last change: optOut by keyword, "),
            "\(stranger.stderr)"
        )
        let unknown = try await Executable.run(["users", "show", "415-555-0178", "--db", db])
        #expect(unknown.status == 1 && unknown.stderr.contains("no user with phone, email or id '415-555-0178'\n"), "\(unknown.stderr)")
    }

    @Test func unsuppressClearsASuppressionOnce() async throws {
        // Given Ivan, whose number Twilio reported unreachable
        let db = tempDatabase()
        _ = try await registerIvan(db)
        try await DatabasePool(path: db).write {
            try $0.execute(
                sql:
                    "INSERT INTO phones (phone, suppressed, suppressedReason, updatedAt) VALUES ('+14155550100', 1, 'Twilio error 30003', datetime('now'))"
            )
        }
        // When an operator clears it, then tries again
        let cleared = try await Executable.run(["users", "unsuppress", "415-555-0100", "--db", db])
        let again = try await Executable.run(["users", "unsuppress", "415-555-0100", "--db", db])
        // Then the first clears it, in the consent log; the second says there was nothing to clear
        #expect(cleared.status == 0 && cleared.stdout.contains("+14155550100 can be texted again"))
        #expect(again.status == 1 && again.stderr.contains("+14155550100 is not suppressed"))
        let row = try await DatabasePool(path: db).read {
            try Row.fetchOne(
                $0,
                sql:
                    "SELECT suppressed, suppressedReason, (SELECT count(*) FROM consentLog WHERE action = 'unsuppress' AND source = 'operator') AS logged FROM phones"
            )
        }
        #expect(row?["suppressed"] as Bool? == false && row?["suppressedReason"] as String? == nil && row?["logged"] as Int? == 1)
    }

    @Test func unknownUsersAndBadPhonesFailClearly() async throws {
        let db = tempDatabase()
        let show = try await Executable.run(["users", "show", "+14155550999", "--db", db])
        #expect(show.status == 1)
        #expect(show.stderr.contains("Error: no user with phone, email or id '+14155550999'"))
        let promote = try await Executable.run(["users", "promote", "not-a-phone", "--db", db])
        #expect(promote.status == 1)
        #expect(promote.stderr.contains("'not-a-phone' is not a phone number"))
        let demote = try await Executable.run(["users", "demote", "+14155550999", "--db", db])
        #expect(demote.status == 1)
        let status = try await Executable.run(["outbox", "list", "--status", "bogus", "--db", db])
        #expect(status.status == 64)
        #expect(status.stderr.contains("--status must be one of"))
    }

    @Test func aMissingDatabaseIsCreatedSaySoAndAListCutShortSaysSo() async throws {
        // A mistyped path: the empty database made in its place is named, so "no one" is not read as members gone
        let db = tempDatabase()
        let first = try await Executable.run(["users", "list", "--db", db])
        #expect(first.status == 0 && first.stdout.contains("No one is registered yet."))
        #expect(first.stderr.contains("(no database was at \(db): created a new, empty one)"), "\(first.stderr)")
        _ = try await registerIvan(db)
        _ = try await Executable.run(
            ["chat", "--db", db, "--from", "415-555-0101"],
            input: "JOIN\nOlga\nIvanova\nolga@example.org\nsecret-pass\nsecret-pass\n"
        )
        // An export cut short by --limit says so on stderr, and stdout stays the rows
        let cut = try await Executable.run(["users", "list", "--db", db, "--limit", "1", "--csv"])
        #expect(cut.status == 0 && cut.stdout.split(separator: "\n").count == 2, "\(cut.stdout)")
        #expect(cut.stderr.contains("(the first 1 shown; there are more: --limit N shows more)"), "\(cut.stderr)")
        let whole = try await Executable.run(["users", "list", "--db", db, "--limit", "2", "--csv"])
        #expect(whole.stdout.split(separator: "\n").count == 3 && whole.stderr.isEmpty, "\(whole.stderr)")
    }

    @Test func promoteDemoteAndDelete() async throws {
        let db = tempDatabase()
        _ = try await registerIvan(db)
        #expect(try await Executable.run(["users", "promote", "415-555-0100", "--db", db]).status == 0)
        let again = try await Executable.run(["users", "promote", "415-555-0100", "--db", db])
        #expect(again.status == 0 && again.stdout.contains("+14155550100 is already an admin: nothing changed."), "\(again.stdout)")
        let admins = try await Executable.run(["users", "list", "--admins", "--db", db, "--json"])
        #expect((try jsonObject(admins.stdout) as? [[String: Any]])?.first?["role"] as? String == "admin")
        // Demoting a number the environment lists as an admin's says the role would come back with a new JOIN
        let listed = try await Executable.run(
            ["users", "demote", "+14155550100", "--db", db],
            environment: ["ACTION2PHONE_ADMIN_PHONES": "+14155550199, 415-555-0100"]
        )
        #expect(listed.status == 0 && listed.stderr.contains("+14155550100 is in ACTION2PHONE_ADMIN_PHONES"), "\(listed.stderr)")
        // (the last admin: no one is left to use the admin commands)
        #expect(listed.stderr.contains("note: no admin is left"), "\(listed.stderr)")
        let plain = try await Executable.run(["users", "demote", "+14155550100", "--db", db])
        #expect(plain.status == 0 && plain.stdout.contains("already a user") && plain.stderr.isEmpty)
        let none = try await Executable.run(["users", "list", "--admins", "--db", db, "--json"])
        #expect((try jsonObject(none.stdout) as? [Any])?.isEmpty == true)
        _ = try await Executable.run(["users", "promote", "+14155550100", "--db", db])
        let delete = try await Executable.run(["users", "delete", "+14155550100", "--db", db])
        // (saying whom it deleted, by id and number, not by the name just erased; this number has no consent record to
        // keep; and that no admin is left)
        #expect(delete.status == 0 && delete.stdout == "Deleted user 1 (+14155550100).\n", "\(delete.stdout)")
        #expect(delete.stderr.contains("note: no admin is left"), "\(delete.stderr)")
        #expect(try await Executable.run(["users", "show", "+14155550100", "--db", db]).status == 1)
        #expect(try await Executable.run(["users", "delete", "+14155550100", "--db", db]).status == 1)
    }

    @Test func aTextStartingWithADashIsSentNotReadAsFlags() async throws {
        // "- bring the hammer" has an h: read as flags, it showed the help, exited 0 and sent nothing
        let db = tempDatabase()
        _ = try await registerIvan(db)
        for text in ["- bring the hammer", "-5 degrees tonight"] {
            let send = try await Executable.run(["send", "4155550100", text, "--db", db])
            #expect(send.status == 0 && send.stdout.contains("queued to be texted"), "\(text): \(send.stdout) \(send.stderr)")
        }
        let broadcast = try await Executable.run(["broadcast", "--db", db, "-Meeting at the hall", "--yes"])
        #expect(broadcast.status == 0 && broadcast.stdout.contains("1 text queued"), "\(broadcast.stdout) \(broadcast.stderr)")
        // (Its summary, shown before a YES too, says what will be texted, not what was)
        #expect(broadcast.stdout.contains("Broadcast to 1 registered person: 1 to be texted, 0 opted out or suppressed."), "\(broadcast.stdout)")
        let outbox = try await Executable.run(["outbox", "list", "--db", db, "--json"])
        let rows = try #require(try jsonObject(outbox.stdout) as? [[String: Any]])
        #expect(rows.map { $0["body"] as? String } == ["-Meeting at the hall", "-5 degrees tonight", "- bring the hammer"])
        // A misspelt or unknown flag is still an error, never sent as text, with or without a text; the help is
        // still the help
        for arguments in [
            ["broadcast", "-Meeting at the hall", "--yse"], ["broadcast", "--yes", "--dry-run"], ["send", "4155550100", "--dry-run"],
            // (a one-word text such as "-hello" cannot be told from flags: an error, not the help and exit 0 with nothing sent)
            ["send", "4155550100", "-hello"], ["send", "4155550100", "-help"], ["broadcast", "-hey", "--yes"],
        ] {
            let refused = try await Executable.run(arguments + ["--db", db])
            #expect(refused.status == 64 && refused.stderr.hasPrefix("Error: "), "\(arguments): \(refused.stderr)")
        }
        #expect(try await Executable.run(["outbox", "list", "--db", db, "--json"]).stdout.contains("dry-run") == false)
        let help = try await Executable.run(["send", "--help"])
        #expect(help.status == 0 && help.stdout.contains("USAGE: action2phone send"))
    }

    @Test func sendTakesAnEmailAsTheSENDCommandDoes() async throws {
        let db = tempDatabase()
        _ = try await registerIvan(db)
        let byEmail = try await Executable.run(["send", "Ivan@Example.org", "Bring the banner", "--db", db])
        #expect(byEmail.status == 0 && byEmail.stdout.contains("Stored in +14155550100's inbox"), "\(byEmail.stderr)")
        let rows = try #require(try jsonObject(try await Executable.run(["outbox", "list", "--db", db, "--json"]).stdout) as? [[String: Any]])
        #expect(rows.count == 1 && rows[0]["to"] as? String == "+14155550100" && rows[0]["body"] as? String == "Bring the banner")
        let noEmail = try await Executable.run(["send", "olga@example.org", "hello?", "--db", db])
        #expect(noEmail.status == 1 && noEmail.stderr.contains("no user with email olga@example.org"))
        // in brackets too; and a text with an é typed as e and an accent is sent composed, in GSM-7
        let bracketed = try await Executable.run(["send", "<ivan@example.org>,", "Rally at the cafe\u{301}", "--db", db])
        #expect(bracketed.status == 0, "\(bracketed.stderr)")
        // and users find and show take a name or an email typed with a decomposed accent, as the stored one is composed
        let queue = try DatabaseQueue(path: db)
        try await queue.write { try $0.execute(sql: "UPDATE users SET firstName = 'Zo\u{EB}', email = 'zo\u{EB}@example.org'") }
        let found = try await Executable.run(["users", "find", "Zoe\u{308}", "--db", db, "--json"])
        #expect((try jsonObject(found.stdout) as? [[String: Any]])?.count == 1, "\(found.stdout)\(found.stderr)")
        let shown = try await Executable.run(["users", "show", "ZOE\u{308}@example.org", "--db", db])
        #expect(shown.status == 0, "\(shown.stderr)")
        try await queue.write { try $0.execute(sql: "UPDATE users SET firstName = 'Ivan', email = 'ivan@example.org'") }
        let preview = try await Executable.run(["broadcast", "Rally at the cafe\u{301}", "--db", db])
        #expect(preview.stdout.contains("GSM-7, 1 segment(s) per text"), "\(preview.stdout)")
        let bodies = try #require(try jsonObject(try await Executable.run(["outbox", "list", "--db", db, "--json"]).stdout) as? [[String: Any]])
        #expect(bodies.first?["body"] as? String == "Rally at the caf\u{E9}")
        #expect((bodies.first?["body"] as? String)?.unicodeScalars.count == "Rally at the cafe".count)
    }

    @Test func broadcastAsksAtATerminalEvenWithItsOutputPiped() async throws {
        // Given an operator at a terminal whose output goes through a pipe (| tee broadcast.log)
        let db = tempDatabase()
        _ = try await registerIvan(db)
        var controller: Int32 = -1
        var terminal: Int32 = -1
        #expect(openpty(&controller, &terminal, nil, nil, nil) == 0)
        let output = Pipe()
        let writing = output.fileHandleForWriting.fileDescriptor
        for fd in [controller, terminal, writing, output.fileHandleForReading.fileDescriptor] { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let process = try Spawned(
            Executable.path,
            ["broadcast", "Harvest at dawn", "--db", db],
            environment: Executable.childEnvironment(["ACTION2PHONE_PBKDF2_ITERATIONS": "1000"]),
            stdin: terminal,
            stdout: writing,
            stderr: writing
        )
        // (The child has its own copies: with ours closed, the pipe ends when the child does.)
        close(terminal)
        try output.fileHandleForWriting.close()
        defer { if process.isRunning { process.terminate() } }
        // When the tool is waiting for the answer, the question has already reached the pipe: nothing is held in a buffer
        var seen = Data()
        let reading = output.fileHandleForReading.fileDescriptor
        _ = fcntl(reading, F_SETFL, fcntl(reading, F_GETFL) | O_NONBLOCK)  // (a tool that holds it back fails, not hangs)
        let deadline = ContinuousClock.now.advanced(by: .seconds(20))
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !String(decoding: seen, as: UTF8.self).contains("Type YES to send: ") && ContinuousClock.now < deadline && process.isRunning {
            let count = read(reading, &buffer, buffer.count)
            if count > 0 { seen += Data(buffer[..<count]) } else { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(
            String(decoding: seen, as: UTF8.self).contains("Broadcast to 1 registered person: 1 to be texted"),
            "\(String(decoding: seen, as: UTF8.self))"
        )
        #expect(String(decoding: seen, as: UTF8.self).hasSuffix("Type YES to send: "))
        // Then YES sends it
        _ = "YES\n".withCString { write(controller, $0, 4) }
        #expect(await Executable.waitForExit(process, timeout: .seconds(30)) == 0)
        // (Everything it wrote is in the pipe once it has ended: read without waiting for the pipe's end, which a child
        // of another test that inherited it in the moment before it was made close-on-exec could hold open.)
        while case let count = read(reading, &buffer, buffer.count), count > 0 { seen += Data(buffer[..<count]) }
        close(controller)
        #expect(String(decoding: seen, as: UTF8.self).contains("Stored in 1 inbox; 1 text queued."))
    }

    @Test func anExportThatCannotBeWrittenFailsAndALineBreakOfTwoCharactersIsQuoted() async throws {
        let db = tempDatabase()
        _ = try await registerIvan(db)
        // Given a direct message with a CRLF line break in it
        _ = try await Executable.run(["send", "4155550100", "Meet at noon\r\nBring flags", "--db", db])
        // Then its CSV row is one record: the field quoted, line break and all
        let csv = try await Executable.run(["outbox", "list", "--csv", "--db", db])
        #expect(csv.stdout.hasSuffix(",\"Meet at noon\r\nBring flags\"\n"), "\(csv.stdout.debugDescription)")
        // And an export written to a full disk fails, saying so, rather than ending with status 0
        let full = try await Executable.run(["users", "list", "--csv", "--db", db], outputPath: "/dev/full")
        #expect(full.status == 1 && full.stderr.contains("cannot write the output (No space left on device)"), "\(full.stderr)")
    }

    @Test func usersFindAndShowTakeTextAsPastedAndALockedOrFolderlessDatabaseIsExplained() async throws {
        let db = tempDatabase()
        _ = try await registerIvan(db)
        // White space around a name or an email, as a paste brings it, is not part of it
        let found = try await Executable.run(["users", "find", "  Ivan ", "--db", db])
        #expect(found.status == 0 && found.stdout.contains("+14155550100"), "\(found.stdout)\(found.stderr)")
        let shown = try await Executable.run(["users", "show", " IVAN@example.org ", "--db", db])
        #expect(shown.status == 0 && shown.stdout.contains("Ivan"), "\(shown.stderr)")
        // A negative --limit is refused as the flag's value, as for the other lists
        let negative = try await Executable.run(["users", "find", "Ivan", "--limit", "-3", "--db", db])
        #expect(negative.status == 64 && negative.stderr.contains("--limit must be at least 1"), "\(negative.stderr)")
        // A database path under a file is said to be that
        let folder = (db as NSString).deletingLastPathComponent
        let underAFile = try await Executable.run(["users", "list", "--db", folder + "/a.sqlite/b/db.sqlite"])
        #expect(underAFile.status == 1 && underAFile.stderr.contains("\(folder)/a.sqlite is a file, not a folder"), "\(underAFile.stderr)")
        // And a database another process holds the write lock of, past the busy timeout, says what to do
        var holding = Configuration()
        holding.allowsUnsafeTransactions = true  // (a transaction left open between accesses, as an sqlite3 shell's)
        let holder = try DatabaseQueue(path: db, configuration: holding)
        try await holder.writeWithoutTransaction { try $0.execute(sql: "BEGIN EXCLUSIVE") }
        let locked = try await Executable.run(["users", "list", "--db", db])
        try await holder.writeWithoutTransaction { try $0.execute(sql: "ROLLBACK") }
        #expect(locked.status == 1 && locked.stderr.contains("another process held its write lock for more than 5 s"), "\(locked.stderr)")
    }

    @Test func theDatabaseVariableNamesTheFileServeWouldOpenForEveryCommand() async throws {
        // Given ACTION2PHONE_DB with white space after it (as a line of an env file may carry), which serve drops
        let db = tempDatabase()
        let given = ["ACTION2PHONE_DB": db + " \t"]
        #expect(ServerConfig.databasePath(flags: [:], environment: given) == db)
        // When a tool runs with it
        let list = try await Executable.run(["users", "list"], environment: given)
        #expect(list.status == 0, "\(list.stderr)")
        // Then it opened the file serve would, and made no other
        #expect(FileManager.default.fileExists(atPath: db))
        let folder = (db as NSString).deletingLastPathComponent
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).allSatisfy { $0.hasPrefix("a.sqlite") && !$0.contains(" ") })
        // And an empty --db is refused by backup and chat too, never taken for the default
        let backup = try await Executable.run(["backup", "--db", "", folder + "/copy.sqlite"])
        #expect(backup.status == 1 && backup.stderr.contains("--db is empty"), "\(backup.stderr)")
        let chat = try await Executable.run(["chat", "--db", " "], input: "HELP\n")
        #expect(chat.status == 1 && chat.stderr.contains("--db is empty"), "\(chat.stderr)")
        #expect(!FileManager.default.fileExists(atPath: folder + "/copy.sqlite"))
    }

    @Test func sendBroadcastAndTheOutbox() async throws {
        let db = tempDatabase()
        _ = try await registerIvan(db)
        let send = try await Executable.run(["send", "4155550100", "Report at dawn", "--db", db])
        #expect(send.status == 0 && send.stdout.contains("queued to be texted"))
        let nobody = try await Executable.run(["send", "4155550199", "hello?", "--db", db])
        #expect(nobody.status == 1 && nobody.stderr.contains("no user with phone +14155550199"))
        // Stored but not texted says why, and what lifts it
        _ = try await Executable.run(["users", "opt-out", "4155550100", "--db", db])
        let optedOut = try await Executable.run(["send", "4155550100", "Are you there?", "--db", db])
        #expect(optedOut.status == 0 && optedOut.stdout.contains("not texted: the number opted out (START from the phone"), "\(optedOut.stdout)")
        _ = try await Executable.run(["users", "opt-in", "4155550100", "--db", db])
        try await DatabasePool(path: db).write { try $0.execute(sql: "UPDATE phones SET suppressed = 1") }
        let suppressed = try await Executable.run(["send", "4155550100", "Are you there?", "--db", db])
        #expect(suppressed.stdout.contains("not texted: Twilio said the number cannot receive texts (users unsuppress"), "\(suppressed.stdout)")
        try await DatabasePool(path: db).write {
            try $0.execute(sql: "UPDATE phones SET suppressed = 0")
            try $0.execute(sql: "DELETE FROM inbox WHERE body = 'Are you there?'")
        }
        let emoji = try await Executable.run(["send", "4155550100", String(repeating: "😀", count: 801), "--db", db])
        #expect(emoji.status == 1 && emoji.stderr.contains("1602 characters long as Twilio counts them (an emoji counts 2)"), "\(emoji.stderr)")
        let noPath = try await Executable.run(["users", "list", "--db", ""])
        #expect(noPath.status == 1 && noPath.stderr.contains("--db is empty"), "\(noPath.stderr)")
        let unconfirmed = try await Executable.run(["broadcast", "It’s harvest time", "--db", db])
        #expect(unconfirmed.status == 1)
        #expect(unconfirmed.stdout.contains("UCS-2") && unconfirmed.stdout.contains("U+2019"))
        #expect(unconfirmed.stderr.contains("pass --yes"))
        let broadcast = try await Executable.run(["broadcast", "Harvest at dawn", "--yes", "--db", db])
        #expect(broadcast.status == 0 && broadcast.stdout.contains("Stored in 1 inbox; 1 text queued."))
        let outbox = try await Executable.run(["outbox", "list", "--db", db, "--json"])
        let rows = try #require(try jsonObject(outbox.stdout) as? [[String: Any]])
        try #require(rows.count == 2)
        #expect(Set(rows[0].keys) == ["id", "to", "body", "status", "attempts", "twilioSid", "errorCode", "errorMessage", "createdAt", "updatedAt"])
        #expect(rows.map { $0["body"] as? String } == ["Harvest at dawn", "Report at dawn"])
        #expect(outbox.stderr.isEmpty)
        // Fewer than there are: the newest, and a word on stderr that more exist
        let newest = try await Executable.run(["outbox", "list", "--db", db, "--limit", "1", "--json"])
        #expect(try #require(try jsonObject(newest.stdout) as? [[String: Any]]).map { $0["body"] as? String } == ["Harvest at dawn"])
        #expect(newest.stderr.contains("the newest 1 shown; there are more"))
        let all = try await Executable.run(["outbox", "list", "--db", db, "--limit", String(Int.max)])
        #expect(all.status == 0 && all.stderr.isEmpty, "\(all.stderr)")
        let queued = try await Executable.run(["outbox", "list", "--status", "queued", "--db", db, "--csv"])
        #expect(queued.stdout.split(separator: "\n").count == 3)
        // (a status in capitals is the same status, as --reply-mode REST is)
        let capitals = try await Executable.run(["outbox", "list", "--status", "QUEUED", "--db", db, "--csv"])
        #expect(capitals.status == 0 && capitals.stdout == queued.stdout, "\(capitals.stderr)")
        // (a value that is not there is empty in CSV, as it is null in JSON)
        #expect(queued.stdout.split(separator: "\n")[1].hasPrefix("2,+14155550100,queued,0,,,,"), "\(queued.stdout)")
        // A queued text cannot be retried (it would go twice); an uncertain one can, and is looked up first.
        let refused = try await Executable.run(["outbox", "retry", "1", "--db", db])
        #expect(refused.status == 1 && refused.stderr.contains("row 1 is queued"))
        try await DatabasePool(path: db).write {
            try $0.execute(sql: "UPDATE outbox SET status = 'uncertain', firstAttemptAt = createdAt WHERE id = 1")
        }
        try await DatabasePool(path: db).write { try $0.execute(sql: "UPDATE outbox SET status = 'failed' WHERE id = 2") }
        // An id given twice is one row, queued once, not refused the second time
        let twice = try await Executable.run(["outbox", "retry", "2", "2", "--db", db])
        #expect(twice.status == 0 && twice.stdout.contains("Queued again: 2.") && twice.stderr.isEmpty, "\(twice.stderr)")
        let retried = try await Executable.run(["outbox", "retry", "--uncertain", "--db", db])
        #expect(retried.status == 0 && retried.stdout.contains("Queued again: 1."))
        let row = try await DatabasePool(path: db).read { try Row.fetchOne($0, sql: "SELECT status, needsReconcile FROM outbox WHERE id = 1") }
        #expect(row?["status"] as String? == "queued" && row?["needsReconcile"] as Bool? == true)
        #expect(try await Executable.run(["outbox", "retry", "--db", db]).status == 64)
        // A status callback's code comes without a message: the table says what it means, JSON keeps what was stored
        try await DatabasePool(path: db).write {
            try $0.execute(sql: "UPDATE outbox SET status = 'undelivered', errorCode = 30006, errorMessage = NULL WHERE id = 2")
        }
        let undelivered = try await Executable.run(["outbox", "list", "--status", "undelivered", "--db", db])
        #expect(undelivered.stdout.contains("30006") && undelivered.stdout.contains("landline or unreachable carrier"), "\(undelivered.stdout)")
        let json = try await Executable.run(["outbox", "list", "--status", "undelivered", "--db", db, "--json"])
        #expect(try #require(try jsonObject(json.stdout) as? [[String: Any]]).first?["errorMessage"] is NSNull)
    }

    @Test func replayChecksEveryFixtureInProcess() async throws {
        let files = conversationFixtureFiles().map { repositoryRoot.appendingPathComponent("fixtures/conversations/\($0)").path }
        let scratch = testScratch.appendingPathComponent("a2p-tmp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        let db = scratch.appendingPathComponent("db/operator.sqlite").path
        let r = try await Executable.run(
            ["replay", "--fresh", "--check"] + files,
            environment: ["ACTION2PHONE_ADMIN_PHONES": "+14155550199", "TMPDIR": scratch.path, "ACTION2PHONE_DB": db]
        )
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("== registration happy path"))
        #expect(r.stdout.contains("+14155550100 > join\nbot > Welcome, future comrade!"))
        #expect(r.stdout.contains("check: all replies as expected."))
        #expect(r.stderr.isEmpty, "\(r.stderr)")
        // And each fixture's database is gone, and nothing was made beside the operator's database
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path) == [])
        try? FileManager.default.removeItem(at: scratch)
    }

    @Test(arguments: [(["--log-level", "loud"], [String: String](), "--log-level"), ([], ["LOG_LEVEL": "verbose"], "LOG_LEVEL")])
    func aLogLevelThatDoesNotExistStopsServeNamingIt(_ flags: [String], _ environment: [String: String], _ name: String) async throws {
        let r = try await Executable.run(["serve", "--port", "0", "--db", tempDatabase()] + flags, environment: environment, timeout: .seconds(20))
        #expect(r.status == 64)
        #expect(r.stderr.contains("\(name) must be one of trace, debug, info, notice, warning, error, critical (got '"), "\(r.stderr)")
        // (With serve's usage, as every other bad setting of serve's, not the tool's)
        #expect(r.stderr.contains("Usage: action2phone serve") && !r.stderr.contains("<subcommand>"), "\(r.stderr)")
    }

    /// A negative number after a flag is that flag's value, refused with the range, not "Missing value".
    @Test(arguments: [
        (["serve", "--port", "0", "--send-rate", "-1"], "--send-rate must be a number of messages per second from 0.01 to 10000 (got '-1')"),
        (["serve", "--port", "0", "--session-ttl", "-60"], "--session-ttl must be"),
        (["serve", "--port", "-8080"], "--port must be"),
        (["users", "list", "--limit", "-5"], "--limit must be at least 1"),
        (["outbox", "list", "--limit", "-5"], "--limit must be at least 1"),
    ])
    func aNegativeNumberIsRefusedAsTheFlagsValue(_ arguments: [String], _ message: String) async throws {
        let r = try await Executable.run(arguments + ["--db", tempDatabase()], timeout: .seconds(20))
        #expect(r.status == 64)
        #expect(r.stderr.contains(message) && !r.stderr.contains("Missing value"), "\(r.stderr)")
    }

    @Test func aBadSettingShowsServesUsageAndATakenPortIsNamed() async throws {
        let bad = try await Executable.run(
            ["serve", "--port", "0", "--db", tempDatabase()],
            environment: ["ACTION2PHONE_SEND_RATE": "lots"],
            timeout: .seconds(20)
        )
        #expect(bad.status == 64)
        #expect(bad.stderr.contains("ACTION2PHONE_SEND_RATE must be a number") && bad.stderr.contains("Usage: action2phone serve"), "\(bad.stderr)")
        try await TestServer.run { server in
            let port = String(server.base.split(separator: ":").last!)
            let taken = try await Executable.run(["serve", "--port", port, "--db", tempDatabase()], timeout: .seconds(20))
            #expect(taken.status == 1)
            #expect(taken.stderr.contains("cannot listen on 127.0.0.1:\(port): the port is in use"), "\(taken.stderr)")
            #expect(!taken.stderr.contains("WAL checkpoints") && !taken.stderr.contains("cannot claim"), "\(taken.stderr)")
        }
    }

    @Test func replayCheckNamesEachMismatchAndExits1() async throws {
        let dir = testScratch.appendingPathComponent("a2p-fx-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let fixture = dir.appendingPathComponent("wrong.json")
        try Data(
            #"{"name":"wrong","to":"+15005550006","steps":[{"from":"+14155550100","body":"HELP","expect":{"contains":["JOIN"]}},{"from":"+14155550100","body":"JOIN","expect":{"contains":["passcode"],"empty":true}}]}"#
                .utf8
        ).write(to: fixture)
        let r = try await Executable.run(["replay", "--fresh", "--check", fixture.path])
        #expect(r.status == 1)
        #expect(
            r.stderr.contains(
                "MISMATCH \(fixture.path) step 2 (JOIN): expected the reply to contain \"passcode\", got \"Welcome, future comrade! Reply with your first name.\""
            )
        )
        #expect(r.stderr.contains("step 2 (JOIN): expected no reply"))
        #expect(r.stdout.contains("check: 2 mismatch(es)."))
        let far = dir.appendingPathComponent("far.json")
        try Data(#"{"name":"far","to":"+15005550006","steps":[{"from":"+14155550100","body":"HELP","wait":1e19}]}"#.utf8).write(to: far)
        let farResult = try await Executable.run(["replay", "--fresh", far.path])
        #expect(farResult.status == 1 && farResult.stderr.contains("a wait is 0 to 31536000 seconds"))
        let badURL = try await Executable.run(["replay", "--url", "http://[::1", "--db", tempDatabase(), fixture.path])
        #expect(badURL.status == 1 && badURL.stderr.contains("is not an http(s) URL"))
        let broken = dir.appendingPathComponent("broken.json")
        try Data("{not json".utf8).write(to: broken)
        let bad = try await Executable.run(["replay", broken.path])
        #expect(bad.status == 1 && bad.stderr.contains("not a conversation fixture"))
        // A step may expect the status the server gives a webhook without From, in-process too, and the script goes on
        let refused = dir.appendingPathComponent("refused.json")
        try Data(
            #"{"name":"refused","to":"+15005550006","steps":[{"from":"","body":"HELP","expect":{"status":400,"empty":true}},{"from":"+14155550100","body":"HELP","expect":{"contains":["JOIN"]}}]}"#
                .utf8
        ).write(to: refused)
        let statuses = try await Executable.run(["replay", "--fresh", "--check", refused.path])
        #expect(statuses.status == 0 && statuses.stdout.contains("[HTTP 400]"), "\(statuses.stdout)\n\(statuses.stderr)")
        // And a fixture may leave out `to`, a step's body or its sender (a webhook without From), and write a field's
        // value as a number
        let terse = dir.appendingPathComponent("terse.json")
        try Data(
            #"{"name":"terse","steps":[{"from":"+14155550100","params":{"NumMedia":1,"MediaUrl0":"https://example.org/a.jpg"},"expect":{"contains":["pictures and files are ignored"]}},{"body":"HELP","expect":{"status":400}}]}"#
                .utf8
        ).write(to: terse)
        let tolerated = try await Executable.run(["replay", "--fresh", "--check", terse.path])
        #expect(tolerated.status == 0, "\(tolerated.stdout)\n\(tolerated.stderr)")
        // A body over the server's 64 KiB limit is answered 413 in-process too, as the server answers it, and not handled
        let huge = dir.appendingPathComponent("huge.json")
        try Data(
            #"{"name":"huge","steps":[{"from":"+14155550100","body":"\#(String(repeating: "a", count: 70_000))","expect":{"status":413,"empty":true}}]}"#
                .utf8
        ).write(to: huge)
        let tooLarge = try await Executable.run(["replay", "--fresh", "--check", huge.path])
        #expect(tooLarge.status == 0 && tooLarge.stdout.contains("[HTTP 413]"), "\(tooLarge.stderr)")
        // A step without `expect` is still held to status 200
        let unexpected = dir.appendingPathComponent("unexpected.json")
        try Data(#"{"name":"unexpected","steps":[{"body":"HELP"},{"from":"+14155550100","body":"HELP"}]}"#.utf8).write(to: unexpected)
        let unchecked = try await Executable.run(["replay", "--fresh", "--check", unexpected.path])
        #expect(unchecked.status == 1, "\(unchecked.stdout)\n\(unchecked.stderr)")
        #expect(unchecked.stderr.contains("step 1 (HELP): status: expected 200, got 400") && !unchecked.stderr.contains("step 2"))
        // A misspelled key is refused, not read as no check at all
        for (json, key, what) in [
            (#"{"name":"typo","steps":[{"from":"+14155550100","body":"HELP","expect":{"contain":["not in the reply"]}}]}"#, "contain", "expect"),
            (#"{"name":"typo","steps":[{"from":"+14155550100","body":"HELP","expcet":{"contains":["not in the reply"]}}]}"#, "expcet", "a step"),
        ] {
            let typo = dir.appendingPathComponent("typo.json")
            try Data(json.utf8).write(to: typo)
            let refusedTypo = try await Executable.run(["replay", "--fresh", "--check", typo.path])
            #expect(refusedTypo.status == 1 && refusedTypo.stderr.contains("\(what) has no key \"\(key)\""), "\(refusedTypo.stderr)")
        }
        // A recorded url that is no http(s) URL (it would have sent the request elsewhere), and a body repeated past
        // 16 MiB (it would have taken all the memory there is), are refused before anything is sent
        for (json, said) in [
            (#"{"url":"@127.0.0.1:9/sms","status":403}"#, "url is the http(s) URL the request was sent to"),
            (#"{"url":"https://bot.example.org/sms","body":"ab","bodyRepeat":100000000000}"#, "the body repeated is at most 16777216 bytes"),
            (#"{"url":"https://bot.example.org/sms","body":"ab","bodyRepeat":0}"#, "bodyRepeat is 1 or more"),
        ] {
            let hostile = dir.appendingPathComponent("raw-hostile.json")
            try Data(json.utf8).write(to: hostile)
            let refusedHostile = try await Executable.run(["replay", "--raw", "--fresh", "--check", hostile.path])
            #expect(refusedHostile.status == 1 && refusedHostile.stderr.contains(said), "\(refusedHostile.stderr)")
        }
        let rawTypo = dir.appendingPathComponent("raw-typo.json")
        try Data(#"{"url":"https://bot.example.org/sms","stauts":403}"#.utf8).write(to: rawTypo)
        let refusedRaw = try await Executable.run(["replay", "--raw", "--fresh", "--check", rawTypo.path])
        #expect(refusedRaw.status == 1 && refusedRaw.stderr.contains("a recorded webhook has no key \"stauts\""), "\(refusedRaw.stderr)")
    }

    @Test func replayOverHTTPSignsLikeTwilio() async throws {
        // The CLI signs with the local-mode token next to its --db: give it the server's.
        let db = tempDatabase()
        try FileManager.default.createDirectory(atPath: (db as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data((TestServer.token + "\n").utf8).write(to: URL(fileURLWithPath: db + ".dev-token"))
        let fixture = repositoryRoot.appendingPathComponent("fixtures/conversations/registration-happy-path.json").path
        try await TestServer.run { server in
            let r = try await Executable.run(["replay", "--check", "--url", server.base, "--public-url", TestServer.publicURL, "--db", db, fixture])
            #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
            #expect(try server.count("users") == 1)
            let wrongToken = try await Executable.run(["replay", "--check", "--url", server.base, "--db", tempDatabase(), fixture])
            #expect(wrongToken.status == 1)
            #expect(wrongToken.stderr.contains("status: expected 200, got 403"))
            // and says once what a refused signature needs
            #expect(
                wrongToken.stderr.components(separatedBy: "the server refused the signature (403): sign with its token").count == 2,
                "\(wrongToken.stderr)"
            )
            // A fixture that needs the clock moved cannot run against a live server: refused before its first text.
            let expiry = repositoryRoot.appendingPathComponent("fixtures/conversations/session-expiry.json").path
            let before = try server.count("inbound")
            let r2 = try await Executable.run(["replay", "--check", "--url", server.base, "--public-url", TestServer.publicURL, "--db", db, expiry])
            #expect(r2.status == 1 && r2.stderr.contains("replay this fixture in-process"))
            // (and --check does not call a run that played nothing a pass)
            #expect(r2.stdout.contains("check: nothing was played") && !r2.stdout.contains("as expected"), "\(r2.stdout)")
            #expect(try server.count("inbound") == before)
            // and the fixtures after it still play
            let help = repositoryRoot.appendingPathComponent("fixtures/conversations/help-reset-unknown.json").path
            let r3 = try await Executable.run(
                ["replay", "--check", "--url", server.base, "--public-url", TestServer.publicURL, "--db", db, expiry, help])
            #expect(r3.status == 1)
            #expect(
                r3.stdout.contains("check: the replies of the 1 fixture played were as expected.")
                    && r3.stdout.contains("not played (they move the clock"),
                "\(r3.stdout)"
            )
            #expect(try server.count("inbound") > before)
        }
    }

    @Test func replayAndChatOverHTTPTextFromTheConfiguredAccount() async throws {
        // Given a server with Twilio credentials, which refuses webhooks of any other account (403)
        let account = "AC" + String(repeating: "1", count: 32)
        let token = "replay-auth-token-0123456789abcdef"
        let config = TestServer.makeConfig {
            $0.authToken = Secret(token)
            $0.accountSid = account
            $0.isLocalMode = false
        }
        // (signing needs no sender, and the URL signed for is the server's public URL, from the same environment)
        let environment = ["TWILIO_ACCOUNT_SID": account, "TWILIO_AUTH_TOKEN": token, "ACTION2PHONE_PUBLIC_URL": TestServer.publicURL]
        let fixture = repositoryRoot.appendingPathComponent("fixtures/conversations/registration-happy-path.json").path
        try await TestServer.run(config) { server in
            // When the operator replays and chats with the same credentials in the environment
            let r = try await Executable.run(["replay", "--check", "--url", server.base, "--db", tempDatabase(), fixture], environment: environment)
            // Then the texts come from that account and are answered
            #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
            #expect(try server.count("users") == 1)
            let chat = try await Executable.run(
                ["chat", "--url", server.base, "--db", tempDatabase(), "--from", "+14155550188"],
                environment: environment,
                input: "HELP\n"
            )
            #expect(chat.status == 0, "\(chat.stdout)\n\(chat.stderr)")
            #expect(chat.stdout.contains("bot > Action2Phone") && !chat.stdout.contains("[HTTP"), "\(chat.stdout)")
            // And a chat signed with another token is refused, and says so in its exit status
            var wrong = environment
            wrong["TWILIO_AUTH_TOKEN"] = "another-token-0123456789abcdef01"
            let refused = try await Executable.run(
                ["chat", "--url", server.base, "--db", tempDatabase(), "--from", "+14155550188"],
                environment: wrong,
                input: "HELP\nHELP\n"
            )
            #expect(refused.status == 1 && refused.stdout.contains("[HTTP 403]"), "\(refused.stdout)\n\(refused.stderr)")
            #expect(refused.stderr.contains("2 text(s) not accepted by the server"), "\(refused.stderr)")
        }
    }

    @Test func rawWebhooksReplayByteForByte() async throws {
        let config = TestServer.makeConfig {
            $0.authToken = Secret("fixture-auth-token-0123456789abcdef")
            $0.accountSid = "AC" + String(repeating: "0", count: 32)
            $0.isLocalMode = false
        }
        let dir = repositoryRoot.appendingPathComponent("fixtures/webhooks")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".json") }.sorted().map {
            dir.appendingPathComponent($0).path
        }
        #expect(files.count >= 14)
        try await TestServer.run(config) { server in
            let r = try await Executable.run(["replay", "--raw", "--check", "--url", server.base] + files)
            #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
            #expect(r.stdout.contains("== unicode body: HTTP 200 (expected 200)"))
            #expect(r.stdout.contains("== oversized body: HTTP 413 (expected 413)"))
            let unicode: String = try server.rows("SELECT body FROM inbound WHERE \"from\" = '+14155550190' AND body LIKE 'Привет%'")[0]["body"]
            #expect(unicode == "Привет, товарищ! 😀 Ça va? ñ & <ok>")
            let mms = try await Executable.run(["replay", "--raw", "--url", server.base, dir.appendingPathComponent("mms-no-text.json").path])
            #expect(mms.stdout.contains("pictures and files are ignored"))
        }
    }

    @Test func rawWebhooksReplayWithoutAURLToTheServerOnALoopbackPort() async throws {
        let dir = repositoryRoot.appendingPathComponent("fixtures/webhooks")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".json") }.sorted().map {
            dir.appendingPathComponent($0).path
        }
        // Given the credentials the fixtures were signed with, and no public URL (the recorded URL is the one)
        let fixtureCredentials = [
            "TWILIO_ACCOUNT_SID": "AC" + String(repeating: "0", count: 32), "TWILIO_AUTH_TOKEN": "fixture-auth-token-0123456789abcdef",
        ]
        let db = tempDatabase()
        // When every recorded webhook is replayed without --url
        let r = try await Executable.run(["replay", "--raw", "--check", "--db", db] + files, environment: fixtureCredentials)
        // Then each got its expected status from the real server, and what it accepted is in the database
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("== valid sms: HTTP 200 (expected 200)") && r.stdout.contains("== wrong signature: HTTP 403 (expected 403)"))
        #expect(r.stdout.contains("== oversized body: HTTP 413 (expected 413)") && r.stdout.contains("== missing from: HTTP 400 (expected 400)"))
        let queue = try DatabaseQueue(path: db)
        let sids = try await queue.read { try String.fetchAll($0, sql: "SELECT messageSid FROM inbound ORDER BY messageSid") }
        #expect(sids.contains("SMa1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1") && sids.count == 4, "\(sids)")
        // And a server in local mode (no credentials) refuses them, and the operator is told why
        let local = try await Executable.run(["replay", "--raw", "--check", "--fresh", dir.appendingPathComponent("valid-sms.json").path])
        #expect(local.status == 1 && local.stderr.contains("status: expected 200, got 403"), "\(local.stderr)")
        #expect(local.stderr.contains("the fixtures were signed with the credentials fixtures/README.md gives"))
        let unchecked = try await Executable.run(["replay", "--raw", "--fresh", dir.appendingPathComponent("valid-sms.json").path])
        #expect(unchecked.status == 0 && unchecked.stdout.contains("HTTP 403 (expected 200)"), "\(unchecked.stdout)")
        #expect(unchecked.stderr.contains("the fixtures were signed with the credentials fixtures/README.md gives"))
    }

    @Test func aRecordedWebhookMayGiveItsFieldsAsAnObject() async throws {
        // Given a webhook recorded with its fields as a JSON object, signed for the URL it names
        let token = "fixture-auth-token-0123456789abcdef"
        let url = "https://bot.example.org/sms"
        let fields = [
            "MessageSid": "SM" + String(repeating: "b", count: 32), "From": "+14155550191", "To": "+15005550006", "Body": "HELP",
            "AccountSid": "AC" + String(repeating: "0", count: 32),
        ]
        let signature = TwilioSignature.compute(authToken: token, url: url, params: fields.map { FormField($0.key, $0.value) })
        let request: [String: Any] = [
            "url": url, "headers": ["Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature], "params": fields,
            "status": 200,
        ]
        let file = testScratch.appendingPathComponent("a2p-object-\(UUID().uuidString).json")
        try FileManager.default.createDirectory(at: testScratch, withIntermediateDirectories: true)
        try JSONSerialization.data(withJSONObject: request).write(to: file)
        let environment = ["TWILIO_ACCOUNT_SID": "AC" + String(repeating: "0", count: 32), "TWILIO_AUTH_TOKEN": token]
        // When it is replayed, then it is sent as a form the server accepts
        let r = try await Executable.run(["replay", "--raw", "--check", "--fresh", file.path], environment: environment)
        #expect(r.status == 0 && r.stdout.contains("HTTP 200 (expected 200)") && r.stdout.contains("reply JOIN"), "\(r.stdout)\n\(r.stderr)")
        // And a field that is not a [name, value] pair is refused, not dropped
        try Data(#"{"url":"https://bot.example.org/sms","params":[["From","+1"],["Body"]]}"#.utf8).write(to: file)
        let broken = try await Executable.run(["replay", "--raw", "--fresh", file.path], environment: environment)
        #expect(broken.status == 1 && broken.stderr.contains("each field is a [name, value] pair"), "\(broken.stderr)")
    }
}

@Suite("action2phone doctor against a fake Twilio API")
struct DoctorTests {
    func environment(_ base: String, publicURL: String? = "https://bot.example.org") -> [String: String] {
        var env = [
            "TWILIO_ACCOUNT_SID": FakeTwilio.accountSid, "TWILIO_AUTH_TOKEN": FakeTwilio.authToken, "TWILIO_FROM_NUMBER": FakeTwilio.from,
            "TWILIO_API_BASE_URL": base,
        ]
        env["ACTION2PHONE_PUBLIC_URL"] = publicURL
        return env
    }

    @Test func healthyConfigurationPasses() async throws {
        let fake = FakeTwilio()
        fake.setSMSURL("https://bot.example.org/sms")
        try await fake.run { base in
            let r = try await Executable.run(["doctor", "--db", tempDatabase()], environment: environment(base))
            #expect(r.status == 0, "\(r.stdout)")
            #expect(r.stdout.contains("ok    the REST API accepts the credentials"))
            #expect(r.stdout.contains("ok    its SMS webhook is https://bot.example.org/sms"))
            #expect(r.stdout.contains("All checks passed."))
            #expect(!r.stdout.contains(FakeTwilio.authToken))
        }
    }

    @Test func wrongWebhookURLIsExplained() async throws {
        let fake = FakeTwilio()
        fake.setSMSURL("https://old.example.org/twilio")
        try await fake.run { base in
            let r = try await Executable.run(["doctor", "--db", tempDatabase()], environment: environment(base))
            #expect(r.status == 1)
            #expect(r.stdout.contains("FAIL  its SMS webhook is 'https://old.example.org/twilio', not https://bot.example.org/sms"))
            #expect(r.stdout.contains("fix: Console → Phone Numbers"))
        }
        // A URL the server checks the same way passes: a trailing slash, a query (signed as received), the default
        // port written; another path, scheme or port does not, nor the host in other letters (Twilio signs it so)
        for (url, passes) in [
            ("https://bot.example.org/sms/", true), ("https://bot.example.org/sms?src=twilio", true), ("https://bot.example.org:443/sms", true),
            ("https://BOT.example.org/sms", false), ("https://bot.example.org/sms/status", false), ("http://bot.example.org/sms", false),
            ("https://bot.example.org:8443/sms", false), ("https://bot.example.org/SMS", false),
        ] {
            let configured = FakeTwilio()
            configured.setSMSURL(url)
            try await configured.run { base in
                let r = try await Executable.run(["doctor", "--db", tempDatabase()], environment: environment(base))
                #expect((r.status == 0) == passes, "\(url): \(r.stdout)")
                #expect(r.stdout.contains(passes ? "ok    its SMS webhook is \(url) (POST)" : "FAIL  its SMS webhook is '\(url)'"), "\(r.stdout)")
            }
        }
    }

    @Test func rejectedCredentialsUnknownSenderAndNoPublicURL() async throws {
        try await FakeTwilio().run { base in
            var env = environment(base, publicURL: nil)
            env["TWILIO_AUTH_TOKEN"] = "wrong"
            env["TWILIO_FROM_NUMBER"] = "+14155550000"
            let r = try await Executable.run(["doctor", "--db", tempDatabase()], environment: env)
            #expect(r.status == 1)
            #expect(r.stdout.contains("FAIL  the REST API refused the credentials: HTTP 401 code 20003"))
            // The number is not looked up with credentials just refused (it would only fail again)
            #expect(!r.stdout.contains("cannot look up") && r.stdout.components(separatedBy: "FAIL").count == 2, "\(r.stdout)")
        }
        let suspended = FakeTwilio()
        suspended.setAccountStatus("suspended")
        try await suspended.run { base in
            let r = try await Executable.run(["doctor", "--db", tempDatabase()], environment: environment(base))
            #expect(r.status == 1)
            #expect(r.stdout.contains("FAIL  the account Test account is suspended: Twilio sends nothing from it"), "\(r.stdout)")
            // (the number and its webhook are still checked: the credentials work)
            #expect(r.stdout.contains("ok    +15005550006 is a number on the account"), "\(r.stdout)")
        }
        try await FakeTwilio().run { base in
            var env = environment(base, publicURL: nil)
            env["TWILIO_FROM_NUMBER"] = "+14155550000"
            let r = try await Executable.run(["doctor", "--db", tempDatabase()], environment: env)
            #expect(r.stdout.contains("FAIL  +14155550000 is not a number on account"))
        }
        try await FakeTwilio().run { base in
            let r = try await Executable.run(["doctor", "--db", tempDatabase()], environment: environment(base, publicURL: nil))
            #expect(r.stdout.contains("FAIL  ACTION2PHONE_PUBLIC_URL is not set"))
            // A host serve could not listen on is said, as serve would say it (127.0.0.1, the default, passes above)
            var env = environment(base)
            env["ACTION2PHONE_HOST"] = "nosuch.invalid"
            let host = try await Executable.run(["doctor", "--db", tempDatabase()], environment: env)
            #expect(
                host.status == 1 && host.stdout.contains("FAIL  ACTION2PHONE_HOST nosuch.invalid is no address of this machine"),
                "\(host.stdout)"
            )
            env["ACTION2PHONE_HOST"] = "0.0.0.0"
            #expect(!(try await Executable.run(["doctor", "--db", tempDatabase()], environment: env)).stdout.contains("ACTION2PHONE_HOST"))
        }
        let local = try await Executable.run(["doctor", "--db", tempDatabase()])
        #expect(local.status == 1 && local.stdout.contains("no Twilio credentials"))
        // A password in the API's URL (a proxy's) is not printed when the API cannot be reached
        let proxied = try await Executable.run(
            ["doctor", "--db", tempDatabase()],
            environment: environment("http://proxyuser:ProxyPassw0rd@127.0.0.1:9")
        )
        #expect(proxied.status == 1 && proxied.stdout.contains("cannot reach the REST API at http://proxyuser:***@127.0.0.1:9"), "\(proxied.stdout)")
        #expect(!proxied.stdout.contains("ProxyPassw0rd") && !proxied.stderr.contains("ProxyPassw0rd"))
    }

    @Test func aLogLevelServeWouldRefuseFails() async throws {
        let fake = FakeTwilio()
        fake.setSMSURL("https://bot.example.org/sms")
        try await fake.run { base in
            var env = environment(base)
            env["LOG_LEVEL"] = "verbose"
            let r = try await Executable.run(["doctor", "--db", tempDatabase()], environment: env)
            #expect(r.status == 1, "\(r.stdout)")
            #expect(r.stdout.contains("FAIL  configuration: LOG_LEVEL must be one of trace, debug"), "\(r.stdout)")
            // (the rest is still checked)
            #expect(r.stdout.contains("ok    its SMS webhook is https://bot.example.org/sms"), "\(r.stdout)")
            env["LOG_LEVEL"] = "Warning"
            let fine = try await Executable.run(["doctor", "--db", tempDatabase()], environment: env)
            #expect(fine.status == 0 && fine.stdout.contains("All checks passed."), "\(fine.stdout)")
        }
    }

    @Test func aMessagingServiceIsLookedUpWithItsWebhook() async throws {
        let sid = "MG" + String(repeating: "a", count: 32)
        func run(_ fake: FakeTwilio, serviceSid: String = sid, publicURL: String? = "https://bot.example.org") async throws -> (Int32, String) {
            var result: (Int32, String) = (0, "")
            try await fake.run { base in
                var env = environment(base, publicURL: publicURL)
                env["TWILIO_FROM_NUMBER"] = nil
                env["TWILIO_MESSAGING_SERVICE_SID"] = serviceSid
                let r = try await Executable.run(["doctor", "--db", tempDatabase()], environment: env)
                result = (r.status, r.stdout)
            }
            return result
        }
        // Given the account's service sends its texts' webhooks to the public URL, then every check passes
        let healthy = FakeTwilio()
        healthy.setMessagingService(sid, inboundURL: "https://bot.example.org/sms")
        var (status, out) = try await run(healthy)
        #expect(status == 0 && out.contains("ok    sending through Messaging Service \(sid) (Comrades), on the account"), "\(out)")
        #expect(out.contains("ok    its incoming-message webhook is https://bot.example.org/sms (POST)"), "\(out)")
        // A service that is not the account's, one whose webhook is elsewhere or unset, or called with GET, fails
        (status, out) = try await run(healthy, serviceSid: "MG" + String(repeating: "b", count: 32))
        #expect(status == 1 && out.contains("FAIL  Messaging Service MGbbbb"), "\(out)")
        #expect(out.contains("is not on account \(FakeTwilio.accountSid)") && out.contains("fix: set TWILIO_MESSAGING_SERVICE_SID"), "\(out)")
        let elsewhere = FakeTwilio()
        elsewhere.setMessagingService(sid, inboundURL: "https://old.example.org/twilio")
        (status, out) = try await run(elsewhere)
        #expect(status == 1, "\(out)")
        #expect(out.contains("FAIL  its incoming-message webhook is 'https://old.example.org/twilio', not https://bot.example.org/sms"), "\(out)")
        #expect(out.contains("fix: Console → Messaging → Services → Comrades → Integration"), "\(out)")
        let unset = FakeTwilio()
        unset.setMessagingService(sid, inboundURL: nil)
        (status, out) = try await run(unset)
        #expect(status == 1 && out.contains("FAIL  its incoming-message webhook is not set, not https://bot.example.org/sms"), "\(out)")
        let get = FakeTwilio()
        get.setMessagingService(sid, inboundURL: "https://bot.example.org/sms", method: "GET")
        (status, out) = try await run(get)
        #expect(status == 1 && out.contains("FAIL  its incoming-message webhook is https://bot.example.org/sms, but called with HTTP GET"), "\(out)")
        // A service whose numbers' own webhooks answer is said so; without a public URL nothing can be compared
        let numbersOwn = FakeTwilio()
        numbersOwn.setMessagingService(sid, inboundURL: nil, numbersOwn: true)
        (status, out) = try await run(numbersOwn)
        #expect(status == 0 && out.contains("note  its numbers' own SMS webhooks answer their texts: not checked here"), "\(out)")
        (status, out) = try await run(healthy, publicURL: nil)
        #expect(status == 1 && out.contains("FAIL  ACTION2PHONE_PUBLIC_URL is not set"), "\(out)")
    }
}
