// SPDX-License-Identifier: Apache-2.0
import Foundation
import TwilioKit

/// The bot's fixed texts: the comrade voice, GSM-7 only (no curly quotes, no emoji), and each one says
/// what can be sent next. None tells a person to reply with an opt-out word (`RESET to go back`, never "to stop" or
/// "to cancel"): Twilio opts out a number that replies STOP, CANCEL, END or QUIT, whatever the bot meant.
enum Copy {
    static let redacted = "[redacted]"
    static let alreadySubscribed = "You are already subscribed, comrade."
    static let welcomeBack = "Welcome back to the collective, comrade! You will get texts again."
    static let mediaIgnored = "Comrade, the bot reads words only; pictures and files are ignored."
    static let emptyText = "Comrade, your message was empty."
    static let askFirstName = "Welcome, future comrade! Reply with your first name."
    static let askPasscode = askPasscodeBriefly + " Never reuse your bank password, comrade."
    static let askPasscodeBriefly = "Choose a passcode of 6 to 64 characters and reply with it."
    static let askPasscodeAgain = "Reply with the same passcode again to confirm."
    static let askLoginPasscode = "Reply with your passcode, comrade, or RESET to go back."
    static let askCurrentPasscode = "Reply with your current passcode, comrade, or RESET to keep it."
    /// After a wrong or impossible passcode, the question again.
    static let retryLoginPasscode = "Reply with your passcode, or RESET to go back. " + forgotPasscode
    static let forgotPasscode = "Forgot it? Ask an organiser to reset it."
    /// To someone who asked to opt out in words ("stop texting me", "please unsubscribe me").
    static let optOutAlone = "To opt out, reply STOP alone: with other words it does not count."
    static let stopAlone = "STOP alone opts out."
    static let retryCurrentPasscode = "Reply with your current passcode, or RESET to keep it."
    static let askNewPasscode = "Choose a new passcode of 6 to 64 characters and reply with it, or RESET to keep the old one."
    static let passcodesBusy =
        "The passcode office has a queue around the block, comrade: your passcode was not checked. Send the same text again in a minute."
    static let needAccount = "You need an account first, comrade. Reply JOIN to register."
    static let needLogin = "Please log in first, comrade: reply LOGIN."
    /// To a member whose text is no command: the number is the bot's, and replies to organisers' texts go nowhere.
    static let repliesUnread = "Organisers do not read replies here."
    static let confirmDelete = "This erases your profile and inbox forever. Reply YES to confirm, or RESET to keep them."

    /// The question a step is waiting on, for HELP and for repeating it.
    static func prompt(for step: Step) -> String {
        switch step {
        case .idle: "Reply HELP for commands."
        case .askedFirstName: "Reply with your first name."
        case .askedLastName: "Reply with your last name."
        case .askedEmail: "Reply with your email address."
        case .askedPasscode: askPasscode
        case .askedPasscodeAgain: askPasscodeAgain
        case .askedLoginPasscode: askLoginPasscode + " " + forgotPasscode
        case .askedCurrentPasscode: askCurrentPasscode
        case .askedNewPasscode: askNewPasscode
        case .askedNewPasscodeAgain: askPasscodeAgain
        case .confirmingDelete: "Reply YES to erase your data, or RESET to keep it."
        case .confirmingBroadcast: "Reply YES to send the broadcast, or RESET to drop it."
        }
    }

    /// `30 min`, `2 h`, `45 s`.
    static func duration(_ seconds: TimeInterval) -> String {
        let s = Int(seconds)
        if s % 3600 == 0 { return "\(s / 3600) h" }
        if s % 60 == 0 { return "\(s / 60) min" }
        return "\(s) s"
    }

    /// "comrade Ivan", or "comrade" alone when the name has a character outside GSM-7: in a greeting the name is
    /// decoration, and one such character ("Zoë") would make the whole reply UCS-2, twice the segments.
    static func comrade(_ name: String, capitalized: Bool = false) -> String {
        let word = capitalized ? "Comrade" : "comrade"
        return Segments.count(name).encoding == .gsm7 ? word + " " + name : word
    }

    /// `name` ending a sentence: its own full stop serves ("Smith Jr." gives "Smith Jr.", not "Smith Jr..").
    static func endingSentence(_ name: String) -> String {
        name.hasSuffix(".") ? name : name + "."
    }

    static func plural(_ n: Int, _ one: String, _ many: String? = nil) -> String {
        "\(n) \(n == 1 ? one : (many ?? one + "s"))"
    }
}
