// SPDX-License-Identifier: Apache-2.0
import Action2PhoneCore
import ArgumentParser
import Foundation
import TwilioKit

/// `action2phone send PHONE|EMAIL TEXT`
struct Send: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Message one person: into their inbox, and texted through the outbox (sent by a running serve).",
        // --help only: with -h, a text such as "-hello" printed the help and exited 0, nothing sent.
        helpNames: [.long]
    )
    @OptionGroup var store: StoreOptions
    @Argument(help: "The person's phone (E.164 or 415-555-0100), or email, as the SEND command takes.") var recipient: String
    @Argument(help: "The text (quote it; one starting with - goes after --).") var text: String

    func run() async throws {
        let body = Inbound.composed(text.trimmingWhitespace())
        guard !body.isEmpty else { throw CLIError("the text is empty") }
        try checkLength(body)
        let database = try store.open()
        let e164: String
        if recipient.contains("@") {
            // (In brackets or quotes too, as a mail program writes it, or with punctuation after it, as SEND takes it:
            // "<ivan@example.org>", "ivan@example.org,".)
            let email = recipient.trimmingCharacters(in: CharacterSet(charactersIn: "<>()[]{}\"' .,;:")).lowercased()
            guard let user = try await database.user(email) else { throw CLIError("no user with email \(email)") }
            e164 = user.phone
        } else {
            e164 = try phoneArgument(recipient)
        }
        guard let texted = try await database.operatorSend(phone: e164, body: body) else { throw CLIError("no user with phone \(e164)") }
        let consent = texted ? nil : try await database.numberConsent(phone: e164)
        print(
            texted
                ? "Stored in \(e164)'s inbox and queued to be texted."
                : consent?.optedOut == true
                    ? "Stored in \(e164)'s inbox; not texted: the number opted out (START from the phone, or users opt-in, lifts it)."
                    : "Stored in \(e164)'s inbox; not texted: Twilio said the number cannot receive texts (users unsuppress clears it)."
        )
    }
}

/// `action2phone broadcast TEXT [--yes]`
struct Broadcast: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Message everyone: into every inbox, and texted to each reachable person through the outbox.",
        helpNames: [.long]
    )
    @OptionGroup var store: StoreOptions
    @Argument(help: "The text (quote it; one starting with - goes after --).") var text: String
    @Flag(help: "Send without asking.") var yes = false

    func run() async throws {
        let body = Inbound.composed(text.trimmingWhitespace())
        guard !body.isEmpty else { throw CLIError("the text is empty") }
        try checkLength(body)
        let db = try store.open()
        let audience = try await db.broadcastAudience()
        let segments = Segments.count(body)
        var summary =
            "Broadcast to \(audience.registered) registered \(audience.registered == 1 ? "person" : "people"): \(audience.textable) to be texted, \(audience.registered - audience.textable) opted out or suppressed.\n"
        summary += "\(segments.encoding.rawValue), \(segments.segments) segment(s) per text"
        if !segments.nonGSMCharacters.isEmpty {
            let named = segments.nonGSMCharacters.map { ch in "'\(ch)' U+" + String(Segments.nonGSMScalar(in: ch).value, radix: 16, uppercase: true) }
            summary += " (UCS-2 because of \(named.joined(separator: ", ")))"
        }
        print(summary + ".")
        if !yes {
            guard isatty(0) == 1 else { throw CLIError("not sent: pass --yes to broadcast without a prompt") }
            print("Type YES to send: ", terminator: "")
            // Standard output is buffered when it is a pipe (| tee): the question must be seen before the wait.
            fflush(nil)
            guard readLine()?.trimmingWhitespace().uppercased() == "YES" else { throw CLIError("not sent") }
        }
        let result = try await db.operatorBroadcast(body: body)
        print(
            "Stored in \(result.stored) \(result.stored == 1 ? "inbox" : "inboxes"); \(result.queued) \(result.queued == 1 ? "text" : "texts") queued."
        )
    }
}

/// `action2phone outbox list|retry`
struct Outbox: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Inspect and retry outbound texts.", subcommands: [List.self, Retry.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Outbound texts, newest first.")
        @OptionGroup var store: StoreOptions
        @Option(help: "Only this status: \(OutboxStatus.allCases.map(\.rawValue).joined(separator: ", ")).") var status: String?
        @Option(parsing: .unconditional, help: "At most this many.") var limit = 100
        @Flag(help: "JSON: an array of rows.") var json = false
        @Flag(help: "CSV with a header row.") var csv = false

        func validate() throws {
            if let status, OutboxStatus(rawValue: status.lowercased()) == nil {
                throw ValidationError("--status must be one of \(OutboxStatus.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if json && csv { throw ValidationError("--json and --csv exclude each other") }
            if limit < 1 { throw ValidationError("--limit must be at least 1") }
        }

        func run() async throws {
            let rows = within(
                try await store.open().outboxMessages(status: status.flatMap { OutboxStatus(rawValue: $0.lowercased()) }, limit: oneMore(limit)),
                limit: limit,
                note: "(the newest \(limit) shown; there are more: --limit N shows more)"
            )
            if json {
                print(try Output.json(rows.map(OutboxJSON.init)))
            } else if csv {
                print(Output.csv(Output.outboxColumns, rows.map { Output.outboxRow($0, full: true) }))
            } else if rows.isEmpty {
                print("The outbox is empty\(status.map { " of \($0) texts" } ?? "").")
            } else {
                print(Output.table(Output.outboxColumns, rows.map { Output.outboxRow($0) }))
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Queue texts again: uncertain ones are looked up at Twilio before any resend; failed and undelivered ones are resent."
        )
        @OptionGroup var store: StoreOptions
        @Argument(help: "Outbox ids.") var ids: [Int64] = []
        @Flag(help: Self.every("uncertain")) var uncertain = false
        @Flag(help: Self.every("failed")) var failed = false
        @Flag(help: Self.every("undelivered")) var undelivered = false
        @Flag(
            help:
                "With ids: send them again without looking them up at Twilio first, for an uncertain text the lookup cannot settle (more than 500 messages to the number since it). The person may get it twice."
        )
        var withoutLookup = false

        /// A flag's help: which rows it takes (`SQLiteStore.retryOutbox`'s skips).
        static func every(_ status: String) -> ArgumentHelp {
            "Every \(status) text, but those to a number now opted out or suppressed, those not sent because it had opted out, and those Twilio refused for good (21211, 21612)."
        }

        func validate() throws {
            let choices = (ids.isEmpty ? 0 : 1) + (uncertain ? 1 : 0) + (failed ? 1 : 0) + (undelivered ? 1 : 0)
            if choices != 1 { throw ValidationError("give outbox ids, or one of --uncertain, --failed, --undelivered (not both ids and a flag)") }
            if withoutLookup && ids.isEmpty { throw ValidationError("--without-lookup takes the ids of the texts to send: name each one") }
        }

        func run() async throws {
            let status: OutboxStatus? = uncertain ? .uncertain : failed ? .failed : undelivered ? .undelivered : nil
            // An id given twice is one row: the second would be refused as already queued, after the first worked.
            var seen = Set<Int64>()
            let ids = self.ids.filter { seen.insert($0).inserted }
            let result = try await store.open().retryOutbox(ids: ids, status: status, lookUp: !withoutLookup)
            print("Queued again: \(result.queued.isEmpty ? "none" : result.queued.map(String.init).joined(separator: ", ")).")
            // Rows named one by one are refused (exit 1); of "every uncertain/failed row", the ones that cannot go are skipped.
            for refusal in result.refused { printError("\(ids.isEmpty ? "skipped" : "refused"): \(refusal.reason)") }
            if !result.refused.isEmpty && !ids.isEmpty { throw ExitCode.failure }
        }
    }
}

/// Twilio's limit, counted as Twilio counts it (UTF-16 units: an emoji is 2).
func checkLength(_ body: String) throws {
    guard body.utf16.count <= TwiML.maxMessageLength else {
        throw CLIError("the text is \(body.utf16.count) characters long as Twilio counts them (an emoji counts 2); the most is 1600")
    }
}
