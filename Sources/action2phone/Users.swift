// SPDX-License-Identifier: Apache-2.0
import Action2PhoneCore
import ArgumentParser
import Foundation
import TwilioKit

/// `action2phone users …`
struct Users: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Look people up and manage their role and consent.",
        subcommands: [
            List.self, Show.self, Find.self, Promote.self, Demote.self, ResetPasscode.self, Delete.self, OptOut.self, OptIn.self, Unsuppress.self,
        ]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List registered people.")
        @OptionGroup var store: StoreOptions
        @Flag(help: "Only people who opted out.") var optedOut = false
        @Flag(help: "Only admins.") var admins = false
        @Option(parsing: .unconditional, help: "At most this many.") var limit = 1000
        @Flag(help: "JSON: an array of users.") var json = false
        @Flag(help: "CSV with a header row.") var csv = false

        func validate() throws {
            if json && csv { throw ValidationError("--json and --csv exclude each other") }
            if limit < 1 { throw ValidationError("--limit must be at least 1") }
        }

        func run() async throws {
            let users = within(
                try await store.open().listUsers(UserFilter(optedOut: optedOut, admins: admins, limit: oneMore(limit))),
                limit: limit,
                note: "(the first \(limit) shown; there are more: --limit N shows more)"
            )
            try printUsers(users, json: json, csv: csv, none: "No one is registered\(optedOut || admins ? " who matches" : " yet").")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One person, by phone, email or id.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "Phone (E.164 or 415-555-0100), email or numeric id.") var who: String
        @Flag(help: "JSON: one object.") var json = false

        func run() async throws {
            let who = self.who.trimmingWhitespace()
            let key = who.contains("@") ? who.lowercased() : (PhoneNumber.normalize(who) ?? who)
            let database = try store.open()
            guard let user = try await database.user(key) else {
                // A number mistyped ("+1415555010", a digit short) is said to be no number, not no one's.
                if !who.contains("@") && !who.allSatisfy(\.isNumber) && PhoneNumber.normalize(who) == nil {
                    throw CLIError("'\(who)' is not a phone number, an email or an id: use E.164 (+14155550100) or a US form (415-555-0100)")
                }
                // A number no one is registered with may still have opted out (and never registered, or deleted
                // their account since): what the operator asking about it needs to know.
                var consent: NumberConsent? = nil
                if let phone = PhoneNumber.normalize(who) { consent = try await database.numberConsent(phone: phone) }
                let state = consent.map { c in
                    let now =
                        c.optedOut && c.suppressed
                        ? "is opted out and suppressed"
                        : c.optedOut ? "is opted out" : c.suppressed ? "is suppressed (cannot receive texts)" : "may be texted"
                    return "; the number \(now) (last change: \(c.lastAction) by \(c.lastSource), \(Output.date(c.lastChange)))"
                }
                throw CLIError("no user with phone, email or id '\(who)'" + (state ?? ""))
            }
            print(json ? try Output.json(user) : Output.userDetail(user))
        }
    }

    struct Find: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Search by name, email or phone.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "Part of a name, email or phone.") var text: String
        /// Longer than any name, email or number (SQLite refuses a pattern over 50,000 bytes, quoting its SQL).
        static let longestSearch = 200
        @Option(parsing: .unconditional, help: "At most this many people.") var limit = 50
        @Flag(help: "JSON: an array of users.") var json = false
        @Flag(help: "CSV with a header row.") var csv = false

        func validate() throws {
            if json && csv { throw ValidationError("--json and --csv exclude each other") }
            if limit < 1 { throw ValidationError("--limit must be at least 1") }
            if text.trimmingWhitespace().isEmpty { throw ValidationError("give some text to search for (users list shows everyone)") }
            // (Counted in code points: one character with thousands of accents on it is one Character.)
            if text.unicodeScalars.count > Self.longestSearch {
                throw ValidationError("the text to search for is \(text.unicodeScalars.count) characters long; at most \(Self.longestSearch)")
            }
        }

        func run() async throws {
            // (White space around it, as a pasted name or email carries, is not searched for.)
            let text = self.text.trimmingWhitespace()
            let users = within(
                try await store.open().findUsers(text, limit: oneMore(limit)),
                limit: limit,
                note: "(the first \(limit) shown; more match: --limit N shows more)"
            )
            try printUsers(users, json: json, csv: csv, none: "No one matches '\(text)'.")
        }
    }

    struct Promote: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Grant the admin role.")
        @OptionGroup var store: StoreOptions
        @Argument var phone: String
        func run() async throws { try await setRole(store, phone, .admin) }
    }

    struct Demote: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove the admin role.")
        @OptionGroup var store: StoreOptions
        @Argument var phone: String
        func run() async throws { try await setRole(store, phone, .user) }
    }

    struct ResetPasscode: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reset-passcode",
            abstract: "Give a person who forgot their passcode a new one, printed once; unlocks and logs the account out.",
            discussion: """
                Tell the passcode to the person yourself, by voice or in person: it is stored only hashed, and sending \
                it through the bot would keep it in their inbox and the outbox. They log in with LOGIN <passcode>, \
                typed exactly, and can then text PASSCODE to choose their own.
                """
        )
        @OptionGroup var store: StoreOptions
        @Argument(help: "Phone (E.164 or 415-555-0100) or email, as users show takes them.") var who: String
        func run() async throws {
            let database = try store.open()
            let who = self.who.trimmingWhitespace()
            // By email too: a person who forgot their passcode may well be known to the organiser by it.
            let byEmail = who.contains("@")
            let key = byEmail ? who.lowercased() : try phoneArgument(who)
            guard let e164 = try await database.user(key)?.phone else {
                throw CLIError(byEmail ? "no user with email \(who)" : "no user with phone \(key)")
            }
            let config = try store.config()
            if let warning = config.weakHashingWarning { printError("warning: \(warning), a weak hash") }
            let passcode = newPasscode()
            let hash = await PasscodeHasher(iterations: config.passcodeIterations).hash(passcode)
            guard try await database.resetPasscode(phone: e164, to: hash) else { throw CLIError("no user with phone \(e164)") }
            print("New passcode for \(e164): \(passcode)")
            print(
                "The account is unlocked and logged out. Tell the passcode to the person yourself; they reply LOGIN \(passcode), typed exactly, then PASSCODE to choose their own."
            )
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Erase a person, as their DELETE command: profile, inbox and login go; the opt-out record stays."
        )
        @OptionGroup var store: StoreOptions
        @Argument var phone: String
        func run() async throws {
            let e164 = try phoneArgument(phone)
            let opened = try store.open()
            let person = try await opened.user(e164)
            var unfinished: SQLiteStore.DeletedNotYetErased? = nil
            let deleted: Bool
            do {
                deleted = try await opened.deleteUser(phone: e164)
            } catch let error as SQLiteStore.DeletedNotYetErased {
                (deleted, unfinished) = (true, error)
            }
            guard deleted, let person else { throw CLIError("no user with phone \(e164)") }
            let consent = try await opened.numberConsent(phone: e164)
            // (Not the name: it was just erased, and this line may go to a log.)
            print("Deleted user \(person.id) (\(e164))" + (consent == nil ? "." : "; the number's consent record is kept."))
            if person.role == .admin, try await opened.listUsers(UserFilter(admins: true, limit: 1)).isEmpty {
                printError(Users.noAdminLeft)
            }
            if let unfinished { throw CLIError("\(unfinished)") }
        }
    }

    struct OptOut: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "opt-out",
            abstract: "Opt a number out on the person's word (consent log source: operator)."
        )
        @OptionGroup var store: StoreOptions
        @Argument var phone: String
        @Option(help: "Why, for the consent log.") var note = "opted out by an operator"
        func run() async throws {
            let e164 = try phoneArgument(phone)
            let opened = try store.open()
            try await opened.setConsent(phone: e164, optedOut: true, note: note)
            print("\(e164) is opted out: nothing will be texted to it until it opts back in.")
            try await noteWhenNobodyHas(e164, opened)
        }
    }

    struct OptIn: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "opt-in",
            abstract: "Opt a number back in on the person's word (consent log source: operator)."
        )
        @OptionGroup var store: StoreOptions
        @Argument var phone: String
        @Option(help: "Why, for the consent log.") var note = "opted in by an operator"
        func run() async throws {
            let e164 = try phoneArgument(phone)
            let opened = try store.open()
            try await opened.setConsent(phone: e164, optedOut: false, note: note)
            print("\(e164) is opted in. (If the person texted STOP to Twilio, only their START clears Twilio's own block.)")
            try await noteWhenNobodyHas(e164, opened)
        }
    }

    static let noAdminLeft = "note: no admin is left: no one can SEND, BROADCAST, FIND or count USERS by text until someone is promoted"

    /// A consent change is recorded for any number (one that never registered may opt out too), but a typo in it would
    /// otherwise pass for the change the person asked for.
    static func noteWhenNobodyHas(_ e164: String, _ store: SQLiteStore) async throws {
        if try await store.user(e164) == nil {
            printError("note: no one is registered with \(e164): check the number if you meant a member's")
        }
    }

    struct Unsuppress: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Clear a suppression (Twilio said the number cannot receive texts).")
        @OptionGroup var store: StoreOptions
        @Argument var phone: String
        func run() async throws {
            let e164 = try phoneArgument(phone)
            guard try await store.open().unsuppress(phone: e164) else { throw CLIError("\(e164) is not suppressed") }
            print("\(e164) can be texted again: broadcasts and direct messages.")
        }
    }
}

private func setRole(_ store: StoreOptions, _ phone: String, _ role: Role) async throws {
    let e164 = try phoneArgument(phone)
    let database = try store.open()
    let named = role == .admin ? "an admin" : "a user"
    guard let before = try await database.user(e164) else { throw CLIError("no user with phone \(e164)") }
    if before.role == role {
        print("\(e164) is already \(named): nothing changed.")
    } else {
        guard try await database.setRole(phone: e164, role) else { throw CLIError("no user with phone \(e164)") }
        print("\(e164) is now \(named).")
        if role == .user, try await database.listUsers(UserFilter(admins: true, limit: 1)).isEmpty {
            printError(Users.noAdminLeft)
        }
    }
    // A number in ACTION2PHONE_ADMIN_PHONES registers as an admin: after a DELETE and a new JOIN the role would be back.
    let listed = (ProcessInfo.processInfo.environment["ACTION2PHONE_ADMIN_PHONES"] ?? "").split(separator: ",").compactMap {
        PhoneNumber.normalize($0.trimmingWhitespace())
    }
    if role == .user && listed.contains(e164) {
        printError(
            "note: \(e164) is in ACTION2PHONE_ADMIN_PHONES: registered again (after a DELETE) it would be an admin again; remove it there too, and restart serve"
        )
    }
}

/// A digit, then eleven letters and digits, in three groups (`7kmq-4xp2-cw9h`, about 57 bits): no 0/o, 1/l or i
/// to misread when written down, and a digit first so that a phone's keyboard does not capitalise it when it is
/// texted alone.
func newPasscode() -> String {
    func draw(_ count: Int, from alphabet: [Character]) -> [Character] {
        var drawn: [Character] = []
        while drawn.count < count {
            // Bytes past the last whole multiple of the alphabet are dropped: every character equally likely.
            for byte in Crypto.randomBytes(16) where Int(byte) < 256 - 256 % alphabet.count && drawn.count < count {
                drawn.append(alphabet[Int(byte) % alphabet.count])
            }
        }
        return drawn
    }
    let characters = draw(1, from: Array("23456789")) + draw(11, from: Array("abcdefghjkmnpqrstuvwxyz23456789"))
    return [characters[0..<4], characters[4..<8], characters[8..<12]].map { String($0) }.joined(separator: "-")
}

/// A list of users as JSON, CSV or a table (`none` when there are none).
private func printUsers(_ users: [UserRecord], json: Bool, csv: Bool, none: String) throws {
    if json {
        print(try Output.json(users))
    } else if csv {
        print(Output.csv(Output.userColumns, users.map { Output.userRow($0, csv: true) }))
    } else {
        print(users.isEmpty ? none : Output.table(Output.userColumns, users.map { Output.userRow($0) }))
    }
}
