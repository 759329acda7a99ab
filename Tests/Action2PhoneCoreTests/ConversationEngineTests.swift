import Foundation
import Testing
import TwilioKit

@testable import Action2PhoneCore

/// The states a phone can be in, each with the facts that go with it.
struct Situation: Sendable, CustomTestStringConvertible {
    var name: String
    var state: ConversationState
    var phone: String = userPhone
    var registered = true
    var optedOut = false
    var testDescription: String { name }

    var facts: MemoryFacts { Action2PhoneCoreTests.facts(phone, registered: registered, optedOut: optedOut) }
}

let recent = t0.addingTimeInterval(-60)

let situations: [Situation] = [
    .init(name: "unregistered", state: ConversationState(lastActivity: recent), registered: false),
    .init(name: "registered, logged out", state: ConversationState(lastActivity: recent)),
    .init(name: "logged in", state: ConversationState(loggedInAt: recent, lastActivity: recent)),
    .init(name: "admin logged in", state: ConversationState(loggedInAt: recent, lastActivity: recent), phone: adminPhone),
    .init(name: "asked first name", state: ConversationState(step: .askedFirstName, lastActivity: recent), registered: false),
    .init(name: "asked last name", state: ConversationState(step: .askedLastName(first: "Olga"), lastActivity: recent), registered: false),
    .init(name: "asked email", state: ConversationState(step: .askedEmail(first: "Olga", last: "Ivanova"), lastActivity: recent), registered: false),
    .init(
        name: "asked passcode",
        state: ConversationState(step: .askedPasscode(first: "Olga", last: "Ivanova", email: "olga@example.org"), lastActivity: recent),
        registered: false
    ),
    .init(
        name: "asked passcode again",
        state: ConversationState(
            step: .askedPasscodeAgain(first: "Olga", last: "Ivanova", email: "olga@example.org", pending: pendingHash),
            lastActivity: recent
        ),
        registered: false
    ),
    .init(name: "asked login passcode", state: ConversationState(step: .askedLoginPasscode, lastActivity: recent)),
    .init(name: "asked current passcode", state: ConversationState(step: .askedCurrentPasscode, loggedInAt: recent, lastActivity: recent)),
    .init(name: "asked new passcode", state: ConversationState(step: .askedNewPasscode, loggedInAt: recent, lastActivity: recent)),
    .init(
        name: "asked new passcode again",
        state: ConversationState(step: .askedNewPasscodeAgain(pending: pendingHash), loggedInAt: recent, lastActivity: recent)
    ),
    .init(name: "confirming delete", state: ConversationState(step: .confirmingDelete, loggedInAt: recent, lastActivity: recent)),
    .init(
        name: "confirming broadcast",
        state: ConversationState(step: .confirmingBroadcast(text: "Harvest"), loggedInAt: recent, lastActivity: recent),
        phone: adminPhone
    ),
    .init(name: "opted out", state: ConversationState(lastActivity: recent), optedOut: true),
    // The operator opted the number out (action2phone users opt-out) while a question was open.
    .init(
        name: "opted out while confirming delete",
        state: ConversationState(step: .confirmingDelete, loggedInAt: recent, lastActivity: recent),
        optedOut: true
    ),
]

let inputs = [
    "JOIN", "REGISTER", "SIGNUP", "LOGIN", "LOGIN wrong-passcode", "LOGOUT", "MESSAGES", "INBOX", "MORE", "PROFILE", "ME", "DELETE",
    "SEND +14155550100 hi", "BROADCAST hello", "USERS", "FIND ivan", "HELP", "INFO", "?", "RESET", "MENU", "START", "UNSTOP", "YES",
    "STOP", "stop", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "Petrov", "MESAGES", "", "hello",
    "PASSCODE", "password", "PASSCODE right-passcode", "right-passcode",
]

@Suite("Conversation engine: every state × every input")
struct ConversationMatrixTests {
    static let cases: [(Situation, String)] = situations.flatMap { s in inputs.map { (s, $0) } }

    @Test(arguments: cases)
    func invariantsHold(_ situation: Situation, _ text: String) throws {
        var state = situation.state
        let input = Inbound(text: text)
        let evidence = engine.passcodeWork(for: input, state: state, account: try situation.facts.account(), now: t0).map(fakeEvidence)
        let decision = try engine.reduce(&state, input, evidence: evidence, facts: situation.facts, now: t0)
        let keyword = text.uppercased()

        if optOutWords.contains(keyword) {
            // The opt-out layer comes before any state: silent, logged out, flow dropped.
            #expect(decision.replies.isEmpty)
            #expect(state.step == .idle && !state.isLoggedIn)
            // Every opt-out is logged, a repeated one too (the consent log keeps each request).
            #expect(decision.effects == [.optOut(text: text)])
            return
        }
        if situation.optedOut {
            // Nothing is texted to an opted-out number except the welcome back on START/UNSTOP/YES.
            if ["START", "UNSTOP", "YES"].contains(keyword) {
                #expect(decision.effects == [.optIn(text: text)])
                #expect(decision.replies.count == 1)
            } else {
                #expect(decision.replies.isEmpty)
                #expect(decision.effects.isEmpty)
            }
            return
        }
        // Every other input gets exactly one reply: GSM-7, within one TwiML message, saying what to send next.
        #expect(decision.replies.count == 1)
        for reply in decision.replies {
            #expect(Segments.count(reply).encoding == .gsm7, "\(reply)")
            #expect(reply.utf16.count <= 1600)
            #expect(reply.range(of: "reply", options: .caseInsensitive) != nil || reply.contains("Reply"), "no next step in: \(reply)")
            #expect(suggestedOptOutWords(reply).isEmpty, "a reply someone may echo names an opt-out word: \(reply)")
        }
        if ["HELP", "INFO", "?"].contains(keyword) {
            #expect(state.step == situation.state.step)
            #expect(state.isLoggedIn == situation.state.isLoggedIn)
        }
        if ["RESET", "MENU"].contains(keyword) {
            #expect(state.step == .idle)
            #expect(state.isLoggedIn == situation.state.isLoggedIn)
        }
        // A passcode, inline or as an answer, is never logged. (Where a new passcode is asked, a greeting is HELP: no
        // new passcode can start with a command word.)
        let asksNew = situation.state.step.isPasscodeChange && situation.state.step != .askedCurrentPasscode
        let greeting = asksNew && Command(word: keyword) == .help
        if situation.state.step.expectsPasscode && !["HELP", "INFO", "?", "RESET", "MENU", "START", "UNSTOP"].contains(keyword) && !greeting
            && !text.isEmpty
        {
            #expect(decision.loggedBody == "[redacted]")
        }
        if (text.hasPrefix("LOGIN ") || text.hasPrefix("PASSCODE ")) && situation.state.step == .idle {
            #expect(decision.loggedBody == "[redacted]")
        }
        #expect(state.lastActivity == t0)
    }

    /// Opt-out words in `reply` other than STOP written as the command: a person who answers "RESET to cancel" with
    /// "cancel" is opted out by Twilio, whatever the bot meant.
    func suggestedOptOutWords(_ reply: String) -> [String] {
        reply.split(whereSeparator: { !$0.isLetter }).map(String.init).filter { optOutWords.contains($0.uppercased()) && $0 != "STOP" }
    }

    /// What the hasher would answer: hashing gives `pendingHash`; only `right-passcode` verifies.
    func fakeEvidence(_ work: PasscodeWork) -> PasscodeEvidence {
        switch work {
        case .hash: .hashed(pendingHash)
        case .verify(let passcode, let against): .verified(passcode == "right-passcode", against: against)
        }
    }
}
