// SPDX-License-Identifier: Apache-2.0
import Action2PhoneCore
import ArgumentParser
import Foundation
import TwilioKit

/// `action2phone chat [--from PHONE] [--url URL]`
struct Chat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Be a phone: type texts, read the bot's replies (standard input, so it works piped too).",
        discussion:
            "In-process on --db by default; with --url, over HTTP to a running server, signed like Twilio. Type /quit or end the input to leave."
    )

    @OptionGroup var store: StoreOptions
    @Option(help: "The phone you text from.") var from = "+14155550100"
    @Option(help: "The organisation's number you text to.") var to = "+15005550006"
    @Option(help: "A running server's base or /sms URL.") var url: String?
    @Option(help: "With --url: the URL to sign for, as the server's ACTION2PHONE_PUBLIC_URL (env: ACTION2PHONE_PUBLIC_URL).") var publicURL: String?

    func run() async throws {
        // A sender that is no phone number (a short code, an alphanumeric id) is kept as typed, as Twilio sends it; one
        // that looks like a number but is not one (`+1415555010`, a digit short) is a mistake.
        let looksLikeNumber = from.hasPrefix("+") || (!from.isEmpty && from.allSatisfy { $0.isNumber || " -.()".contains($0) } && from.count > 6)
        guard !from.trimmingWhitespace().isEmpty, PhoneNumber.normalize(from) != nil || !looksLikeNumber else {
            throw CLIError("--from '\(from)' is not a phone number: use E.164 (+14155550100) or a US form (415-555-0100)")
        }
        let sender = PhoneNumber.normalize(from) ?? from
        var phone: any SimulatedPhone
        let config = try store.config()
        // The account the texts come from: a server with Twilio credentials refuses any other (403).
        let accountSid = config.accountSid ?? WebhookFields.localAccountSid
        if let url {
            _ = try store.open()  // every subcommand opens and migrates --db
            phone = try HTTPPhone(url: url, publicURL: publicURL ?? config.publicURL, token: config.authToken)
        } else {
            phone = InProcessPhone(config: config, store: try store.open(), virtualClock: false)
        }
        let interactive = isatty(0) == 1
        if interactive {
            print("Texting \(to) as \(sender)\(url.map { " via \($0)" } ?? " (in-process, \(store.path))"). Try HELP; /quit to leave.")
        }
        var refused = 0
        while true {
            if interactive { print("you > ", terminator: "") }
            guard let line = readLine(strippingNewline: true) else { break }
            if line.trimmingWhitespace() == "/quit" { break }
            let (status, messages) = try await phone.text(WebhookFields.inboundSMS(from: sender, to: to, body: line, accountSid: accountSid))
            if !interactive { print("you > " + line) }
            if status != 200 {
                refused += 1
                print("     [HTTP \(status)]")
            }
            if messages.isEmpty { print("bot > (no reply)") }
            for m in messages { print("bot > " + m.replacing("\n", with: "\n      ")) }
        }
        // A script piping texts in learns that some were not accepted.
        if refused > 0 {
            printError("\(refused) text(s) not accepted by the server (see [HTTP …] above)")
            throw ExitCode.failure
        }
    }
}
