import Foundation
import InMemoryLogging
import Logging
import Testing
import TwilioKit

@testable import Action2PhoneCore

@Suite("Conversation engine: transitions")
struct ConversationTransitionTests {
    struct Row: Sendable, CustomTestStringConvertible {
        var situation: Situation
        var text: String
        var evidence: PasscodeEvidence? = nil
        var step: Step
        var loggedIn: Bool
        var effects: [Effect] = []
        var reply: String
        var testDescription: String { "\(situation.name) + \(text)" }
    }

    static let s = Dictionary(uniqueKeysWithValues: situations.map { ($0.name, $0) })

    static let rows: [Row] = [
        .init(situation: s["unregistered"]!, text: "join", step: .askedFirstName, loggedIn: false, reply: "first name"),
        .init(situation: s["registered, logged out"]!, text: "JOIN", step: .idle, loggedIn: false, reply: "already registered"),
        .init(situation: s["asked first name"]!, text: "Olga", step: .askedLastName(first: "Olga"), loggedIn: false, reply: "last name"),
        .init(situation: s["asked first name"]!, text: "0lga!", step: .askedFirstName, loggedIn: false, reply: "letters only"),
        .init(
            situation: s["asked first name"]!,
            text: "login",
            step: .askedFirstName,
            loggedIn: false,
            reply: "LOGIN is a command, comrade, and this number has no account yet. Reply with your first name to register, or RESET to go back."
        ),
        // JOIN's aliases sent again are no names either (another alias may be one: Me is not refused)
        .init(
            situation: s["asked first name"]!,
            text: "Register",
            step: .askedFirstName,
            loggedIn: false,
            reply: "REGISTER is a command, comrade, and this number has no account yet. Reply with your first name"
        ),
        .init(
            situation: s["asked last name"]!,
            text: "signup",
            step: .askedLastName(first: "Olga"),
            loggedIn: false,
            reply: "SIGNUP is a command, comrade."
        ),
        .init(situation: s["asked first name"]!, text: "Me", step: .askedLastName(first: "Me"), loggedIn: false, reply: "last name"),
        // A name put in a sentence is taken out of it, as an email is ("my email is …")
        .init(
            situation: s["asked first name"]!,
            text: "My name is Sam",
            step: .askedLastName(first: "Sam"),
            loggedIn: false,
            reply: "Thank you, Sam."
        ),
        .init(
            situation: s["asked first name"]!,
            text: "I\u{2019}m Lena",
            step: .askedLastName(first: "Lena"),
            loggedIn: false,
            reply: "Thank you, Lena."
        ),
        .init(
            situation: s["asked last name"]!,
            text: "my last name is Jones",
            step: .askedEmail(first: "Olga", last: "Jones"),
            loggedIn: false,
            reply: "Good, comrade Olga Jones."
        ),
        // (but a name that only starts like one is the name)
        .init(situation: s["asked first name"]!, text: "Mynameis", step: .askedLastName(first: "Mynameis"), loggedIn: false, reply: "last name"),
        // An admin command is a word like any other to someone registering; a full stop a phone adds is dropped, an
        // initial's is kept; an é typed as e and an accent is the é
        .init(situation: s["asked first name"]!, text: "Find", step: .askedLastName(first: "Find"), loggedIn: false, reply: "last name"),
        .init(situation: s["asked first name"]!, text: "Peter.", step: .askedLastName(first: "Peter"), loggedIn: false, reply: "last name"),
        .init(situation: s["asked first name"]!, text: "J.", step: .askedLastName(first: "J."), loggedIn: false, reply: "last name"),
        .init(situation: s["asked first name"]!, text: "Rene\u{301}e", step: .askedLastName(first: "Renée"), loggedIn: false, reply: "last name"),
        .init(
            situation: s["asked last name"]!,
            text: "Mary Smith.",
            step: .askedEmail(first: "Olga", last: "Mary Smith"),
            loggedIn: false,
            reply: "email"
        ),
        // A command at the email question is no email, and the way out is said
        .init(
            situation: s["asked email"]!,
            text: "login",
            step: .askedEmail(first: "Olga", last: "Ivanova"),
            loggedIn: false,
            reply: "That is not an email address, comrade (like ivan@example.org). Reply with your email, or RESET to go back."
        ),
        .init(
            situation: s["asked email"]!,
            text: "rene\u{301}e@example.fr",
            step: .askedPasscode(first: "Olga", last: "Ivanova", email: "renée@example.fr"),
            loggedIn: false,
            reply: "6 to 64"
        ),
        .init(
            situation: s["asked email"]!,
            text: "bob@example.c",
            step: .askedEmail(first: "Olga", last: "Ivanova"),
            loggedIn: false,
            reply: "not an email"
        ),
        .init(
            situation: s["asked email"]!,
            text: "bob@example.123",
            step: .askedEmail(first: "Olga", last: "Ivanova"),
            loggedIn: false,
            reply: "not an email"
        ),
        .init(situation: s["asked last name"]!, text: "Ivanova", step: .askedEmail(first: "Olga", last: "Ivanova"), loggedIn: false, reply: "email"),
        .init(
            situation: s["asked email"]!,
            text: "Olga@Example.ORG",
            step: .askedPasscode(first: "Olga", last: "Ivanova", email: "olga@example.org"),
            loggedIn: false,
            reply: "6 to 64"
        ),
        // The address as people write it in a sentence, or with a full stop or brackets around it
        .init(
            situation: s["asked email"]!,
            text: "My email is <Olga@Example.org>.",
            step: .askedPasscode(first: "Olga", last: "Ivanova", email: "olga@example.org"),
            loggedIn: false,
            reply: "6 to 64"
        ),
        .init(
            situation: s["asked email"]!,
            text: "olga@example.org.",
            step: .askedPasscode(first: "Olga", last: "Ivanova", email: "olga@example.org"),
            loggedIn: false,
            reply: "6 to 64"
        ),
        // The address taken from the text is read back, so a wrong one is seen before the passcode is chosen
        .init(
            situation: s["asked email"]!,
            text: "olga ivanova@example.org",
            step: .askedPasscode(first: "Olga", last: "Ivanova", email: "ivanova@example.org"),
            loggedIn: false,
            reply: "Email ivanova@example.org noted. Choose a passcode"
        ),
        .init(
            situation: s["asked email"]!,
            text: "olga@example.org or olga@example.com",
            step: .askedEmail(first: "Olga", last: "Ivanova"),
            loggedIn: false,
            reply: "not an email address"
        ),
        .init(
            situation: s["asked email"]!,
            text: "VERA@example.org",
            step: .askedEmail(first: "Olga", last: "Ivanova"),
            loggedIn: false,
            reply: "already registered"
        ),
        .init(
            situation: s["asked passcode"]!,
            text: "right-passcode",
            evidence: .hashed(pendingHash),
            step: .askedPasscodeAgain(first: "Olga", last: "Ivanova", email: "olga@example.org", pending: pendingHash),
            loggedIn: false,
            reply: "again"
        ),
        .init(
            situation: s["asked passcode"]!,
            text: "short",
            step: .askedPasscode(first: "Olga", last: "Ivanova", email: "olga@example.org"),
            loggedIn: false,
            reply: "6 to 64"
        ),
        .init(
            situation: s["asked passcode again"]!,
            text: "right-passcode",
            evidence: .verified(true, against: pendingHash),
            step: .idle,
            loggedIn: true,
            effects: [.register(Registration(firstName: "Olga", lastName: "Ivanova", email: "olga@example.org", passcode: pendingHash, role: .user))],
            reply: "registered and logged in"
        ),
        .init(
            situation: s["asked passcode again"]!,
            text: "other-passcode",
            evidence: .verified(false, against: pendingHash),
            step: .askedPasscode(first: "Olga", last: "Ivanova", email: "olga@example.org"),
            loggedIn: false,
            reply: "differ"
        ),
        .init(
            situation: s["asked login passcode"]!,
            text: "right-passcode",
            evidence: .verified(true, against: storedHash),
            step: .idle,
            loggedIn: true,
            effects: [.loginSucceeded(userId: 1)],
            reply: "Welcome back"
        ),
        .init(
            situation: s["asked login passcode"]!,
            text: "nope-nope",
            evidence: .verified(false, against: storedHash),
            step: .askedLoginPasscode,
            loggedIn: false,
            effects: [.loginFailed(userId: 1, recentFailures: [t0], lockedUntil: nil)],
            reply: "1 of 5"
        ),
        // PASSCODE: the current passcode, then the new one twice.
        .init(situation: s["logged in"]!, text: "passcode", step: .askedCurrentPasscode, loggedIn: true, reply: "current passcode"),
        .init(situation: s["logged in"]!, text: "PASSWORD", step: .askedCurrentPasscode, loggedIn: true, reply: "current passcode"),
        .init(situation: s["registered, logged out"]!, text: "PASSCODE", step: .idle, loggedIn: false, reply: "log in first"),
        .init(situation: s["unregistered"]!, text: "PASSCODE", step: .idle, loggedIn: false, reply: "JOIN"),
        .init(
            situation: s["asked current passcode"]!,
            text: "right-passcode",
            evidence: .verified(true, against: storedHash),
            step: .askedNewPasscode,
            loggedIn: true,
            effects: [.loginSucceeded(userId: 1)],
            reply: "new passcode"
        ),
        .init(
            situation: s["asked current passcode"]!,
            text: "nope-nope",
            evidence: .verified(false, against: storedHash),
            step: .askedCurrentPasscode,
            loggedIn: true,
            effects: [.loginFailed(userId: 1, recentFailures: [t0], lockedUntil: nil)],
            reply: "Wrong passcode (1 of 5 tries). Reply with your current passcode, or RESET to keep it."
        ),
        .init(
            situation: s["asked new passcode"]!,
            text: "fresh-passcode",
            evidence: .hashed(pendingHash),
            step: .askedNewPasscodeAgain(pending: pendingHash),
            loggedIn: true,
            reply: "same passcode again"
        ),
        // The current passcode again is no change (after an organiser's reset, they would still know it): asked again
        .init(
            situation: s["asked new passcode"]!,
            text: "right-passcode",
            evidence: .reused(storedHash),
            step: .askedNewPasscode,
            loggedIn: true,
            reply: "That is the passcode you have now, comrade. Reply with a different one, or RESET to keep it."
        ),
        .init(situation: s["asked new passcode"]!, text: "short", step: .askedNewPasscode, loggedIn: true, reply: "6 to 64"),
        .init(situation: s["asked new passcode"]!, text: "YES i choose this", step: .askedNewPasscode, loggedIn: true, reply: "command word"),
        .init(
            situation: s["asked new passcode again"]!,
            text: "fresh-passcode",
            evidence: .verified(true, against: pendingHash),
            step: .idle,
            loggedIn: true,
            effects: [.changePasscode(userId: 1, passcode: pendingHash)],
            reply: "Your passcode is changed"
        ),
        .init(
            situation: s["asked new passcode again"]!,
            text: "other-passcode",
            evidence: .verified(false, against: pendingHash),
            step: .askedNewPasscode,
            loggedIn: true,
            reply: "The passcodes differ, comrade. Choose a new passcode"
        ),
        .init(
            situation: s["asked new passcode"]!,
            text: "RESET",
            step: .idle,
            loggedIn: true,
            reply: "Done: the passcode change is abandoned and your passcode is unchanged, comrade."
        ),
        // A text that cannot be a passcode (6 to 64 characters) is not checked, nor counted as a wrong try
        .init(situation: s["asked current passcode"]!, text: "yes", step: .askedCurrentPasscode, loggedIn: true, reply: "6 to 64 characters"),
        .init(situation: s["asked login passcode"]!, text: "ok", step: .askedLoginPasscode, loggedIn: false, reply: "so that was not it"),
        .init(situation: s["registered, logged out"]!, text: "LOGIN abc", step: .askedLoginPasscode, loggedIn: false, reply: "so that was not it"),
        // HELP with more words is an answer there: a passcode from before command words were refused may be one
        .init(
            situation: s["asked login passcode"]!,
            text: "help me 1917",
            evidence: .verified(true, against: storedHash),
            step: .idle,
            loggedIn: true,
            effects: [.loginSucceeded(userId: 1)],
            reply: "Welcome back"
        ),
        // A confirmation that cannot be a passcode differs, unchecked
        .init(situation: s["asked new passcode again"]!, text: "ok", step: .askedNewPasscode, loggedIn: true, reply: "The passcodes differ"),
        .init(
            situation: s["asked new passcode again"]!,
            text: "YES that one",
            step: .askedNewPasscodeAgain(pending: pendingHash),
            loggedIn: true,
            reply: "That is a command, comrade, not your passcode."
        ),
        // HELP and RESET with more words work as anywhere while a new passcode is asked (none can start with them)
        .init(situation: s["asked new passcode"]!, text: "reset please", step: .idle, loggedIn: true, reply: "passcode change is abandoned"),
        .init(
            situation: s["asked new passcode again"]!,
            text: "help me",
            step: .askedNewPasscodeAgain(pending: pendingHash),
            loggedIn: true,
            reply: "passcode change"
        ),
        .init(
            situation: s["asked passcode again"]!,
            text: "ok",
            step: .askedPasscode(first: "Olga", last: "Ivanova", email: "olga@example.org"),
            loggedIn: false,
            reply: "The passcodes differ"
        ),
        // START at a question: already subscribed, and the question again
        .init(
            situation: s["asked last name"]!,
            text: "START",
            step: .askedLastName(first: "Olga"),
            loggedIn: false,
            reply: "You are already subscribed, comrade. Reply with your last name."
        ),
        // A command at the login question runs instead of counting as a wrong passcode
        .init(situation: s["asked login passcode"]!, text: "MESSAGES", step: .idle, loggedIn: false, reply: "Please log in first"),
        .init(situation: s["asked login passcode"]!, text: "JOIN", step: .idle, loggedIn: false, reply: "already registered"),
        // Registration: a command alone is not a last name (More is), nor a passcode's confirmation
        .init(
            situation: s["asked last name"]!,
            text: "LOGIN",
            step: .askedLastName(first: "Olga"),
            loggedIn: false,
            reply: "LOGIN is a command, comrade. You are registering: reply with your last name, or RESET to go back."
        ),
        .init(situation: s["asked last name"]!, text: "More", step: .askedEmail(first: "Olga", last: "More"), loggedIn: false, reply: "email"),
        // A request where a name is asked is not taken for the name
        .init(
            situation: s["asked first name"]!,
            text: "stop please",
            step: .askedFirstName,
            loggedIn: false,
            reply:
                "That is not a name, comrade. To opt out, reply STOP alone: with other words it does not count. Reply with your first name to register, or RESET to go back."
        ),
        .init(situation: s["asked first name"]!, text: "please stop texting me", step: .askedFirstName, loggedIn: false, reply: "reply STOP alone"),
        .init(
            situation: s["asked last name"]!,
            text: "Help me",
            step: .askedLastName(first: "Olga"),
            loggedIn: false,
            reply: "HELP alone says where you are"
        ),
        .init(
            situation: s["asked last name"]!,
            text: "Unsubscribe me",
            step: .askedLastName(first: "Olga"),
            loggedIn: false,
            reply: "reply STOP alone"
        ),
        .init(
            situation: s["asked last name"]!,
            text: "Reset please",
            step: .askedLastName(first: "Olga"),
            loggedIn: false,
            reply: "RESET alone leaves registration"
        ),
        .init(
            situation: s["asked last name"]!,
            text: "Endicott",
            step: .askedEmail(first: "Olga", last: "Endicott"),
            loggedIn: false,
            reply: "email"
        ),
        .init(
            situation: s["asked passcode again"]!,
            text: "LOGIN",
            step: .askedPasscodeAgain(first: "Olga", last: "Ivanova", email: "olga@example.org", pending: pendingHash),
            loggedIn: false,
            reply: "That is a command, comrade, not your passcode."
        ),
        // A command in a passcode change cancels it and runs, and is never a wrong try
        .init(
            situation: s["asked current passcode"]!,
            text: "LOGOUT",
            step: .idle,
            loggedIn: false,
            reply: "Passcode change cancelled: your passcode is unchanged. You are logged out."
        ),
        .init(
            situation: s["asked current passcode"]!,
            text: "LOGIN right-passcode",
            step: .idle,
            loggedIn: true,
            reply: "Passcode change cancelled: your passcode is unchanged. You are already logged in"
        ),
        .init(situation: s["asked new passcode"]!, text: "MESSAGES", step: .idle, loggedIn: true, reply: "Passcode change cancelled"),
        .init(situation: s["asked new passcode again"]!, text: "LOGOUT", step: .idle, loggedIn: false, reply: "Passcode change cancelled"),
        // but at the current passcode, PASSCODE may begin an old passcode: it is checked as one
        .init(
            situation: s["asked current passcode"]!,
            text: "Passcode 1917",
            evidence: .verified(false, against: storedHash),
            step: .askedCurrentPasscode,
            loggedIn: true,
            effects: [.loginFailed(userId: 1, recentFailures: [t0], lockedUntil: nil)],
            reply: "Wrong passcode (1 of 5 tries)"
        ),
        // LOGIN again at the passcode question is the command, with its passcode inline, never a wrong try.
        .init(
            situation: s["asked login passcode"]!,
            text: "LOGIN right-passcode",
            evidence: .verified(true, against: storedHash),
            step: .idle,
            loggedIn: true,
            effects: [.loginSucceeded(userId: 1)],
            reply: "Welcome back"
        ),
        .init(
            situation: s["asked login passcode"]!,
            text: "login nope-nope",
            evidence: .verified(false, against: storedHash),
            step: .askedLoginPasscode,
            loggedIn: false,
            effects: [.loginFailed(userId: 1, recentFailures: [t0], lockedUntil: nil)],
            reply: "1 of 5"
        ),
        .init(situation: s["asked login passcode"]!, text: "LOGIN", step: .askedLoginPasscode, loggedIn: false, reply: "passcode"),
        .init(
            situation: s["asked login passcode"]!,
            text: "stale-evidence",
            evidence: .verified(true, against: pendingHash),
            step: .askedLoginPasscode,
            loggedIn: false,
            reply: "passcode"
        ),
        .init(situation: s["registered, logged out"]!, text: "LOGIN", step: .askedLoginPasscode, loggedIn: false, reply: "passcode"),
        // No hashing slot came free in time: nothing was checked, nothing changes, and the person is told to resend.
        .init(
            situation: s["asked passcode"]!,
            text: "right-passcode",
            evidence: .busy,
            step: .askedPasscode(first: "Olga", last: "Ivanova", email: "olga@example.org"),
            loggedIn: false,
            reply: "not checked"
        ),
        .init(
            situation: s["asked passcode again"]!,
            text: "right-passcode",
            evidence: .busy,
            step: .askedPasscodeAgain(first: "Olga", last: "Ivanova", email: "olga@example.org", pending: pendingHash),
            loggedIn: false,
            reply: "not checked"
        ),
        .init(
            situation: s["asked login passcode"]!,
            text: "nope-nope",
            evidence: .busy,
            step: .askedLoginPasscode,
            loggedIn: false,
            reply: "not checked"
        ),
        .init(
            situation: s["registered, logged out"]!,
            text: "login right-passcode",
            evidence: .busy,
            step: .idle,
            loggedIn: false,
            reply: "not checked"
        ),
        .init(situation: s["opted out"]!, text: "login right-passcode", evidence: .busy, step: .idle, loggedIn: false, reply: ""),
        .init(
            situation: s["registered, logged out"]!,
            text: "login right-passcode",
            evidence: .verified(true, against: storedHash),
            step: .idle,
            loggedIn: true,
            effects: [.loginSucceeded(userId: 1)],
            reply: "Welcome back"
        ),
        .init(situation: s["logged in"]!, text: "LOGOUT", step: .idle, loggedIn: false, reply: "logged out"),
        .init(situation: s["unregistered"]!, text: "LOGOUT", step: .idle, loggedIn: false, reply: "Reply JOIN to register"),
        .init(situation: s["logged in"]!, text: "DELETE", step: .confirmingDelete, loggedIn: true, reply: "YES"),
        .init(situation: s["confirming delete"]!, text: "yes", step: .idle, loggedIn: false, effects: [.deleteAccount(userId: 1)], reply: "erased"),
        .init(situation: s["confirming delete"]!, text: "nah", step: .idle, loggedIn: true, reply: "cancelled"),
        .init(situation: s["logged in"]!, text: "BROADCAST hello", step: .idle, loggedIn: true, reply: "Unknown command, comrade."),
        .init(
            situation: s["admin logged in"]!,
            text: "BROADCAST  Harvest  now",
            step: .confirmingBroadcast(text: "Harvest  now"),
            loggedIn: true,
            reply: "GSM-7"
        ),
        .init(
            situation: s["confirming broadcast"]!,
            text: "YES",
            step: .idle,
            loggedIn: true,
            effects: [.broadcast(senderId: 2, body: "Harvest")],
            reply: "queued"
        ),
        .init(situation: s["confirming broadcast"]!, text: "RESET", step: .idle, loggedIn: true, reply: "abandoned"),
        .init(
            situation: s["admin logged in"]!,
            text: "SEND 415-555-0100 Report at dawn",
            step: .idle,
            loggedIn: true,
            effects: [.sendDirect(recipientId: 1, senderId: 2, body: "Report at dawn")],
            reply: "texted to +14155550100. Reply HELP"
        ),
        .init(
            situation: s["admin logged in"]!,
            text: "SEND 415-555-0100 " + String(repeating: "tractors ", count: 20),
            step: .idle,
            loggedIn: true,
            effects: [.sendDirect(recipientId: 1, senderId: 2, body: String(repeating: "tractors ", count: 20).trimmingWhitespace())],
            reply: "texted to +14155550100. 2 SMS segments. Reply HELP"
        ),
        .init(
            situation: s["admin logged in"]!,
            text: "SEND ivan@example.org It’s “urgent”",
            step: .idle,
            loggedIn: true,
            effects: [.sendDirect(recipientId: 1, senderId: 2, body: "It’s “urgent”")],
            // (no preview as BROADCAST has: the reply says what the text cost, for next time)
            // (every character that forces UCS-2, so that all can be fixed at once)
            reply:
                "queued to be texted to +14155550100. UCS-2 forced by U+2019 (curly quote), U+201C (curly double quote) and U+201D (curly double quote), 1 SMS segment. Reply HELP"
        ),
        .init(
            situation: s["admin logged in"]!,
            text: "SEND (415) 555-0100: the meeting moved",
            step: .idle,
            loggedIn: true,
            effects: [.sendDirect(recipientId: 1, senderId: 2, body: "the meeting moved")],
            reply: "Stored"
        ),
        .init(
            situation: s["admin logged in"]!,
            text: "SEND Ivan@example.org, the meeting moved",
            step: .idle,
            loggedIn: true,
            effects: [.sendDirect(recipientId: 1, senderId: 2, body: "the meeting moved")],
            reply: "Stored"
        ),
        .init(
            situation: s["admin logged in"]!,
            text: "SEND <Ivan@example.org> the meeting moved",
            step: .idle,
            loggedIn: true,
            effects: [.sendDirect(recipientId: 1, senderId: 2, body: "the meeting moved")],
            reply: "Stored"
        ),
        // A text with an é typed as e and an accent is sent composed: GSM-7, one segment, not UCS-2
        .init(
            situation: s["admin logged in"]!,
            text: "SEND ivan@example.org Rally at the cafe\u{301}",
            step: .idle,
            loggedIn: true,
            effects: [.sendDirect(recipientId: 1, senderId: 2, body: "Rally at the café")],
            reply: "queued to be texted to +14155550100. Reply HELP"
        ),
        .init(situation: s["admin logged in"]!, text: "SEND nobody hi", step: .idle, loggedIn: true, reply: "neither a phone number nor an email"),
        // A national number written with spaces, as FIND takes it; the text keeps its own leading number
        .init(
            situation: s["admin logged in"]!,
            text: "SEND (415) 555-0100 5 tractors at dawn",
            step: .idle,
            loggedIn: true,
            effects: [.sendDirect(recipientId: 1, senderId: 2, body: "5 tractors at dawn")],
            reply: "texted to +14155550100"
        ),
        .init(
            situation: s["admin logged in"]!,
            text: "SEND 1 415 555 0100 Report",
            step: .idle,
            loggedIn: true,
            effects: [.sendDirect(recipientId: 1, senderId: 2, body: "Report")],
            reply: "texted to +14155550100"
        ),
        .init(
            situation: s["admin logged in"]!,
            text: "SEND 415-555-0100 2 more",
            step: .idle,
            loggedIn: true,
            effects: [.sendDirect(recipientId: 1, senderId: 2, body: "2 more")],
            reply: "texted to +14155550100"
        ),
        .init(situation: s["admin logged in"]!, text: "SEND (415) 555-0100", step: .idle, loggedIn: true, reply: "Usage: SEND"),
        .init(situation: s["admin logged in"]!, text: "SEND (415) hi", step: .idle, loggedIn: true, reply: "(415) is neither a phone number"),
        .init(situation: s["admin logged in"]!, text: "SEND +1 415 555 0100 hi", step: .idle, loggedIn: true, reply: "without spaces"),
        // A number a digit short is not joined to a message that starts with a number into someone else's
        .init(situation: s["admin logged in"]!, text: "SEND 415555010 0 comrades", step: .idle, loggedIn: true, reply: "neither a phone number"),
        .init(situation: s["admin logged in"]!, text: "SEND 415 555 010 0 comrades", step: .idle, loggedIn: true, reply: "neither a phone number"),
        .init(situation: s["admin logged in"]!, text: "SEND 415 5550100 comrades", step: .idle, loggedIn: true, reply: "neither a phone number"),
        .init(
            situation: s["admin logged in"]!,
            text: "SEND 1 (415) 555.0100 Report",
            step: .idle,
            loggedIn: true,
            effects: [.sendDirect(recipientId: 1, senderId: 2, body: "Report")],
            reply: "texted to +14155550100"
        ),
        .init(
            situation: s["admin logged in"]!,
            text: "SEND ivan@example.org " + String(repeating: "x", count: 1601),
            step: .idle,
            loggedIn: true,
            reply: "at most 1600 characters, comrade; yours has 1601"
        ),
        .init(
            situation: s["admin logged in"]!,
            text: "USERS",
            step: .idle,
            loggedIn: true,
            reply: "2 registered, 0 opted out, 1 admin, 1 logged in now"
        ),
        .init(
            situation: s["admin logged in"]!,
            text: "FIND petrov",
            step: .idle,
            loggedIn: true,
            reply: "Ivan Petrov, +14155550100, ivan@example.org"
        ),
        .init(situation: s["registered, logged out"]!, text: "YES", step: .idle, loggedIn: false, reply: "already subscribed"),
        .init(situation: s["opted out"]!, text: "YES", step: .idle, loggedIn: false, effects: [.optIn(text: "YES")], reply: "Welcome back"),
        .init(
            situation: s["opted out while confirming delete"]!,
            text: "yes",
            step: .idle,
            loggedIn: true,
            effects: [.optIn(text: "yes")],
            reply: "Welcome back"
        ),
        .init(situation: s["asked last name"]!, text: "STOP", step: .idle, loggedIn: false, effects: [.optOut(text: "STOP")], reply: ""),
        .init(
            situation: s["asked last name"]!,
            text: "Stop-Smith",
            step: .askedEmail(first: "Olga", last: "Stop-Smith"),
            loggedIn: false,
            reply: "email"
        ),
        // A confirmation is read on its first word; a command instead of YES cancels it and runs, it is not swallowed.
        .init(
            situation: s["confirming broadcast"]!,
            text: "yes please",
            step: .idle,
            loggedIn: true,
            effects: [.broadcast(senderId: 2, body: "Harvest")],
            reply: "queued"
        ),
        .init(
            situation: s["confirming delete"]!,
            text: "Yes, erase it.",
            step: .idle,
            loggedIn: false,
            effects: [.deleteAccount(userId: 1)],
            reply: "erased"
        ),
        .init(situation: s["confirming delete"]!, text: "yesterday", step: .idle, loggedIn: true, reply: "Deletion cancelled"),
        .init(situation: s["confirming broadcast"]!, text: "LOGOUT", step: .idle, loggedIn: false, reply: "Broadcast cancelled. You are logged out"),
        .init(
            situation: s["confirming broadcast"]!,
            text: "users",
            step: .idle,
            loggedIn: true,
            reply: "Broadcast cancelled. Comrades: 2 registered"
        ),
        .init(situation: s["confirming delete"]!, text: "reset please", step: .idle, loggedIn: true, reply: "abandoned"),
        .init(situation: s["confirming delete"]!, text: "hello", step: .confirmingDelete, loggedIn: true, reply: "You are confirming a DELETE"),
        // Opt-out words with quotes, punctuation or invisible characters around them still opt out; with other
        // words they do not (Twilio's rule), and the reply says how.
        .init(
            situation: s["logged in"]!,
            text: "\u{201C}STOP\u{201D}",
            step: .idle,
            loggedIn: false,
            effects: [.optOut(text: "\"STOP\"")],
            reply: ""
        ),
        .init(situation: s["logged in"]!, text: "stop:", step: .idle, loggedIn: false, effects: [.optOut(text: "stop:")], reply: ""),
        .init(
            situation: s["logged in"]!,
            text: "\u{200B}Unsubscribe.",
            step: .idle,
            loggedIn: false,
            effects: [.optOut(text: "\u{200B}Unsubscribe.")],
            reply: ""
        ),
        .init(situation: s["opted out"]!, text: "STOP", step: .idle, loggedIn: false, effects: [.optOut(text: "STOP")], reply: ""),
        .init(situation: s["logged in"]!, text: "stop please", step: .idle, loggedIn: true, reply: "To opt out, reply STOP alone"),
        .init(situation: s["registered, logged out"]!, text: "stop please", step: .idle, loggedIn: false, reply: "To opt out, reply STOP alone"),
        .init(situation: s["logged in"]!, text: "stpo", step: .idle, loggedIn: true, reply: "Did you mean STOP?"),
        // At a question, too, the reply says how to opt out. At the login and current-passcode questions such a text is
        // checked as a passcode (one chosen before command words were refused may be it) and counts if wrong, and every
        // wrong passcode is told how to opt out, whatever it said (see `aWrongPasscodeIsAnsweredAlikeWhateverItSaid`)
        .init(
            situation: s["asked login passcode"]!,
            text: "stop texting me",
            evidence: .verified(false, against: storedHash),
            step: .askedLoginPasscode,
            loggedIn: false,
            effects: [.loginFailed(userId: 1, recentFailures: [t0], lockedUntil: nil)],
            reply:
                "Wrong passcode (1 of 5 tries). Reply with your passcode, or RESET to go back. Forgot it? Ask an organiser to reset it. STOP alone opts out."
        ),
        .init(
            situation: s["asked current passcode"]!,
            text: "Unsubscribe me please",
            evidence: .verified(false, against: storedHash),
            step: .askedCurrentPasscode,
            loggedIn: true,
            effects: [.loginFailed(userId: 1, recentFailures: [t0], lockedUntil: nil)],
            reply: "Wrong passcode (1 of 5 tries). Reply with your current passcode, or RESET to keep it. STOP alone opts out."
        ),
        .init(
            situation: s["asked email"]!,
            text: "stop texting me",
            step: .askedEmail(first: "Olga", last: "Ivanova"),
            loggedIn: false,
            reply: "That is not an email address, comrade. To opt out, reply STOP alone: with other words it does not count. Reply with your email"
        ),
        .init(
            situation: s["asked email"]!,
            text: "please stop",
            step: .askedEmail(first: "Olga", last: "Ivanova"),
            loggedIn: false,
            reply: "To opt out"
        ),
        .init(
            situation: s["asked passcode"]!,
            text: "stop texting me",
            step: .askedPasscode(first: "Olga", last: "Ivanova", email: "olga@example.org"),
            loggedIn: false,
            reply: "That is not a passcode, comrade. To opt out, reply STOP alone: with other words it does not count. Reply with a passcode"
        ),
        // A command alone at the registration's passcode question is said to be one, whatever its length
        .init(
            situation: s["asked passcode"]!,
            text: "login",
            step: .askedPasscode(first: "Olga", last: "Ivanova", email: "olga@example.org"),
            loggedIn: false,
            reply: "LOGIN is a command, comrade, not a passcode. Reply with a passcode of 6 to 64 characters, or RESET to go back."
        ),
        // RESET about a passcode says how a passcode is changed, or who resets a forgotten one
        .init(
            situation: s["registered, logged out"]!,
            text: "reset my passcode",
            step: .idle,
            loggedIn: false,
            reply: "No question is open to reset, comrade Ivan. Forgot your passcode? Ask an organiser to reset it, then LOGIN."
        ),
        .init(
            situation: s["logged in"]!,
            text: "Reset password",
            step: .idle,
            loggedIn: true,
            reply: "No question is open to reset, comrade. To change your passcode, reply PASSCODE."
        ),
        .init(situation: s["unregistered"]!, text: "reset my passcode", step: .idle, loggedIn: false, reply: "Nothing to reset, comrade."),
        // A command in quotes or with punctuation is still the command ("the first word counts")
        .init(situation: s["logged in"]!, text: "\u{201C}profile\u{201D}", step: .idle, loggedIn: true, reply: "Ivan Petrov"),
        .init(situation: s["logged in"]!, text: "Logout!", step: .idle, loggedIn: false, reply: "logged out"),
        // A question mark after a command word too; and "Log in", "Log out", "Sign up", as phones autocorrect them
        .init(situation: s["logged in"]!, text: "Profile?", step: .idle, loggedIn: true, reply: "Ivan Petrov"),
        .init(situation: s["logged in"]!, text: "Help?", step: .idle, loggedIn: true, reply: "Reply MESSAGES, MORE, PROFILE"),
        .init(situation: s["logged in"]!, text: "Messages??", step: .idle, loggedIn: true, reply: "No unread"),
        .init(situation: s["logged in"]!, text: "Log out", step: .idle, loggedIn: false, reply: "logged out"),
        .init(situation: s["registered, logged out"]!, text: "Log in", step: .askedLoginPasscode, loggedIn: false, reply: "passcode"),
        .init(
            situation: s["registered, logged out"]!,
            text: "Log In right-passcode",
            evidence: .verified(true, against: storedHash),
            step: .idle,
            loggedIn: true,
            effects: [.loginSucceeded(userId: 1)],
            reply: "Welcome back"
        ),
        .init(situation: s["unregistered"]!, text: "Sign up", step: .askedFirstName, loggedIn: false, reply: "first name"),
        .init(situation: s["unregistered"]!, text: "Log book", step: .idle, loggedIn: false, reply: "Unknown command LOG"),
        // Where an existing passcode is asked, those loose forms with more words are answers, as before they were read:
        // a passcode chosen then may be one ("log in 1917", "Start?"); alone, they are the commands (below)
        .init(
            situation: s["asked login passcode"]!,
            text: "log in 1917",
            evidence: .verified(true, against: storedHash),
            step: .idle,
            loggedIn: true,
            effects: [.loginSucceeded(userId: 1)],
            reply: "Welcome back"
        ),
        .init(
            situation: s["asked login passcode"]!,
            text: "Start?",
            evidence: .verified(true, against: storedHash),
            step: .idle,
            loggedIn: true,
            effects: [.loginSucceeded(userId: 1)],
            reply: "Welcome back"
        ),
        .init(situation: s["asked current passcode"]!, text: "Reset?", step: .idle, loggedIn: true, reply: "passcode change is abandoned"),
        // "Yes?" is a question: it confirms nothing, and opts nothing in
        .init(situation: s["confirming delete"]!, text: "Yes?", step: .idle, loggedIn: true, reply: "Deletion cancelled"),
        .init(situation: s["opted out"]!, text: "Yes?", step: .idle, loggedIn: false, reply: ""),
        .init(situation: s["opted out"]!, text: "Start?", step: .idle, loggedIn: false, reply: ""),
        .init(situation: s["logged in"]!, text: "nstop", step: .idle, loggedIn: true, reply: "Did you mean STOP?"),
        .init(situation: s["opted out"]!, text: "start please", step: .idle, loggedIn: false, reply: ""),
        .init(situation: s["registered, logged out"]!, text: "start please", step: .idle, loggedIn: false, reply: "already subscribed"),
        // An unknown text from a registered person who is not logged in may be the passcode: it is not echoed.
        .init(
            situation: s["registered, logged out"]!,
            text: "red-square-1917",
            step: .idle,
            loggedIn: false,
            reply: "not repeated, in case it was your passcode"
        ),
        // (logged in too: a person sending their passcode where none is asked; without saying why, as "ok thanks" gets it)
        .init(
            situation: s["logged in"]!,
            text: "red-square-1917",
            step: .idle,
            loggedIn: true,
            reply: "Unknown command, comrade. Organisers do not read replies here. Reply HELP for commands."
        ),
        .init(situation: s["admin logged in"]!, text: "red-square-1917", step: .idle, loggedIn: true, reply: "Unknown command, comrade. Reply HELP"),
        // (a reply to an organiser's text, logged out: told no one reads it, within one text)
        .init(
            situation: s["registered, logged out"]!,
            text: "Thanks! I'll be there",
            step: .idle,
            loggedIn: false,
            reply:
                "Unknown command, comrade (not repeated, in case it was your passcode). Organisers do not read replies here. To log in, reply LOGIN; HELP lists commands."
        ),
        .init(situation: s["logged in"]!, text: "lgoin", step: .idle, loggedIn: true, reply: "Did you mean LOGIN?"),
        .init(situation: s["unregistered"]!, text: "mesages", step: .idle, loggedIn: false, reply: "Did you mean MESSAGES?"),
        .init(situation: s["unregistered"]!, text: "red-square-1917", step: .idle, loggedIn: false, reply: "Unknown command RED-SQUARE-1917"),
        // Echoed only in GSM-7, so the reply stays GSM-7
        .init(situation: s["unregistered"]!, text: "привет", step: .idle, loggedIn: false, reply: "Unknown command, comrade. Reply HELP"),
        .init(situation: s["unregistered"]!, text: "🛑", step: .idle, loggedIn: false, reply: "Unknown command, comrade. Reply HELP"),
        // What reads as STOP to a person is honoured as one (the safe side); with other words it still is not
        .init(situation: s["logged in"]!, text: "STOP?", step: .idle, loggedIn: false, effects: [.optOut(text: "STOP?")], reply: ""),
        .init(situation: s["logged in"]!, text: "(stop)", step: .idle, loggedIn: false, effects: [.optOut(text: "(stop)")], reply: ""),
        .init(situation: s["logged in"]!, text: "Stop\u{2026}", step: .idle, loggedIn: false, effects: [.optOut(text: "Stop\u{2026}")], reply: ""),
        .init(
            situation: s["logged in"]!,
            text: "\u{FF33}\u{FF34}\u{FF2F}\u{FF30}",
            step: .idle,
            loggedIn: false,
            effects: [.optOut(text: "\u{FF33}\u{FF34}\u{FF2F}\u{FF30}")],
            reply: ""
        ),
        .init(situation: s["logged in"]!, text: "S\u{00AD}TOP", step: .idle, loggedIn: false, effects: [.optOut(text: "S\u{00AD}TOP")], reply: ""),
        .init(situation: s["logged in"]!, text: "stop? really", step: .idle, loggedIn: true, reply: "To opt out, reply STOP alone"),
        .init(situation: s["unregistered"]!, text: "OPT OUT", step: .idle, loggedIn: false, reply: "To opt out, reply STOP alone"),
        .init(situation: s["logged in"]!, text: "opt-out", step: .idle, loggedIn: true, reply: "To opt out, reply STOP alone"),
        .init(situation: s["registered, logged out"]!, text: "please stop texting me", step: .idle, loggedIn: false, reply: "reply STOP alone"),
        .init(situation: s["logged in"]!, text: "see you at the end", step: .idle, loggedIn: true, reply: "Unknown command, comrade. Organisers"),
        // A passcode that starts with a command word could never be sent alone: refused, and never hashed
        .init(
            situation: s["asked passcode"]!,
            text: "LOGIN Zq9xK7",
            step: .askedPasscode(first: "Olga", last: "Ivanova", email: "olga@example.org"),
            loggedIn: false,
            reply: "cannot start with a command word"
        ),
        .init(
            situation: s["asked passcode"]!,
            text: "help me 12345",
            step: .askedPasscode(first: "Olga", last: "Ivanova", email: "olga@example.org"),
            loggedIn: false,
            reply: "cannot start with a command word"
        ),
    ]

    @Test(arguments: rows)
    func transition(_ row: Row) throws {
        var state = row.situation.state
        let decision = try engine.reduce(&state, Inbound(text: row.text), evidence: row.evidence, facts: row.situation.facts, now: t0)
        #expect(state.step == row.step)
        #expect(state.isLoggedIn == row.loggedIn)
        #expect(decision.effects == row.effects)
        if row.reply.isEmpty {
            #expect(decision.replies.isEmpty)
        } else {
            #expect(decision.replies.joined().contains(row.reply), "\(decision.replies)")
        }
    }

    @Test(arguments: [
        ("Log in", "Reply with your passcode"), ("log in.", "Reply with your passcode"), ("Log out", "not logged in"), ("Messages?", "log in"),
        ("Reset?", "login is abandoned"),
    ])
    func anAutocorrectedCommandAloneAtTheLoginQuestionIsTheCommandNotAWrongTry(_ text: String, _ reply: String) throws {
        // Given Ivan asked for his passcode, with 4 wrong tries already (a fifth locks the account)
        var tried = ivan
        tried.recentFailedLogins = [10, 8, 5, 2].map { t0.addingTimeInterval(-$0 * 60) }
        var f = facts()
        f.accounts = [tried, vera]
        let asked = Self.s["asked login passcode"]!.state
        // Then a command his phone spelled its own way is not checked as his passcode, and does not count
        #expect(engine.passcodeWork(for: Inbound(text: text), state: asked, account: tried, now: t0) == nil)
        var state = asked
        let d = try engine.reduce(&state, Inbound(text: text), facts: f, now: t0)
        #expect(!d.effects.contains { if case .loginFailed = $0 { true } else { false } }, "\(d)")
        #expect(d.replies.joined().contains(reply), "\(d.replies)")
    }

    @Test func logInWithThePasscodeAtTheLoginQuestionChecksThePasscode() throws {
        // Given Ivan asked for his passcode, who sends it as his phone spells the command
        let asked = Self.s["asked login passcode"]!.state
        #expect(
            engine.passcodeWork(for: Inbound(text: "Log in my-passcode"), state: asked, account: ivan, now: t0)
                == .verify("my-passcode", against: storedHash)
        )
        var state = asked
        let d = try engine.reduce(
            &state,
            Inbound(text: "Log in my-passcode"),
            evidence: .verified(true, against: storedHash),
            facts: facts(),
            now: t0
        )
        #expect(d.effects == [.loginSucceeded(userId: 1)] && state.isLoggedIn && d.loggedBody == "[redacted]", "\(d)")
    }

    @Test(arguments: ["log in 1917", "Log out 1917", "sign up 2024", "Start?", "help? me 1917", "messages? 1234"])
    func aLooselyReadCommandAtTheLoginQuestionIsCheckedAsThePasscodeAndNeverLogged(_ text: String) throws {
        // A passcode chosen before "Log in" and "Help?" were read as commands may be one of them
        let asked = Self.s["asked login passcode"]!.state
        #expect(engine.passcodeWork(for: Inbound(text: text), state: asked, account: ivan, now: t0) == .verify(text, against: storedHash))
        var state = asked
        let d = try engine.reduce(&state, Inbound(text: text), evidence: .verified(true, against: storedHash), facts: facts(), now: t0)
        #expect(d.effects == [.loginSucceeded(userId: 1)] && d.loggedBody == "[redacted]", "\(d)")
        // And sent by a registered person where no question is open, it runs, and is not logged either (before such
        // forms were read it was an unknown text, redacted as one)
        var idle = Self.s["registered, logged out"]!.state
        let atIdle = try engine.reduce(&idle, Inbound(text: text), facts: facts(), now: t0)
        #expect(atIdle.loggedBody == "[redacted]", "\(atIdle)")
    }

    @Test(arguments: ["\u{201C}Stop\u{201D}", ":stop:", "Cancel.", "STOP!!", "Unsubscribe.", "Revoke!", "'cancel'", "\u{200B}unsubscribe"])
    func anOptOutWordWithPunctuationOptsOutAtAPasscodeQuestionToo(_ text: String) throws {
        // Keywords come first everywhere: at the passcode questions too, such a text opts out (SPEC §4), so it is
        // never hashed, never counts as a wrong try, and can never become someone's passcode
        for name in ["asked passcode", "asked passcode again", "asked login passcode"] {
            let asked = Self.s[name]!.state
            #expect(engine.passcodeWork(for: Inbound(text: text), state: asked, account: ivan, now: t0) == nil, "\(name)")
            var state = asked
            let d = try engine.reduce(&state, Inbound(text: text), facts: facts(), now: t0)
            #expect(d.effects == [.optOut(text: Inbound(text: text).text)], "\(name): \(d.effects)")
            #expect(d.replies.isEmpty && state.step == .idle)
        }
    }

    @Test(arguments: ["stop texting me", "Unsubscribe me please", "STOP it now", "cancel my subscription"])
    func aTextStartingWithAnOptOutWordIsNeverTakenAsANewPasscode(_ text: String) throws {
        // It cannot be one (JOIN and PASSCODE refuse a passcode starting with a command word): nothing to hash, and the
        // reply says how to opt out
        for name in ["asked passcode", "asked new passcode"] {
            let asked = Self.s[name]!.state
            #expect(engine.passcodeWork(for: Inbound(text: text), state: asked, account: ivan, now: t0) == nil, "\(name)")
            var state = asked
            let d = try engine.reduce(&state, Inbound(text: text), facts: facts(), now: t0)
            #expect(d.effects.isEmpty && state.step == asked.step, "\(name): \(d)")
            #expect(d.replies.joined().contains("To opt out, reply STOP alone"), "\(name): \(d.replies)")
            #expect(d.loggedBody == "[redacted]", "\(name): \(d)")
        }
    }

    @Test func aWrongPasscodeIsAnsweredAlikeWhateverItSaid() throws {
        // A wrong try is often a character away from the passcode: a reply that changed with its words ("To opt out…"
        // only after "bus stop 1918") would tell the stored reply, beside "[redacted]", what the passcode holds
        for name in ["asked login passcode", "asked current passcode"] {
            let replies = try ["bus stop 1918", "tractor-1918", "please unsubscribe", "opt out 1917"].map { text in
                var state = Self.s[name]!.state
                let d = try engine.reduce(&state, Inbound(text: text), evidence: .verified(false, against: storedHash), facts: facts(), now: t0)
                #expect(d.loggedBody == "[redacted]" && d.effects.count == 1, "\(name) \(text): \(d)")
                return d.replies
            }
            #expect(Set(replies).count == 1, "\(name): \(replies)")
            #expect(replies[0].joined().hasSuffix("STOP alone opts out."), "\(name): \(replies[0])")
            #expect(replies[0].count == 1 && Segments.count(replies[0][0]).segments == 1, "\(replies[0])")
        }
    }

    @Test func aPasscodeSentAfterALockoutOrWithoutLoginIsRedactedAndNotEchoed() throws {
        let f = facts()
        // After "please log in first"
        var state = ConversationState(lastActivity: t0)
        #expect(try engine.reduce(&state, Inbound(text: "MESSAGES"), facts: f, now: t0).replies == [Copy.needLogin])
        let sent = try engine.reduce(&state, Inbound(text: "red-square-1917"), facts: f, now: t0)
        #expect(sent.loggedBody == Copy.redacted)
        #expect(!sent.replies.joined().localizedCaseInsensitiveContains("red-square"))
        // After a lockout
        var locked = facts()
        locked.accounts[0].lockedUntil = t0.addingTimeInterval(600)
        var lockedState = ConversationState(step: .askedLoginPasscode, lastActivity: t0)
        #expect(try engine.reduce(&lockedState, Inbound(text: "anything"), facts: locked, now: t0).replies.joined().contains("locked until"))
        let again = try engine.reduce(&lockedState, Inbound(text: "red-square-1917"), facts: locked, now: t0)
        #expect(again.loggedBody == Copy.redacted)
        #expect(!again.replies.joined().localizedCaseInsensitiveContains("red-square"))
        // (and told until when, not to LOGIN, which the lock would refuse; within one text)
        #expect(again.replies.count == 1 && again.replies[0].hasPrefix("Not understood. The account is locked until"))
        #expect(!again.replies[0].contains("To log in") && again.replies[0].count <= 160, "\(again.replies)")
        // (one text with a long city name for the time zone too)
        let zoned = ConversationEngine(settings: .init(localTime: try #require(LocalTime(named: "America/Bahia_Banderas"))))
        let far = try zoned.reduce(&lockedState, Inbound(text: "red-square-1917"), facts: locked, now: t0)
        #expect(far.replies[0].contains("Bahia Banderas time") && Segments.count(far.replies[0]).segments == 1, "\(far.replies)")
        // Not a person's passcode: an unregistered number's unknown word is kept and echoed
        var stranger = ConversationState(lastActivity: t0)
        let word = try engine.reduce(&stranger, Inbound(text: "red-square-1917"), facts: facts(registered: false), now: t0)
        #expect(word.loggedBody == nil && word.replies.joined().contains("RED-SQUARE-1917"))
    }

    @Test func everyCharacterThatForcesUCS2IsNamedUpToThree() {
        #expect(Copy.describe(Segments.count("It’s").nonGSMCharacters) == "U+2019 (curly quote)")
        #expect(Copy.describe(Segments.count("It’s — it’s").nonGSMCharacters) == "U+2019 (curly quote) and U+2014 (em dash)")
        #expect(Copy.describe(Segments.count("’—…🎉Ж").nonGSMCharacters) == "U+2019 (curly quote), U+2014 (em dash), U+2026 (ellipsis) and 2 more")
        #expect(Copy.describe([]) == "")
    }

    @Test func adminPhoneRegistersAsAdmin() throws {
        var state = ConversationState(
            step: .askedPasscodeAgain(first: "Vera", last: "C", email: "v2@example.org", pending: pendingHash),
            lastActivity: t0
        )
        let f = MemoryFacts(phone: "+14155550198")
        let e = ConversationEngine(settings: .init(adminPhones: ["+14155550198"]))
        let d = try e.reduce(&state, Inbound(text: "right-passcode"), evidence: .verified(true, against: pendingHash), facts: f, now: t0)
        guard case .register(let r) = d.effects.first else {
            Issue.record("no registration")
            return
        }
        #expect(r.role == .admin)
    }

    // MARK: - Passcode work

    @Test func passcodeWorkIsAskedOnlyForPasscodes() throws {
        let asked = Self.s["asked passcode"]!.state
        #expect(engine.passcodeWork(for: Inbound(text: "good-passcode"), state: asked, account: nil, now: t0) == .hash("good-passcode"))
        #expect(engine.passcodeWork(for: Inbound(text: "short"), state: asked, account: nil, now: t0) == nil)
        #expect(engine.passcodeWork(for: Inbound(text: "STOP"), state: asked, account: nil, now: t0) == nil)
        #expect(engine.passcodeWork(for: Inbound(text: "HELP"), state: asked, account: nil, now: t0) == nil)
        let again = Self.s["asked passcode again"]!.state
        #expect(
            engine.passcodeWork(for: Inbound(text: "good-passcode"), state: again, account: nil, now: t0)
                == .verify("good-passcode", against: pendingHash)
        )
        // A new passcode in a passcode change is checked against the current one (at registration there is none)
        let askedNew = Self.s["asked new passcode"]!.state
        #expect(
            engine.passcodeWork(for: Inbound(text: "good-passcode"), state: askedNew, account: ivan, now: t0)
                == .hash("good-passcode", unlike: storedHash)
        )
        let idle = ConversationState(lastActivity: recent)
        #expect(
            engine.passcodeWork(for: Inbound(text: "LOGIN  my pass"), state: idle, account: ivan, now: t0) == .verify("my pass", against: storedHash)
        )
        #expect(engine.passcodeWork(for: Inbound(text: "LOGIN"), state: idle, account: ivan, now: t0) == nil)
        #expect(
            engine.passcodeWork(for: Inbound(text: "Log in my pass"), state: idle, account: ivan, now: t0) == .verify("my pass", against: storedHash)
        )
        // An opted-out number is answered only when it opts back in: nothing of it is ever hashed (its YES at an open
        // passcode question is the opt-in, and is logged as it is)
        let askedLogin = Self.s["asked login passcode"]!.state
        #expect(engine.passcodeWork(for: Inbound(text: "YES"), state: askedLogin, account: ivan, optedOut: true, now: t0) == nil)
        #expect(engine.passcodeWork(for: Inbound(text: "right-passcode"), state: askedLogin, account: ivan, optedOut: true, now: t0) == nil)
        var state = askedLogin
        let yes = try engine.reduce(&state, Inbound(text: "YES"), facts: facts(optedOut: true), now: t0)
        #expect(yes.effects == [.optIn(text: "YES")] && yes.loggedBody == nil)
        var locked = ivan
        locked.lockedUntil = t0.addingTimeInterval(60)
        #expect(engine.passcodeWork(for: Inbound(text: "LOGIN my-pass"), state: idle, account: locked, now: t0) == nil)
        // An expired flow is not asked for a passcode any more.
        let stale = ConversationState(step: .askedPasscode(first: "a", last: "b", email: "c@d.ef"), lastActivity: t0.addingTimeInterval(-3600))
        #expect(engine.passcodeWork(for: Inbound(text: "good-passcode"), state: stale, account: nil, now: t0) == nil)
    }

    // MARK: - Lockout window

    /// A wrong passcode at `t0` from someone whose earlier wrong passcodes were sent `minutesAgo`.
    func wrongPasscode(after minutesAgo: [Double]) throws -> (Decision, ConversationState) {
        var tried = ivan
        tried.recentFailedLogins = minutesAgo.map { t0.addingTimeInterval(-$0 * 60) }
        var f = facts()
        f.accounts = [tried, vera]
        var state = ConversationState(step: .askedLoginPasscode, lastActivity: recent)
        let d = try engine.reduce(&state, Inbound(text: "wrong-again"), evidence: .verified(false, against: storedHash), facts: f, now: t0)
        return (d, state)
    }

    @Test func failuresOutsideTheWindowAreForgotten() throws {
        let (d, _) = try wrongPasscode(after: [16, 16, 15.5, 15])
        #expect(d.effects == [.loginFailed(userId: 1, recentFailures: [t0], lockedUntil: nil)])
        #expect(
            d.replies == [
                "Wrong passcode (1 of 5 tries). Reply with your passcode, or RESET to go back. Forgot it? Ask an organiser to reset it. STOP alone opts out."
            ]
        )
    }

    @Test func theWindowSlidesOnlyTheFailuresOlderThanFifteenMinutesAreForgotten() throws {
        // One wrong passcode 16 minutes ago, three in the last minute: this is the fourth within 15 minutes, not the
        // first of a new window (the window used to start again when its first failure grew old).
        let (d, state) = try wrongPasscode(after: [16, 1, 0.5, 0.25])
        let kept = [1, 0.5, 0.25].map { t0.addingTimeInterval(-$0 * 60) }
        #expect(d.effects == [.loginFailed(userId: 1, recentFailures: kept + [t0], lockedUntil: nil)])
        #expect(
            d.replies == [
                "Wrong passcode (4 of 5 tries). Reply with your passcode, or RESET to go back. Forgot it? Ask an organiser to reset it. STOP alone opts out."
            ]
        )
        #expect(state.step == .askedLoginPasscode)
        // And a fifth within 15 minutes of the first of them locks, whenever an older one was
        let (locked, _) = try wrongPasscode(after: [30, 16, 14.9, 1, 0.5, 0.25])
        #expect(locked.effects == [.loginFailed(userId: 1, recentFailures: [], lockedUntil: t0.addingTimeInterval(900))])
    }

    @Test func fifthFailureInsideTheWindowLocksForFifteenMinutes() throws {
        let (d, state) = try wrongPasscode(after: [14, 10, 5, 1])
        #expect(d.effects == [.loginFailed(userId: 1, recentFailures: [], lockedUntil: t0.addingTimeInterval(900))])
        #expect(
            d.replies == [
                "Wrong passcode 5 times. The account is locked until 09:15 UTC. Try LOGIN again then, comrade, or ask an organiser to reset your passcode."
            ]
        )
        #expect(state.step == .idle)
    }

    // MARK: - Expiry

    @Test func expiredFlowIsAnnouncedAndTheTextIsAFreshCommand() throws {
        var state = ConversationState(step: .askedLastName(first: "Olga"), lastActivity: t0.addingTimeInterval(-1801))
        let d = try engine.reduce(&state, Inbound(text: "HELP"), facts: facts(registered: false), now: t0)
        #expect(state.step == .idle)
        #expect(d.replies.count == 1)
        // (HELP's own text says to reply JOIN: the note does not say it again)
        #expect(d.replies[0].hasPrefix("Your registration timed out after 30 min of silence. Action2Phone, comrade: reply JOIN to register"))
        // A text that is no command was meant for the expired question: it is not read, and not echoed back
        var late = ConversationState(step: .askedLastName(first: "Olga"), lastActivity: t0.addingTimeInterval(-1801))
        let answer = try engine.reduce(&late, Inbound(text: "Smirnova"), facts: facts(registered: false), now: t0)
        #expect(answer.replies == ["Your registration timed out after 30 min of silence, so that text was not used. Reply JOIN to start again."])
        // and a command is answered after the note, which names the restart only where the answer does not
        var other = ConversationState(step: .confirmingDelete, loggedInAt: recent, lastActivity: t0.addingTimeInterval(-1801))
        let profile = try engine.reduce(&other, Inbound(text: "PROFILE"), facts: facts(), now: t0)
        #expect(
            profile.replies == [
                "Your DELETE timed out after 30 min of silence and nothing was deleted; send LOGIN, then DELETE to start again. Please log in first, comrade: reply LOGIN."
            ]
        )
        var login = ConversationState(step: .askedLoginPasscode, lastActivity: t0.addingTimeInterval(-1801))
        let again = try engine.reduce(&login, Inbound(text: "LOGIN"), facts: facts(), now: t0)
        #expect(again.replies[0].hasPrefix("Your login timed out after 30 min of silence. Reply with your passcode"), "\(again.replies)")
    }

    @Test func expiredLoginIsSilentlyEnded() throws {
        var state = ConversationState(loggedInAt: t0.addingTimeInterval(-4000), lastActivity: t0.addingTimeInterval(-1801))
        let d = try engine.reduce(&state, Inbound(text: "PROFILE"), facts: facts(), now: t0)
        #expect(!state.isLoggedIn)
        #expect(d.replies == ["Please log in first, comrade: reply LOGIN."])
    }

    // MARK: - Inbox

    @Test func inboxShowsWhatFitsAndAtLeastOne() throws {
        var f = facts()
        let long = String(repeating: "word ", count: 200)  // 1000 characters
        f.inbox[1] = (1...3).map { InboxItem(id: Int64($0), senderName: "Vera Commissar", kind: "direct", body: "\($0) " + long, createdAt: t0) }
        var state = ConversationState(loggedInAt: recent, lastActivity: recent)
        let d = try engine.reduce(&state, Inbound(text: "MESSAGES"), facts: f, now: t0)
        #expect(d.effects == [.markRead([1])])
        #expect(d.replies[0].hasSuffix("2 more: reply MORE."))
        f.inbox[1] = [InboxItem(id: 9, senderName: nil, kind: "broadcast", body: String(repeating: "x", count: 1500), createdAt: t0)]
        let big = try engine.reduce(&state, Inbound(text: "MORE"), facts: f, now: t0)
        #expect(big.effects == [.markRead([9])])
        #expect(big.replies[0].contains("The Bureau to all, Nov 25: xxx"))
    }

    @Test func aPageHoldsAsManyMessagesAsFitOneText() throws {
        // Given three messages of 690 characters (two fit one 1,600-character text with their headings, three do not)
        var f = facts()
        let body = String(repeating: "Comrades, ", count: 69)
        f.inbox[1] = (1...3).map { InboxItem(id: Int64($0), senderName: "Vera Commissar", kind: "direct", body: body, createdAt: t0) }
        var state = ConversationState(loggedInAt: recent, lastActivity: recent)
        // Then the first page holds two, and with its ending is one text
        let d = try engine.reduce(&state, Inbound(text: "MESSAGES"), facts: f, now: t0)
        #expect(d.effects == [.markRead([1, 2])])
        #expect(d.replies.count == 1 && d.replies[0].utf16.count <= TwiML.maxMessageLength && d.replies[0].hasSuffix("\n1 more: reply MORE."))
        // And however long the ending is, a page and its ending never need a second text
        f.inbox[1] = (1...30).map {
            InboxItem(id: Int64($0), senderName: "Vera Commissar", kind: "direct", body: "\($0) " + body.prefix(150), createdAt: t0)
        }
        let many = try engine.reduce(&state, Inbound(text: "MESSAGES"), facts: f, now: t0)
        #expect(many.replies.count == 1 && many.replies[0].utf16.count <= TwiML.maxMessageLength, "\(many.replies.map(\.utf16.count))")
    }

    @Test func inboxPagesAreMeasuredAsTwilioCountsAndTheEndingIsNeverCut() throws {
        // Given a short message, then one of 790 emoji (1,580 UTF-16 units, 790 characters)
        var f = facts()
        let emoji = String(repeating: "😀", count: 790)
        f.inbox[1] = [
            InboxItem(id: 1, senderName: "Vera Commissar", kind: "direct", body: "short one", createdAt: t0),
            InboxItem(id: 2, senderName: "Vera Commissar", kind: "direct", body: emoji, createdAt: t0),
        ]
        var state = ConversationState(loggedInAt: recent, lastActivity: recent)
        // Then the first page holds only the short one (the emoji would overflow it, counted in UTF-16 units)
        let first = try engine.reduce(&state, Inbound(text: "MESSAGES"), facts: f, now: t0)
        #expect(first.effects == [.markRead([1])])
        #expect(first.replies == ["1) Vera Commissar, Nov 25: short one\n1 more: reply MORE."])
        // And the long one comes whole, with the ending in a text of its own rather than cut in two
        f.inbox[1] = [f.inbox[1]![1]]
        let second = try engine.reduce(&state, Inbound(text: "MORE"), facts: f, now: t0)
        #expect(second.effects == [.markRead([2])])
        #expect(second.replies == ["1) Vera Commissar, Nov 25: " + emoji, "That is all. Reply HELP for commands."])
    }

    @Test func aPageSplitInTwoCarriesItsEndingInItsLastText() throws {
        // Given one message just long enough that, with its heading, it takes two texts
        var f = facts()
        let body = String(repeating: "Comrades, ", count: 159).trimmingCharacters(in: .whitespaces)
        f.inbox[1] = [InboxItem(id: 1, senderName: "Vera Commissar", kind: "direct", body: body, createdAt: t0)]
        var state = ConversationState(loggedInAt: recent, lastActivity: recent)
        let d = try engine.reduce(&state, Inbound(text: "MESSAGES"), facts: f, now: t0)
        // Then the ending shares the second text with the message's tail rather than coming as a third
        #expect(d.replies.count == 1)
        let texts = TwiML.split(d.replies[0])
        #expect(texts.count == 2 && texts[1].hasSuffix("Comrades,\nThat is all. Reply HELP for commands."), "\(texts.map(\.count))")
        #expect(texts.joined(separator: " ") == "1) Vera Commissar, Nov 25: " + body + "\nThat is all. Reply HELP for commands.")
    }

    @Test func findSaysWhenMoreMatchThanItShows() throws {
        var f = facts(adminPhone)
        f.accounts += (1...6).map { i in
            Account(
                id: Int64(100 + i),
                phone: "+1415555090\(i)",
                firstName: "Olga",
                lastName: "Ivanova \(i)",
                email: "olga\(i)@example.org",
                createdAt: t0,
                passcode: storedHash
            )
        }
        var state = ConversationState(loggedInAt: recent, lastActivity: recent)
        let six = try engine.reduce(&state, Inbound(text: "FIND ivanova"), facts: f, now: t0)
        #expect(six.replies[0].split(separator: "\n").filter { $0.hasPrefix("Olga Ivanova") }.count == 5)
        #expect(six.replies[0].contains("More match: FIND with more of the name shows fewer."))
        let one = try engine.reduce(&state, Inbound(text: "FIND ivanova 6"), facts: f, now: t0)
        #expect(!one.replies[0].contains("More match"))
    }

    @Test func helpInAConfirmationSaysYesAndResetOnce() throws {
        var state = ConversationState(step: .confirmingDelete, loggedInAt: recent, lastActivity: recent)
        let d = try engine.reduce(&state, Inbound(text: "HELP"), facts: facts(), now: t0)
        #expect(d.replies == ["You are confirming a DELETE. Reply YES to erase your data, or RESET to keep it. STOP opts out."])
        var asked = ConversationState(step: .askedLoginPasscode, lastActivity: recent)
        let atLogin = try engine.reduce(&asked, Inbound(text: "HELP"), facts: facts(), now: t0)
        #expect(
            atLogin.replies == [
                "You are in the login. Reply with your passcode, comrade, or RESET to go back. Forgot it? Ask an organiser to reset it. STOP opts out."
            ]
        )
        #expect(state.step == .confirmingDelete)
    }

    @Test func passcodeSentAgainAtAPasscodeQuestionIsSaidToBeTheCommandAndCounts() throws {
        // Given Ivan, logged in, asked for his current passcode after PASSCODE, with 3 wrong tries already
        var tried = ivan
        tried.recentFailedLogins = [10, 5, 2].map { t0.addingTimeInterval(-$0 * 60) }
        var f = facts()
        f.accounts = [tried, vera]
        var state = ConversationState(step: .askedCurrentPasscode, loggedInAt: recent, lastActivity: recent)
        // When he sends PASSCODE again, thinking the first was lost (it is checked, and is not his passcode)
        #expect(
            engine.passcodeWork(for: Inbound(text: "PASSCODE"), state: state, account: tried, now: t0) == .verify("PASSCODE", against: storedHash)
        )
        let d = try engine.reduce(&state, Inbound(text: "PASSCODE"), evidence: .verified(false, against: storedHash), facts: f, now: t0)
        // Then he is told it is the command, and it counts as a try: otherwise each case of the word ("Password",
        // "pASSWORD") would be a free guess at a passcode chosen before command words were refused
        #expect(d.replies == ["(PASSCODE alone is the command.) Wrong passcode (4 of 5 tries). " + Copy.retryCurrentPasscode])
        #expect(d.effects.count == 1 && state.step == .askedCurrentPasscode && state.isLoggedIn)
        // And at the login question the same, for PASSWORD
        var login = ConversationState(step: .askedLoginPasscode, lastActivity: recent)
        let again = try engine.reduce(&login, Inbound(text: "password"), evidence: .verified(false, against: storedHash), facts: f, now: t0)
        // (said to work once logged in: "it is the command" invited sending it again, a wrong try each time)
        #expect(again.replies == ["(PASSWORD works once logged in.) Wrong passcode (4 of 5 tries). " + Copy.retryLoginPasscode])
        // (each in one text)
        #expect(Segments.count(d.replies[0]).segments == 1 && Segments.count(again.replies[0]).segments == 1)
        // But a passcode that is such a word (chosen before command words were refused) logs in
        let right = try engine.reduce(&login, Inbound(text: "password"), evidence: .verified(true, against: storedHash), facts: f, now: t0)
        #expect(right.effects == [.loginSucceeded(userId: 1)] && login.isLoggedIn)
        // And a wrong passcode with more words is a plain wrong try
        var other = ConversationState(step: .askedCurrentPasscode, loggedInAt: recent, lastActivity: recent)
        let wrong = try engine.reduce(&other, Inbound(text: "PASSCODE 1917"), evidence: .verified(false, against: storedHash), facts: f, now: t0)
        #expect(wrong.replies[0].hasPrefix("Wrong passcode (4 of 5 tries)"))
    }

    @Test func aLongEmailIsReadBackInOneTextWithoutTheAdvice() throws {
        let long = "olga.ivanova.chair.of.the.collective@village-soviet.example.org"
        var state = ConversationState(step: .askedEmail(first: "Olga", last: "Ivanova"), lastActivity: recent)
        let d = try engine.reduce(&state, Inbound(text: long), facts: facts(registered: false), now: t0)
        #expect(d.replies == ["Email \(long) noted. Choose a passcode of 6 to 64 characters and reply with it."])
        #expect(Segments.count(d.replies[0]).segments == 1)
    }

    @Test func resetAtARegistrationPasscodeQuestionKeepsTheNextTextPrivate() throws {
        // Given someone registering, asked for a passcode or for it again
        let steps: [Step] = [
            .askedPasscode(first: "Olga", last: "Ivanova", email: "olga@example.org"),
            .askedPasscodeAgain(first: "Olga", last: "Ivanova", email: "olga@example.org", pending: pendingHash),
        ]
        for asked in steps {
            var state = ConversationState(step: asked, lastActivity: recent)
            let f = facts(registered: false)
            // When they send RESET (read as "reset my passcode") and then the passcode
            _ = try engine.reduce(&state, Inbound(text: "RESET"), facts: f, now: t0)
            let next = try engine.reduce(&state, Inbound(text: "Sickle77"), facts: f, now: t0)
            // Then the passcode is neither repeated back nor logged
            #expect(next.loggedBody == "[redacted]", "\(asked)")
            #expect(!next.replies.joined().uppercased().contains("SICKLE"), "\(next.replies)")
        }
        // While RESET at a name question leaves the next text as it is
        var naming = ConversationState(step: .askedFirstName, lastActivity: recent)
        _ = try engine.reduce(&naming, Inbound(text: "RESET"), facts: facts(registered: false), now: t0)
        #expect(try engine.reduce(&naming, Inbound(text: "Sickle77"), facts: facts(registered: false), now: t0).loggedBody == nil)
    }

    @Test func helpInAFlowSaysHowToOptOutInOneText() throws {
        let registering: [Step] = [
            .askedFirstName, .askedLastName(first: "Olga"), .askedEmail(first: "Olga", last: "Ivanova"),
            .askedPasscode(first: "Olga", last: "Ivanova", email: "olga@example.org"),
            .askedPasscodeAgain(first: "Olga", last: "Ivanova", email: "olga@example.org", pending: pendingHash),
        ]
        for asked in registering + [.askedLoginPasscode, .askedCurrentPasscode, .askedNewPasscode, .confirmingDelete] {
            let loggedIn = [.askedCurrentPasscode, .askedNewPasscode, .confirmingDelete].contains(asked)
            var state = ConversationState(step: asked, loggedInAt: loggedIn ? recent : nil, lastActivity: recent)
            let d = try engine.reduce(&state, Inbound(text: "HELP"), facts: facts(registered: !registering.contains(asked)), now: t0)
            #expect(d.replies.count == 1 && d.replies[0].hasSuffix(" STOP opts out."), "\(d.replies)")
            #expect(Segments.count(d.replies[0]).segments == 1, "\(d.replies[0].count) characters: \(d.replies[0])")
            #expect(state.step == asked)
        }
    }

    @Test func aFifthWrongCurrentPasscodeLocksTheAccountAndEndsTheLogin() throws {
        // Given Ivan, logged in, with 4 wrong passcodes in the last 15 minutes, asked for his current passcode
        var tried = ivan
        tried.recentFailedLogins = [10, 5, 2, 1].map { t0.addingTimeInterval(-$0 * 60) }
        var f = facts()
        f.accounts = [tried, vera]
        var state = ConversationState(step: .askedCurrentPasscode, loggedInAt: recent, lastActivity: recent)
        // When a fifth wrong one comes
        #expect(engine.passcodeWork(for: Inbound(text: "guess-5"), state: state, account: tried, now: t0) == .verify("guess-5", against: storedHash))
        let d = try engine.reduce(&state, Inbound(text: "guess-5"), evidence: .verified(false, against: storedHash), facts: f, now: t0)
        // Then the account is locked, and the phone is logged out: a phone left logged in cannot keep guessing
        #expect(d.effects == [.loginFailed(userId: 1, recentFailures: [], lockedUntil: t0.addingTimeInterval(900))])
        #expect(state.step == .idle && !state.isLoggedIn)
        #expect(
            d.replies == [
                "Wrong passcode 5 times: you are logged out, and locked until 09:15 UTC. LOGIN then, comrade, or ask an organiser to reset your passcode."
            ]
        )
        #expect(d.loggedBody == "[redacted]")
        // And while locked, the question is not checked at all
        var again = ConversationState(step: .askedCurrentPasscode, loggedInAt: recent, lastActivity: recent)
        var locked = f
        locked.accounts[0].lockedUntil = t0.addingTimeInterval(900)
        #expect(engine.passcodeWork(for: Inbound(text: "guess-6"), state: again, account: locked.accounts[0], now: t0) == nil)
        let refused = try engine.reduce(&again, Inbound(text: "guess-6"), facts: locked, now: t0)
        #expect(refused.effects.isEmpty && !again.isLoggedIn && refused.replies[0].contains("locked until 09:15 UTC"))
    }

    @Test func helpWithMoreWordsFromARegisteredPersonIsNotLogged() throws {
        // An older passcode may be "help me 1917": sent at an expired question, or after "please log in first"
        var expired = ConversationState(step: .askedLoginPasscode, lastActivity: t0.addingTimeInterval(-1801))
        let late = try engine.reduce(&expired, Inbound(text: "help me 1917"), facts: facts(), now: t0)
        #expect(late.loggedBody == "[redacted]")
        var idle = ConversationState(lastActivity: recent)
        #expect(try engine.reduce(&idle, Inbound(text: "reset it 1917"), facts: facts(), now: t0).loggedBody == "[redacted]")
        // while HELP alone, and a stranger's "help me", are kept as sent
        #expect(try engine.reduce(&idle, Inbound(text: "HELP"), facts: facts(), now: t0).loggedBody == nil)
        var stranger = ConversationState(lastActivity: recent)
        #expect(try engine.reduce(&stranger, Inbound(text: "help me"), facts: facts(registered: false), now: t0).loggedBody == nil)
    }

    @Test(
        arguments: [
            ("olga@example.org", "olga@example.org"), ("O.Ivanova+party@mail.example.co.uk", "o.ivanova+party@mail.example.co.uk"),
            ("ольга@пример.рф", "ольга@пример.рф"), ("o'neil@example.org", "o'neil@example.org"), ("(olga@example.org)", "olga@example.org"),
            ("\u{1B}]0;pwned\u{07}m@x.org", nil), ("=1+1&\"@x.org\"&0", nil), ("\"olga\"@example.org", nil), ("olga@exa_mple.org", nil),
            ("olga@-example.org", nil), ("olga@example", nil), (".olga@example.org", "olga@example.org"), ("ol..ga@example.org", nil),
            ("olga@@example.org", nil),
            ("ol\u{202E}ga@example.org", nil), ("olga@example..org", nil),
        ] as [(String, String?)]
    )
    func anEmailIsPlainText(text: String, email: String?) {
        #expect(ConversationEngine.validEmail(text) == email)
    }

    @Test(arguments: ["USERS", "FIND anna", "SEND +14155550123 hello", "BROADCAST Harvest now", "users?"])
    func anAdminCommandFromAMemberOrAStrangerIsAnsweredAndLoggedAsAnUnknownWord(text: String) throws {
        // Given a member logged in, one logged out, a stranger, and members at a confirmation and at questions
        let situations = [
            (ConversationState(loggedInAt: recent, lastActivity: recent), facts()),
            (ConversationState(lastActivity: recent), facts()),
            (ConversationState(lastActivity: recent), facts(registered: false)),
            (ConversationState(step: .confirmingDelete, loggedInAt: recent, lastActivity: recent), facts()),
            (ConversationState(step: .askedLoginPasscode, lastActivity: recent), facts()),
            (ConversationState(step: .askedCurrentPasscode, loggedInAt: recent, lastActivity: recent), facts()),
        ]
        // (as long as the command word as typed: at a passcode question its length matters)
        let nonsense = String("ZQXJVWKQZX".prefix(text.prefix { $0 != " " }.count))
        let wordText = nonsense + text.drop { $0 != " " }
        for (situation, people) in situations {
            // When each texts an admin command, and a word that is no command (a passcode question checks both alike)
            var asAdmin = situation
            var asWord = situation
            let account = try people.account()
            let work = engine.passcodeWork(for: Inbound(text: text), state: situation, account: account, now: t0)
            #expect((work == nil) == (engine.passcodeWork(for: Inbound(text: wordText), state: situation, account: account, now: t0) == nil))
            let evidence: PasscodeEvidence? = work == nil ? nil : .verified(false, against: storedHash)
            let command = try engine.reduce(&asAdmin, Inbound(text: text), evidence: evidence, facts: people, now: t0)
            let word = try engine.reduce(&asWord, Inbound(text: wordText), evidence: evidence, facts: people, now: t0)
            // Then the answers are the same but for the word echoed, and so are what is logged and the state after
            let echoed = command.replies.map { $0.replacingOccurrences(of: Inbound(text: text).command, with: nonsense) }
            #expect(echoed == word.replies, "\(command.replies) against \(word.replies)")
            #expect(command.loggedBody == word.loggedBody && command.effects == word.effects && asAdmin == asWord, "\(situation.step)")
        }
    }

    @Test func theUnknownTextsAfterAnExpiredPasscodeQuestionAreNotLogged() throws {
        // Given a stranger whose registration expired at the passcode question
        var state = ConversationState(
            step: .askedPasscode(first: "Anna", last: "Lee", email: "a@example.org"),
            lastActivity: t0.addingTimeInterval(-3600)
        )
        let stranger = facts(registered: false)
        // When they text the passcode, then its confirmation, after the "timed out" reply
        let first = try engine.reduce(&state, Inbound(text: "Tractor-1917"), facts: stranger, now: t0)
        let second = try engine.reduce(&state, Inbound(text: "Tractor-1917"), facts: stranger, now: t0.addingTimeInterval(20))
        // Then neither is logged nor echoed
        #expect(first.replies[0].hasPrefix("Your registration timed out"))
        for d in [first, second] {
            #expect(d.loggedBody == "[redacted]")
            #expect(!d.replies.joined().contains("1917"))
        }
        #expect(state.step == .idle && state.passcodeMayFollow == true)
        // And HELP, RESET or a picture alone in between do not end it
        for between in [Inbound(text: "HELP"), Inbound(text: "RESET"), Inbound(text: "", numMedia: 1)] {
            _ = try engine.reduce(&state, between, facts: stranger, now: t0.addingTimeInterval(25))
        }
        let third = try engine.reduce(&state, Inbound(text: "Tractor-1917"), facts: stranger, now: t0.addingTimeInterval(30))
        #expect(third.loggedBody == "[redacted]" && !third.replies.joined().contains("1917"))
        // And the first text read as something else ends it: texts after it are kept as sent
        let join = try engine.reduce(&state, Inbound(text: "JOIN"), facts: stranger, now: t0.addingTimeInterval(40))
        #expect(join.loggedBody == nil && state.passcodeMayFollow == nil)
        var idle = ConversationState(lastActivity: t0.addingTimeInterval(40))
        let kept = try engine.reduce(&idle, Inbound(text: "Tractor-1917"), facts: stranger, now: t0.addingTimeInterval(60))
        #expect(kept.loggedBody == nil && kept.replies[0].contains("TRACTOR-1917"))
        // And another session of silence does not end it (the passcode typed after it is no less one)
        var silent = ConversationState(lastActivity: t0.addingTimeInterval(-3600), passcodeMayFollow: true)
        #expect(try engine.reduce(&silent, Inbound(text: "Tractor-1917"), facts: stranger, now: t0).loggedBody == "[redacted]")
        #expect(silent.passcodeMayFollow == true)
        // while an expired question that was not a passcode's does not start it
        var askedEmail = ConversationState(step: .askedEmail(first: "Anna", last: "Lee"), lastActivity: t0.addingTimeInterval(-3600))
        #expect(try engine.reduce(&askedEmail, Inbound(text: "a@example.org"), facts: stranger, now: t0).loggedBody == nil)
        #expect(askedEmail.passcodeMayFollow == nil)
    }

    @Test func aPasscodeMayFollowUntilSomethingStartsForANumberWithNoAccount() throws {
        // Given a number whose account was just deleted (the flag set)
        let stranger = facts(registered: false)
        var state = ConversationState(lastActivity: recent, passcodeMayFollow: true)
        // When it sends passcode-shaped texts, commands a number with no account cannot use among them
        for text in ["help me 1917", "reset 1917x", "start 1917", "messages? 1234", "MESSAGES", "PROFILE", "tractor-2026"] {
            let d = try engine.reduce(&state, Inbound(text: text), facts: stranger, now: t0)
            // Then none is logged or echoed, and the flag stays
            #expect(d.loggedBody == "[redacted]" || ["MESSAGES", "PROFILE"].contains(text), "\(text)")
            #expect(!d.replies.joined().contains("1917") && !d.replies.joined().localizedCaseInsensitiveContains("tractor"), "\(text)")
            #expect(state.passcodeMayFollow == true, "\(text)")
        }
        // And JOIN, which starts something, ends it
        _ = try engine.reduce(&state, Inbound(text: "JOIN"), facts: stranger, now: t0)
        #expect(state.passcodeMayFollow == nil)
    }

    @Test(arguments: [
        "Login:rita-new-secret", "lgoin rita-new-secret", "Logon rita-new-secret", "Log-in rita-new-secret", "Sign in rita-new-secret",
        "Login:12345678", "Loginrita123", "LOGIN-rita-1917", "Signin:rita99", "Log in:rita99",
        // full-width letters, and the words people put before a passcode, apart from it or stuck to it
        "\u{FF2C}\u{FF2F}\u{FF27}\u{FF29}\u{FF2E} rita-new-secret", "PIN rita1917", "pass rita-new-secret", "pw: rita-new-secret",
        "Pwd rita-new-secret", "PIN:rita1917", "pw:rita-secret", "pass=rita-secret", "Password:rita22", "passcode=rita1917",
        "\u{FF30}\u{FF21}\u{FF33}\u{FF33}\u{FF37}\u{FF2F}\u{FF32}\u{FF24} rita-new-secret",
        // stuck with no separator, one letter off, or said in a sentence
        "Passwordrita22", "Passcoderita1917", "Pwdrita22", "Pasword:rita22", "Pasword rita22", "Passowrd rita22",
        "my pin is rita1917", "My password is rita22",
        // after a greeting or a keyword, stuck to a later word, last, with CODE or PINCODE, in a longer text
        "Hi, my password is rita22", "Reset my pin to rita1917", "my password:rita22", "my PIN-1917rita", "1917rita is my pin",
        "my pw is rita22", "Code: 1917rita", "code 1917rita", "PIN-1917rita", "pincode:rita1917", "Pincode rita1917",
        "It's Ivan on my new phone, can you log me in please, my password is rita22, thanks",
    ])
    func aMistypedLoginWithAPasscodeFromANewPhoneIsNeverLogged(_ text: String) throws {
        var state = ConversationState(lastActivity: recent)
        let d = try engine.reduce(&state, Inbound(text: text), facts: facts(registered: false), now: t0)
        #expect(d.loggedBody == "[redacted]")
        #expect(!d.replies.joined().localizedCaseInsensitiveContains("rita"), "\(d.replies)")
    }

    @Test func aWordLikeLoginOrSignUpWithoutAPasscodeIsKept() throws {
        for text in [
            "LOGIN", "Login.", "sign up", "log out", "logout now", "Begin now", "PIN", "pass", "Passover dinner", "pine trees", "Pass-through",
            "Pass?", "Pin's broken", "What's my pin?", "Passwords", "Passwords?", "passwords are hard", "Code red", "code review",
        ] {
            var state = ConversationState(lastActivity: recent)
            #expect(try engine.reduce(&state, Inbound(text: text), facts: facts(registered: false), now: t0).loggedBody == nil, "\(text)")
        }
    }

    @Test func sendToAPlusOneNumberADigitShortSaysWhatIsWrong() throws {
        var state = ConversationState(loggedInAt: recent, lastActivity: recent)
        let reply = try engine.reduce(&state, Inbound(text: "SEND +1415555010 hi"), facts: facts(adminPhone), now: t0).replies.joined()
        #expect(reply.hasPrefix("+1415555010 is neither a phone number nor an email (a +1 number has 10 digits after the 1)."), "\(reply)")
    }

    @Test func aNameOrEmailLikeLoginIsKeptAndALatePasscodeGetsOnlyTheNote() throws {
        var naming = ConversationState(step: .askedLastName(first: "Ivan"), lastActivity: recent)
        #expect(try engine.reduce(&naming, Inbound(text: "Loginov"), facts: facts(registered: false), now: t0).loggedBody == nil)
        var mailing = ConversationState(step: .askedEmail(first: "Ivan", last: "Loginov"), lastActivity: recent)
        #expect(try engine.reduce(&mailing, Inbound(text: "login.ivan@example.org"), facts: facts(registered: false), now: t0).loggedBody == nil)
        // A passcode sent after its question expired gets only the note, whatever it holds ("stop" here)
        var late = ConversationState(step: .askedLoginPasscode, lastActivity: t0.addingTimeInterval(-1801))
        let d = try engine.reduce(&late, Inbound(text: "stop1917x"), facts: facts(), now: t0)
        #expect(d.replies == ["Your login timed out after 30 min of silence, so that text was not used. Reply LOGIN to start again."])
        #expect(d.loggedBody == "[redacted]")
    }

    @Test func stopIsSuggestedOnlyForItsOwnLettersMistyped() throws {
        for (text, hinted) in [
            ("stpo", true), ("nstop", true), ("sotp", true), ("stoo", true), ("sto", true), ("stopp", true), ("step", false), ("shop", false),
            ("top", false), ("post", false), ("spot", false), ("stops", false), ("stomp", false),
        ] {
            var state = ConversationState(loggedInAt: recent, lastActivity: recent)
            let reply = try engine.reduce(&state, Inbound(text: text), facts: facts(), now: t0).replies.joined()
            #expect(reply.contains("Did you mean STOP?") == hinted, "\(text): \(reply)")
        }
    }

    @Test func afterATimeOutGuidanceIsKeptAndTheHintNamesOnlyWhatIsLeftToSend() throws {
        let expired = t0.addingTimeInterval(-1801)
        func reply(_ text: String, _ state: ConversationState, _ f: MemoryFacts, evidence: PasscodeEvidence? = nil) throws -> String {
            var state = state
            return try engine.reduce(&state, Inbound(text: text), evidence: evidence, facts: f, now: t0).replies.joined()
        }
        let registering = ConversationState(step: .askedLastName(first: "Yuri"), lastActivity: expired)
        let stranger = facts(registered: false)
        // A text about opting out, or a command mistyped, still gets that said, after the note
        #expect(try reply("please stop texting me", registering, stranger).contains("To opt out, reply STOP alone"))
        #expect(try reply("MESAGES", registering, stranger).contains("Did you mean MESSAGES?"))
        // YES confirms nothing that timed out, and is no request to subscribe either
        #expect(!(try reply("YES", registering, stranger)).contains("already subscribed"))
        // A LOGIN that succeeds leaves only the second step to name
        let deleting = ConversationState(step: .confirmingDelete, loggedInAt: recent, lastActivity: expired)
        let login = try reply("LOGIN right-passcode", deleting, facts(), evidence: .verified(true, against: storedHash))
        #expect(
            login.hasPrefix("Your DELETE timed out after 30 min of silence and nothing was deleted; send DELETE to start again. Welcome back"),
            "\(login)"
        )
    }

    @Test func aTextStartingWithPasswordIsNeverLoggedNorHintedAt() throws {
        // Passcodes chosen before PASSCODE and PASSWORD were commands may be "password" or "Password!"
        for text in ["password", "Password!", "PASSCODE", "password 1917"] {
            for loggedIn in [false, true] {
                var state = ConversationState(loggedInAt: loggedIn ? recent : nil, lastActivity: recent)
                let d = try engine.reduce(&state, Inbound(text: text), facts: facts(), now: t0)
                #expect(d.loggedBody == "[redacted]", "\(text), logged in: \(loggedIn)")
            }
        }
        // And an unknown text near PASSWORD, redacted, is not told so in the stored reply
        var state = ConversationState(lastActivity: recent)
        let near = try engine.reduce(&state, Inbound(text: "passw0rd"), facts: facts(), now: t0)
        #expect(near.loggedBody == "[redacted]" && !near.replies[0].contains("PASSWORD") && !near.replies[0].contains("PASSCODE"), "\(near.replies)")
        // nor is any text long enough to be a passcode, from someone logged out or logged in (after "already logged
        // in", a passcode may come): "profiles" would say the passcode is near PROFILE
        for text in ["Profile9", "pr0file", "Logout!1", "Mesage me 1917", "Profil!", "(profil)", "profiles", "mesages", "Mesages."] {
            for loggedIn in [false, true] {
                var someone = ConversationState(loggedInAt: loggedIn ? recent : nil, lastActivity: recent)
                let d = try engine.reduce(&someone, Inbound(text: text), facts: facts(), now: t0)
                #expect(d.loggedBody == "[redacted]" && !d.replies[0].contains("Did you mean"), "\(text): \(d.replies)")
            }
        }
        // while a typo too short to be one still gets its hint, logged out or in
        for loggedIn in [false, true] {
            var someone = ConversationState(loggedInAt: loggedIn ? recent : nil, lastActivity: recent)
            let typo = try engine.reduce(&someone, Inbound(text: "stpo"), facts: facts(), now: t0)
            #expect(typo.replies[0].contains("Did you mean STOP?"), "\(typo.replies)")
        }
    }

    @Test func namesEmailsAndMessagesAreStoredComposedButAPasscodeIsHashedAsTyped() throws {
        func scalars(_ s: String?) -> [UInt32] { s.map { $0.unicodeScalars.map(\.value) } ?? [] }
        // Given an é typed as e and a combining accent
        let decomposed = "Rene\u{301}e"
        // Then a name and an email are the composed é (one scalar), as a message's body is
        #expect(scalars(ConversationEngine.validName(decomposed)) == scalars("Ren\u{E9}e"))
        #expect(scalars(ConversationEngine.validEmail("rene\u{301}e@example.fr")) == scalars("ren\u{E9}e@example.fr"))
        #expect(scalars(Inbound(text: "BROADCAST Rally at the cafe\u{301}").rawRemainder(afterWords: 1)) == scalars("Rally at the caf\u{E9}"))
        // while the text a passcode is read from keeps the bytes it came with (passcodes set so still match)
        #expect(scalars(Inbound(text: "Cafe\u{301} 2024").text) == scalars("Cafe\u{301} 2024"))
        let state = ConversationState(step: .askedLoginPasscode, lastActivity: recent)
        let work = engine.passcodeWork(for: Inbound(text: "Cafe\u{301} 2024"), state: state, account: ivan, now: t0)
        guard case .verify(let typed, _)? = work else {
            Issue.record("no passcode check: \(String(describing: work))")
            return
        }
        #expect(scalars(typed) == scalars("Cafe\u{301} 2024"))
        // And a name's trailing full stop goes with the spaces before it, not an initial's; an xn-- ending is a domain
        #expect(ConversationEngine.validName("Peter .") == "Peter" && ConversationEngine.validName("Mary J.") == "Mary J.")
        #expect(ConversationEngine.validName("Smith Jr.") == "Smith Jr." && ConversationEngine.validName("St.") == "St.")
        #expect(ConversationEngine.validEmail("peter@example.xn--p1ai") == "peter@example.xn--p1ai")
    }

    @Test func aYesToAConfirmationThatTimedOutConfirmsNothingAndIsNoOptIn() throws {
        for step in [Step.confirmingDelete, .confirmingBroadcast(text: "Harvest now")] {
            var state = ConversationState(step: step, loggedInAt: t0.addingTimeInterval(-3600), lastActivity: t0.addingTimeInterval(-3600))
            let d = try engine.reduce(&state, Inbound(text: "YES"), facts: facts(adminPhone), now: t0)
            #expect(d.effects.isEmpty && state.step == .idle)
            #expect(d.replies.count == 1 && d.replies[0].contains("timed out") && !d.replies[0].contains("already subscribed"), "\(d.replies)")
        }
    }

    @Test func aPasscodeChangeThatTimesOutSaysThePasscodeIsUnchanged() throws {
        var state = ConversationState(
            step: .askedNewPasscodeAgain(pending: pendingHash),
            loggedInAt: recent,
            lastActivity: t0.addingTimeInterval(-1801)
        )
        let d = try engine.reduce(&state, Inbound(text: "fresh-passcode"), facts: facts(), now: t0)
        #expect(d.effects.isEmpty && state.step == .idle && !state.isLoggedIn)
        #expect(
            d.replies[0].hasPrefix(
                "Your passcode change timed out after 30 min of silence and your passcode is unchanged, so that text was not used. Reply LOGIN, then PASSCODE to start again."
            )
        )
        #expect(d.loggedBody == "[redacted]")
    }

    @Test func helpInAPasscodeChangeSaysWhereItIs() throws {
        var state = ConversationState(step: .askedNewPasscode, loggedInAt: recent, lastActivity: recent)
        let d = try engine.reduce(&state, Inbound(text: "HELP"), facts: facts(), now: t0)
        #expect(
            d.replies == [
                "You are in the passcode change. Choose a new passcode of 6 to 64 characters and reply with it, or RESET to keep the old one. STOP opts out."
            ]
        )
        // And the logged-in HELP names PASSCODE, in one text for an admin too
        var admin = ConversationState(loggedInAt: recent, lastActivity: recent)
        let help = try engine.reduce(&admin, Inbound(text: "HELP"), facts: facts(adminPhone), now: t0)
        #expect(help.replies.count == 1 && help.replies[0].contains("PASSCODE") && help.replies[0].contains("MORE"), "\(help.replies)")
        #expect(Segments.count(help.replies[0]).segments == 1, "\(help.replies)")
    }

    @Test func aLockedMemberIsToldUntilWhenNotToLogIn() throws {
        var locked = facts()
        locked.accounts[0].lockedUntil = t0.addingTimeInterval(600)
        for text in ["MESSAGES", "PASSCODE", "PROFILE"] {
            var state = ConversationState(lastActivity: recent)
            let d = try engine.reduce(&state, Inbound(text: text), facts: locked, now: t0)
            #expect(
                d.replies == [
                    "The account is locked until 09:10 UTC. Try LOGIN again then, comrade, or ask an organiser to reset your passcode."
                ],
                "\(text)"
            )
        }
        // LOGOUT too: "Reply LOGIN" would be refused
        var state = ConversationState(lastActivity: recent)
        let d = try engine.reduce(&state, Inbound(text: "LOGOUT"), facts: locked, now: t0)
        #expect(
            d.replies == [
                "You are not logged in. The account is locked until 09:10 UTC. Try LOGIN again then, comrade, or ask an organiser to reset your passcode."
            ]
        )
        #expect(Segments.count(d.replies[0]).segments == 1)
    }

    @Test func helpOrResetWithAQuestionMarkIsTheKeywordAtEveryRegistrationQuestion() throws {
        let registering: [Step] = [
            .askedFirstName, .askedLastName(first: "Olga"), .askedEmail(first: "Olga", last: "Ivanova"),
            .askedPasscode(first: "Olga", last: "Ivanova", email: "olga@example.org"),
            .askedPasscodeAgain(first: "Olga", last: "Ivanova", email: "olga@example.org", pending: pendingHash),
        ]
        for asked in registering {
            for (loose, keyword) in [("Help?", "HELP"), ("info??", "HELP"), ("Reset?", "RESET"), ("menu?", "RESET")] {
                var expected = ConversationState(step: asked, lastActivity: recent)
                let plain = try engine.reduce(&expected, Inbound(text: keyword), facts: facts(registered: false), now: t0)
                var state = ConversationState(step: asked, lastActivity: recent)
                let d = try engine.reduce(&state, Inbound(text: loose), facts: facts(registered: false), now: t0)
                #expect(d.replies == plain.replies && state == expected, "\(asked) + \(loose): \(d.replies)")
            }
        }
        // (with more words it is still an answer, and is said to be a command: "HELP alone says where you are")
        var state = ConversationState(step: .askedFirstName, lastActivity: recent)
        let more = try engine.reduce(&state, Inbound(text: "Help? me"), facts: facts(registered: false), now: t0)
        #expect(state.step == .askedFirstName && more.replies.count == 1 && !more.replies[0].contains("STOP opts out"), "\(more.replies)")
    }

    @Test func optingBackInSaysTheNextStepInOneText() throws {
        for (registered, next) in [(false, "Reply JOIN to register."), (true, "Reply LOGIN to log in.")] {
            var state = ConversationState(lastActivity: recent)
            let d = try engine.reduce(&state, Inbound(text: "START"), facts: facts(registered: registered, optedOut: true), now: t0)
            #expect(d.replies == ["Welcome back to the collective, comrade! You will get texts again. " + next])
        }
        var loggedIn = ConversationState(loggedInAt: recent, lastActivity: recent)
        let already = try engine.reduce(&loggedIn, Inbound(text: "YES"), facts: facts(), now: t0)
        #expect(already.replies == ["You are already subscribed, comrade. Reply HELP for commands."])
    }

    @Test func aLockedMemberOptingBackInIsToldWhenToLogIn() throws {
        var locked = facts(optedOut: true)
        locked.accounts[0].lockedUntil = t0.addingTimeInterval(600)
        var state = ConversationState(lastActivity: recent)
        let d = try engine.reduce(&state, Inbound(text: "START"), facts: locked, now: t0)
        #expect(d.replies == ["Welcome back to the collective, comrade! You will get texts again. Reply LOGIN after 09:10 UTC."])
    }

    @Test func aPasscodeFromAnOrganiserIsToBeReplacedWhichTheLoginSays() throws {
        var f = facts()
        f.accounts[0].passcodeFromOrganiser = true
        f.accounts[0].firstName = String(repeating: "W", count: 40)
        var state = ConversationState(step: .askedLoginPasscode, lastActivity: recent)
        let d = try engine.reduce(&state, Inbound(text: "right-passcode"), evidence: .verified(true, against: storedHash), facts: f, now: t0)
        #expect(d.replies.count == 1 && d.replies[0].hasSuffix("Reply PASSCODE to replace the passcode an organiser gave you."))
        #expect(Segments.count(d.replies[0]).segments == 1, "\(d.replies)")
        // (one text with 9,999 unread too)
        f.inbox[1] = (1...9_999).map { InboxItem(id: Int64($0), senderName: nil, kind: "broadcast", body: "x", createdAt: t0) }
        var again = ConversationState(step: .askedLoginPasscode, lastActivity: recent)
        let many = try engine.reduce(&again, Inbound(text: "right-passcode"), evidence: .verified(true, against: storedHash), facts: f, now: t0)
        #expect(many.replies[0].contains("9999 unread") && Segments.count(many.replies[0]).segments == 1, "\(many.replies)")
    }

    @Test func oneUnreadMessageIsReadAsIt() throws {
        var f = facts()
        f.inbox[1] = [InboxItem(id: 1, senderName: "Vera Commissar", kind: "direct", body: "Hi", createdAt: t0)]
        var state = ConversationState(step: .askedLoginPasscode, lastActivity: recent)
        let d = try engine.reduce(&state, Inbound(text: "right-passcode"), evidence: .verified(true, against: storedHash), facts: f, now: t0)
        #expect(d.replies == ["Welcome back, comrade Ivan! You have 1 unread message. Reply MESSAGES to read it."])
    }

    @Test func aNameOutsideGSM7IsLeftOutOfGreetingsThatWouldCostTwiceForIt() throws {
        // Given Zoë (ë is not GSM-7), logged out
        var f = facts()
        f.accounts = [account(1, userPhone, first: "Zoë", last: "Łukasiewicz"), vera]
        func reply(_ text: String, _ state: ConversationState, evidence: PasscodeEvidence? = nil) throws -> String {
            var state = state
            return try engine.reduce(&state, Inbound(text: text), evidence: evidence, facts: f, now: t0).replies.joined()
        }
        let loggedOut = ConversationState(lastActivity: recent)
        let loggedIn = ConversationState(loggedInAt: recent, lastActivity: recent)
        let login = ConversationState(step: .askedLoginPasscode, lastActivity: recent)
        let greetings = [
            try reply("right-passcode", login, evidence: .verified(true, against: storedHash)), try reply("HELP", loggedOut),
            try reply("LOGIN", loggedIn), try reply("JOIN", loggedOut), try reply("JOIN", loggedIn),
        ]
        #expect(
            greetings == [
                "Welcome back, comrade! You have 0 unread messages. Reply HELP for commands.",
                "Comrade: reply LOGIN to log in, STOP to opt out. Forgot your passcode? Ask an organiser to reset it.",
                "You are already logged in, comrade. Reply MESSAGES or HELP.",
                "You are already registered, comrade. Reply LOGIN to log in.",
                "You are already registered and logged in, comrade. Reply HELP for commands.",
            ]
        )
        // Then each is one GSM-7 text, while PROFILE, where the name is the point, keeps it
        for text in greetings { #expect(Segments.count(text).encoding == .gsm7, "\(text)") }
        #expect(try reply("PROFILE", loggedIn).contains("Zoë Łukasiewicz"))
        // And a name in GSM-7 is kept in them
        var ivans = loggedOut
        #expect(
            try engine.reduce(&ivans, Inbound(text: "HELP"), facts: facts(), now: t0).replies == [
                "Comrade Ivan: reply LOGIN to log in, STOP to opt out. Forgot your passcode? Ask an organiser to reset it."
            ]
        )
    }

    @Test func helpWhileLockedSaysUntilWhen() throws {
        var locked = facts()
        locked.accounts[0].lockedUntil = t0.addingTimeInterval(600)
        var state = ConversationState(lastActivity: recent)
        let d = try engine.reduce(&state, Inbound(text: "HELP"), facts: locked, now: t0)
        #expect(
            d.replies == [
                "Comrade Ivan: locked until 09:10 UTC after wrong passcodes. LOGIN then, or ask an organiser. STOP opts out."
            ]
        )
        // (one text even with the longest name allowed)
        locked.accounts[0].firstName = String(repeating: "W", count: 40)
        let long = try engine.reduce(&state, Inbound(text: "HELP"), facts: locked, now: t0)
        #expect(long.replies.count == 1 && Segments.count(long.replies[0]).segments == 1, "\(long.replies)")
        // and in the time of the city with the longest name
        let banderas = ConversationEngine(settings: .init(localTime: LocalTime(named: "America/Bahia_Banderas")!))
        let far = try banderas.reduce(&state, Inbound(text: "HELP"), facts: locked, now: t0)
        #expect(far.replies.count == 1 && far.replies[0].contains("03:10 Bahia Banderas time"), "\(far.replies)")
        #expect(Segments.count(far.replies[0]).segments == 1, "\(far.replies)")
        locked.accounts[0].firstName = "Ivan"
        // Once the lock has passed, HELP is as before
        let later = try engine.reduce(&state, Inbound(text: "HELP"), facts: locked, now: t0.addingTimeInterval(601))
        #expect(later.replies == ["Comrade Ivan: reply LOGIN to log in, STOP to opt out. Forgot your passcode? Ask an organiser to reset it."])
        // (one text with the longest name too)
        locked.accounts[0].firstName = String(repeating: "W", count: 40)
        let longer = try engine.reduce(&state, Inbound(text: "HELP"), facts: locked, now: t0.addingTimeInterval(601))
        #expect(longer.replies.count == 1 && Segments.count(longer.replies[0]).segments == 1, "\(longer.replies)")
    }

    @Test func aBroadcastConfirmedAfterTheAdminRoleWasRemovedIsNotSentAndSaysWhy() throws {
        // Given a logged-in member at a broadcast confirmation whose admin role an operator has just removed
        var state = ConversationState(step: .confirmingBroadcast(text: "Harvest"), loggedInAt: recent, lastActivity: recent)
        let d = try engine.reduce(&state, Inbound(text: "YES"), facts: facts(), now: t0)
        #expect(d.effects.isEmpty && state.step == .idle && state.isLoggedIn)
        #expect(d.replies == ["You are no longer an admin, comrade: the broadcast was not sent. Reply HELP for commands."])
    }

    @Test func aTimedOutConfirmationSaysWhatDidNotHappenAndHowToStartAgain() throws {
        var state = ConversationState(
            step: .confirmingBroadcast(text: "Harvest"),
            loggedInAt: t0.addingTimeInterval(-1900),
            lastActivity: t0.addingTimeInterval(-1801)
        )
        let d = try engine.reduce(&state, Inbound(text: "YES"), facts: facts(adminPhone), now: t0)
        // (its YES is not used, and the reply says nothing else: no "Reply LOGIN to log in" after "LOGIN, then BROADCAST")
        #expect(
            d.replies == [
                "Your BROADCAST timed out after 30 min of silence and nothing was sent, so that text was not used. Reply LOGIN, then BROADCAST <text> to start again."
            ]
        )
        #expect(d.effects.isEmpty)
        var deleting = ConversationState(
            step: .confirmingDelete,
            loggedInAt: t0.addingTimeInterval(-1900),
            lastActivity: t0.addingTimeInterval(-1801)
        )
        let e = try engine.reduce(&deleting, Inbound(text: "YES"), facts: facts(), now: t0)
        #expect(
            e.replies == [
                "Your DELETE timed out after 30 min of silence and nothing was deleted, so that text was not used. Reply LOGIN, then DELETE to start again."
            ]
        )
        #expect(e.effects.isEmpty)
    }

    @Test func aNameEndingInAFullStopEndsItsSentence() throws {
        var state = ConversationState(step: .askedFirstName, lastActivity: recent)
        let first = try engine.reduce(&state, Inbound(text: "J."), facts: facts(registered: false), now: t0)
        #expect(first.replies == ["Thank you, J. Reply with your last name."])
        let last = try engine.reduce(&state, Inbound(text: "Smith Jr."), facts: facts(registered: false), now: t0)
        #expect(last.replies == ["Good, comrade J. Smith Jr. Reply with your email address."])
    }

    // MARK: - Input normalisation

    @Test func inputIsTrimmedFoldedAndStraightened() {
        let input = Inbound(text: "  login   “my  pass”  ")
        #expect(input.text == "login \"my pass\"")
        #expect(input.command == "LOGIN")
        #expect(input.argument == "\"my pass\"")
        #expect(input.raw == "login   “my  pass”")
        #expect(Inbound(text: "BROADCAST  It’s  here").rawRemainder(afterWords: 1) == "It’s  here")
        // A NUL, which would cut the text short where SQLite binds it, is dropped
        #expect(Inbound(text: "SEND x Harvest\u{0} at dawn").rawRemainder(afterWords: 2) == "Harvest at dawn")
    }

    @Test(arguments: [("LGOIN", 1), ("MESAGES", 1), ("JOIN", 0), ("", 4), ("ABCD", 4)])
    func editDistanceCountsTranspositionsOnce(_ word: String, _ distance: Int) {
        let target = word == "MESAGES" ? "MESSAGES" : word == "LGOIN" ? "LOGIN" : word == "JOIN" ? "JOIN" : word.isEmpty ? "JOIN" : "WXYZ"
        #expect(editDistance(word, target) == distance)
    }

    @Test(arguments: [("KITTEN", "SITTING", 3), ("ABCDEF", "ABDCEF", 1), ("CA", "ABC", 3), ("ABC", "CA", 3), ("MESSAGES", "", 8), ("ÉTÉ", "ETE", 2)])
    func editDistanceMatchesTheOptimalStringAlignmentTable(_ a: String, _ b: String, _ distance: Int) {
        #expect(editDistance(a, b) == distance)
    }

    @Test(arguments: [
        ("MESAGES", false, "MESSAGES"), ("LGOIN", false, "LOGIN"), ("HELO", false, "HELP"),
        // INFO and INBOX are both one edit away: always the same one (the aliases are tried alphabetically).
        ("INBO", false, "INBOX"),
        ("SNED", false, nil), ("SNED", true, "SEND"), ("BANANA", false, nil),
    ])
    func unknownWordsGetTheSameNearestSuggestionEveryTime(_ word: String, _ isAdmin: Bool, _ suggestion: String?) {
        #expect(ConversationEngine.nearestCommand(to: Array(word), isAdmin: isAdmin) == suggestion)
        let reply = engine.unknownCommand(word, account: nil)
        #expect(reply.hasPrefix("Unknown command \(word), comrade."))
        if !isAdmin { #expect(reply.contains("Did you mean") == (suggestion != nil)) }
    }
}

@Suite("Passcode hashing")
struct PasscodeHasherTests {
    @Test func hashVerifiesTheSamePasscodeOnly() async {
        let hasher = PasscodeHasher(iterations: 1000)
        let h = await hasher.hash("tractor-2026")
        #expect(h.salt.count == 16 && h.hash.count == 32 && h.iterations == 1000)
        #expect(await hasher.verify("tractor-2026", against: h))
        #expect(await !hasher.verify("tractor-2027", against: h))
        let again = await hasher.hash("tractor-2026")
        #expect(again.salt != h.salt && again.hash != h.hash)
    }

    @Test(arguments: [
        PasscodeHash(hash: [], salt: [1], iterations: 1000), PasscodeHash(hash: Array(repeating: 1, count: 32), salt: [1], iterations: 0),
        PasscodeHash(hash: Array(repeating: 1, count: 32), salt: [1], iterations: -5),
        PasscodeHash(hash: Array(repeating: 1, count: 32), salt: [1], iterations: 1_000_000_000_000_000_000),
    ])
    func aDamagedStoredHashMatchesNothingAndTrapsNothing(_ damaged: PasscodeHash) async {
        // PBKDF2 traps on a zero, negative or 64-bit cost, or an empty output: that took the whole server down
        #expect(!damaged.isUsable)
        #expect(await !PasscodeHasher(iterations: 1000).verify("tractor-2026", against: damaged))
    }

    @Test func aNewPasscodeIsHashedOnlyWhenItIsNotTheCurrentOne() async {
        let hasher = PasscodeHasher(iterations: 1000)
        let current = await hasher.hash("tractor-2026")
        #expect(await hasher.perform(.hash("tractor-2026", unlike: current)) == .reused(current))
        guard case .hashed(let changed) = await hasher.perform(.hash("tractor-2027", unlike: current)) else {
            Issue.record("a different passcode was not hashed")
            return
        }
        #expect(changed != current)
        #expect(await hasher.verify("tractor-2027", against: changed))
        #expect(await !hasher.verify("tractor-2026", against: changed))
    }

    @Test func productionCostIsAtLeast600k() {
        #expect(PasscodeHasher().iterations >= 600_000)
    }

    @Test func storedIterationsAreUsedForVerification() async {
        let cheap = await PasscodeHasher(iterations: 10).hash("old-passcode")
        #expect(await PasscodeHasher(iterations: 1000).verify("old-passcode", against: cheap))
    }

    @Test func aBurstWaitsForFreeSlotsInsteadOfTakingEveryCore() async {
        // Given two slots and twelve hashes wanting them at once
        let slots = PasscodeHasher.Slots(2)
        let running = Locked((now: 0, most: 0, done: 0))
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<12 {
                group.addTask {
                    await slots.acquire()
                    running.withLock {
                        $0.now += 1
                        $0.most = max($0.most, $0.now)
                    }
                    try? await Task.sleep(for: .milliseconds(5))
                    running.withLock {
                        $0.now -= 1
                        $0.done += 1
                    }
                    slots.release()
                }
            }
        }
        // Then all of them ran, never more than two at a time, and both slots were used
        #expect(running.current.done == 12)
        #expect(running.current.most == 2)
    }

    @Test func aWaiterThatGivesUpLeavesTheSlotToTheNext() async {
        let slots = PasscodeHasher.Slots(1)
        #expect(await slots.acquire(waitingAtMost: .milliseconds(10)))
        let started = ContinuousClock.now
        #expect(await !slots.acquire(waitingAtMost: .milliseconds(50)))
        #expect(ContinuousClock.now - started >= .milliseconds(50))
        // A patient waiter gets the slot when it is released; the one that gave up does not take it.
        async let patient = slots.acquire(waitingAtMost: .seconds(10))
        try? await Task.sleep(for: .milliseconds(20))
        slots.release()
        #expect(await patient)
        slots.release()
        // One slot, free again: the next acquire gets it at once, the one after waits in vain.
        #expect(await slots.acquire(waitingAtMost: .milliseconds(10)))
        #expect(await !slots.acquire(waitingAtMost: .milliseconds(10)))
    }

    @Test func aPasscodeHashedAtALowerCostIsHashedAgainAtTheConfiguredOneOnARightLogin() async throws {
        // Given Olga, registered by a server whose passcodes cost 1,000 iterations
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        func service(_ iterations: Int) -> ConversationService {
            ConversationService(
                store: store,
                engine: ConversationEngine(settings: .init()),
                hasher: PasscodeHasher(iterations: iterations),
                replyMode: .twiml
            )
        }
        var sid = 0
        func text(_ body: String, to service: ConversationService) async throws -> String {
            sid += 1
            return try await service.handle(
                InboundRecord(messageSid: "SMup\(sid)", from: "+14155550178", to: "+15005550006", body: body),
                now: Date()
            )
            .twiml
        }
        let cheap = service(1000)
        for body in ["JOIN", "Olga", "Ivanova", "olga@example.org", "tractor-2026", "tractor-2026", "LOGOUT"] { _ = try await text(body, to: cheap) }
        func iterations() throws -> Int? { try fetchInt(path, "SELECT passcodeIterations FROM users WHERE phone = '+14155550178'") }
        #expect(try iterations() == 1000)
        // When the server now asks for 2,000, and a wrong passcode comes first
        let dearer = service(2000)
        #expect(try await text("LOGIN tractor-2025", to: dearer).contains("Wrong passcode"))
        try await Task.sleep(for: .milliseconds(200))
        #expect(try iterations() == 1000)
        // Then the right one logs in, and its hash is made again at 2,000 (after the reply)
        #expect(try await text("LOGIN tractor-2026", to: dearer).contains("Welcome back"))
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        while try iterations() != 2000 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(try iterations() == 2000)
        // And the same passcode still logs in, and the failures before it stay forgotten as after any right login
        _ = try await text("LOGOUT", to: dearer)
        #expect(try await text("LOGIN tractor-2026", to: dearer).contains("Welcome back"))
        #expect(try fetchInt(path, "SELECT failedLogins FROM users WHERE phone = '+14155550178'") == 0)
    }

    @Test func anUpgradedHashDoesNotReplaceAPasscodeChangedMeanwhile() async throws {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        let hasher = PasscodeHasher(iterations: 1000)
        let old = await hasher.hash("tractor-2026")
        try await store.writer.write { db in
            try db.execute(
                sql: """
                    INSERT INTO users (phone, firstName, lastName, email, passcodeHash, passcodeSalt, passcodeIterations, createdAt)
                    VALUES ('+14155550179', 'Olga', 'Ivanova', 'olga2@example.org', ?, ?, 1000, '2026-11-25 09:00:00.000')
                    """,
                arguments: [Data(old.hash), Data(old.salt)]
            )
        }
        let upgraded = await PasscodeHasher(iterations: 2000).hash("tractor-2026")
        // A hash that is no longer the stored one (changed by PASSCODE meanwhile) is not replaced
        let other = await hasher.hash("combine-1917")
        #expect(try await !store.upgradePasscodeHash(phone: "+14155550179", verified: other, upgraded: upgraded))
        #expect(try fetchInt(path, "SELECT passcodeIterations FROM users WHERE phone = '+14155550179'") == 1000)
        // While the stored one is
        #expect(try await store.upgradePasscodeHash(phone: "+14155550179", verified: old, upgraded: upgraded))
        #expect(try fetchInt(path, "SELECT passcodeIterations FROM users WHERE phone = '+14155550179'") == 2000)
    }

    @Test func aPasscodeThatFindsNoFreeSlotInTimeIsAnsweredAtOnceAndCanBeSentAgain() async throws {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        let slots = PasscodeHasher.Slots(1)
        let service = ConversationService(
            store: store,
            engine: ConversationEngine(settings: .init()),
            hasher: PasscodeHasher(iterations: 1000, slots: slots),
            replyMode: .twiml,
            passcodeWait: .milliseconds(200)
        )
        func text(_ sid: String, _ body: String) async throws -> String {
            try await service.handle(InboundRecord(messageSid: sid, from: "+14155550177", to: "+15005550006", body: body), now: Date()).twiml
        }
        for (i, body) in ["JOIN", "Olga", "Ivanova", "olga@example.org"].enumerated() { _ = try await text("SM\(i)", body) }
        // Given every hashing slot taken (a burst of logins)
        await slots.acquire()
        let started = ContinuousClock.now
        let busy = try await text("SM10", "tractor-2026")
        // Then the text is answered within its wait, well inside Twilio's 15 s, and the passcode is not logged
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(busy.contains("not checked") && !busy.contains("tractor-2026"), "\(busy)")
        #expect(try fetchRow(path, "SELECT body FROM inbound WHERE messageSid = 'SM10'")?["body"] as String? == "[redacted]")
        // When a slot is free again, the same text goes through: the question was kept
        slots.release()
        #expect(try await text("SM11", "tractor-2026").contains("same passcode again"))
        #expect(try await text("SM12", "tractor-2026").contains("registered and logged in"))
    }

    @Test func aPasscodeTypedAfterItsQuestionWasEndedFromOutsideIsNeverLoggedNorEchoed() async throws {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        let service = ConversationService(
            store: store,
            engine: ConversationEngine(settings: .init()),
            hasher: PasscodeHasher(iterations: 1000),
            replyMode: .twiml
        )
        var sids = 0
        func text(_ phone: String, _ body: String) async throws -> (reply: String, logged: String?) {
            sids += 1
            let sid = "SMend\(sids)"
            let reply = try await service.handle(InboundRecord(messageSid: sid, from: phone, to: "+15005550006", body: body), now: Date()).twiml
            return (reply, try fetchRow(path, "SELECT body FROM inbound WHERE messageSid = '\(sid)'")?["body"])
        }
        func register(_ phone: String) async throws {
            for body in ["JOIN", "Olga", "Ivanova", "olga\(phone.suffix(3))@example.org", "tractor-2026", "tractor-2026"] {
                _ = try await text(phone, body)
            }
        }
        func expectHidden(_ phone: String, _ why: Comment) async throws {
            let (reply, logged) = try await text(phone, "tractor-2026")
            #expect(logged == "[redacted]", why)
            #expect(!reply.localizedCaseInsensitiveContains("tractor"), why)
        }

        // An operator deletes the account while its login question is open
        try await register("+14155550181")
        _ = try await text("+14155550181", "LOGOUT")
        #expect(try await text("+14155550181", "LOGIN").reply.contains("passcode"))
        #expect(try await store.deleteUser(phone: "+14155550181"))
        try await expectHidden("+14155550181", "after users delete at the login question")

        // STOP at the registration's confirmation question, then the confirmation, START, and the confirmation again
        for body in ["JOIN", "Olga", "Ivanova", "olga182@example.org", "tractor-2026"] { _ = try await text("+14155550182", body) }
        #expect(try await text("+14155550182", "STOP").reply == TwiML.empty)
        try await expectHidden("+14155550182", "opted out, at the question STOP ended")
        #expect(try await text("+14155550182", "START").reply.contains("Welcome back"))
        try await expectHidden("+14155550182", "after START")
        // (and the first text that starts something ends it)
        #expect(try await text("+14155550182", "JOIN").reply.contains("first name"))
        #expect(try await text("+14155550182", "RESET").reply.contains("abandoned"))
        #expect(try await text("+14155550182", "tractor-2026").logged == "tractor-2026")

        // An operator's opt-out at the login question
        try await register("+14155550183")
        _ = try await text("+14155550183", "LOGOUT")
        _ = try await text("+14155550183", "LOGIN")
        try await store.setConsent(phone: "+14155550183", optedOut: true, note: "asked by phone")
        try await store.setConsent(phone: "+14155550183", optedOut: false, note: "asked again")
        try await expectHidden("+14155550183", "after an operator's opt-out at the login question")

        // DELETE by text: the YES is logged without its text or fields, and a passcode after it by habit is hidden, as
        // after LOGIN from a number with no account
        try await register("+14155550184")
        _ = try await text("+14155550184", "DELETE")
        #expect(try await text("+14155550184", "YES").reply.contains("erased"))
        try await expectHidden("+14155550184", "after DELETE")
        #expect(try await text("+14155550184", "LOGIN").reply.contains("No comrade is registered"))
        try await expectHidden("+14155550184", "after LOGIN found no account")
        #expect(try fetchInt(path, "SELECT count(*) FROM inbound WHERE \"from\" = '+14155550184' AND body = 'YES'") == 0)
        #expect(try fetchInt(path, "SELECT count(*) FROM inbound WHERE \"from\" = '+14155550184' AND body = '[deleted]' AND params = '[]'") == 8)
        #expect(try fetchInt(path, "SELECT count(*) FROM inbound WHERE body LIKE '%tractor%' AND \"from\" != '+14155550182'") == 0)
    }

    @Test func aDamagedStoredPasscodeTellsTheOperatorWhichNumberAndNeverThePasscode() async throws {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        let logs = InMemoryLogHandler()
        let service = ConversationService(
            store: store,
            engine: ConversationEngine(settings: .init()),
            hasher: PasscodeHasher(iterations: 1000),
            replyMode: .twiml,
            logger: Logger(label: "test", factory: { _ in logs })
        )
        func text(_ sid: String, _ body: String) async throws -> String {
            try await service.handle(InboundRecord(messageSid: sid, from: "+14155550177", to: "+15005550006", body: body), now: Date()).twiml
        }
        for (i, body) in ["JOIN", "Olga", "Ivanova", "olga@example.org", "tractor-2026", "tractor-2026", "LOGOUT"].enumerated() {
            _ = try await text("SM\(i)", body)
        }
        #expect(try await text("SM10", "LOGIN tractor-2026").contains("Welcome back"))
        #expect(logs.entries.isEmpty)
        _ = try await text("SM11", "LOGOUT")
        // Given the stored passcode damaged (no hash left to compare with)
        try executeSQL(path, "UPDATE users SET passcodeHash = x''")
        // When the person sends the right passcode
        let reply = try await text("SM12", "LOGIN tractor-2026")
        // Then it cannot match and counts as a wrong try, and the operator learns which number is stuck, and how to help
        #expect(reply.contains("Wrong passcode (1 of 5 tries)"), "\(reply)")
        let errors = logs.entries.filter { $0.level == .error }
        #expect(errors.count == 1)
        #expect(errors.first?.metadata["a2p.phone"] == "+14155550177")
        #expect(errors.first.map { "\($0.message)".contains("users delete") } == true)
        #expect(!logs.entries.map { "\($0.message) \($0.metadata)" }.joined().contains("tractor-2026"))
    }
}

@Suite("Passcodes never leak")
struct PasscodeRedactionTests {
    @Test(arguments: [
        Step.askedLoginPasscode, .askedPasscode(first: "a", last: "b", email: "c@d.ef"),
        .askedPasscodeAgain(first: "a", last: "b", email: "c@d.ef", pending: pendingHash),
    ])
    func aPasscodeAfterItsQuestionExpiredIsRedactedAndNotEchoed(_ step: Step) throws {
        var state = ConversationState(step: step, lastActivity: t0.addingTimeInterval(-1801))
        let d = try engine.reduce(&state, Inbound(text: "hunter22secret"), facts: facts(), now: t0)
        #expect(d.loggedBody == "[redacted]")
        #expect(!d.replies.joined().lowercased().contains("hunter22"))
        #expect(d.replies.joined().contains("timed out"))
    }

    @Test(arguments: [Step.askedFirstName, .askedEmail(first: "a", last: "b"), .confirmingDelete, .idle])
    func loginWithAnArgumentIsAlwaysRedacted(_ step: Step) throws {
        var state = ConversationState(step: step, loggedInAt: step == .confirmingDelete ? recent : nil, lastActivity: recent)
        let d = try engine.reduce(&state, Inbound(text: "LOGIN hunter22secret"), facts: facts(), now: t0)
        #expect(d.loggedBody == "[redacted]")
        #expect(!d.replies.joined().lowercased().contains("hunter22"))
    }

    @Test(arguments: [Step.confirmingDelete, .confirmingBroadcast(text: "Harvest")])
    func anythingButYesAtAConfirmationIsRedacted(_ step: Step) throws {
        let f = step == .confirmingDelete ? facts() : facts(adminPhone)
        var state = ConversationState(step: step, loggedInAt: recent, lastActivity: recent)
        let d = try engine.reduce(&state, Inbound(text: "hunter22secret"), facts: f, now: t0)
        #expect(d.loggedBody == "[redacted]" && d.effects.isEmpty && state.step == .idle)
        #expect(!d.replies.joined().lowercased().contains("hunter22"))
        var confirming = ConversationState(step: step, loggedInAt: recent, lastActivity: recent)
        let yes = try engine.reduce(&confirming, Inbound(text: "yes"), facts: f, now: t0)
        #expect(yes.loggedBody == nil && yes.effects.count == 1)
    }

    @Test func keywordsAtAPasscodePromptAreLoggedAsSent() throws {
        var state = ConversationState(step: .askedLoginPasscode, lastActivity: recent)
        #expect(try engine.reduce(&state, Inbound(text: "HELP"), facts: facts(), now: t0).loggedBody == nil)
    }
}
