// SPDX-License-Identifier: Apache-2.0
import Foundation

/// What the bot remembers about one phone between texts: the pending question with its answers so far,
/// and the login. Stored as JSON per phone; both expire after the session TTL of silence.
public struct ConversationState: Codable, Sendable, Equatable {
    public var step: Step
    /// When the phone logged in; `nil` when logged out. The account is the one registered to the phone.
    public var loggedInAt: Date?
    public var lastActivity: Date?
    /// Set when the texts that follow may be a passcode with no question open to take it: a passcode question expired
    /// unanswered or was ended from outside (STOP, an operator's opt-out or deletion), the person's account was
    /// deleted, or LOGIN found no account (a deleted person's habit). Until a text starts or answers something (a
    /// command, an answer), the unknown texts in between are never logged or echoed.
    /// `nil` rather than `false`, so that the stored state of everyone else stays as it was. Stored under its first
    /// name, `passcodeQuestionExpired`.
    public var passcodeMayFollow: Bool?

    enum CodingKeys: String, CodingKey {
        case step, loggedInAt, lastActivity
        case passcodeMayFollow = "passcodeQuestionExpired"
    }

    public init(step: Step = .idle, loggedInAt: Date? = nil, lastActivity: Date? = nil, passcodeMayFollow: Bool? = nil) {
        self.step = step
        self.loggedInAt = loggedInAt
        self.lastActivity = lastActivity
        self.passcodeMayFollow = passcodeMayFollow
    }

    public var isLoggedIn: Bool { loggedInAt != nil }

    /// A fresh state, for when the login and any question are ended from outside the conversation (STOP, an operator's
    /// opt-out, Twilio reporting the number opted out): a passcode question ended so leaves `passcodeMayFollow` set.
    public func reset(lastActivity: Date?) -> ConversationState {
        ConversationState(lastActivity: lastActivity, passcodeMayFollow: step.expectsPasscode || passcodeMayFollow == true ? true : nil)
    }
}

/// The question the bot is waiting for an answer to.
public enum Step: Codable, Sendable, Equatable {
    case idle
    case askedFirstName
    case askedLastName(first: String)
    case askedEmail(first: String, last: String)
    case askedPasscode(first: String, last: String, email: String)
    /// The first passcode, already hashed: the confirmation is verified against it.
    case askedPasscodeAgain(first: String, last: String, email: String, pending: PasscodeHash)
    case askedLoginPasscode
    /// PASSCODE: the current passcode first, then the new one twice (the first, hashed, checks the second).
    case askedCurrentPasscode
    case askedNewPasscode
    case askedNewPasscodeAgain(pending: PasscodeHash)
    case confirmingDelete
    case confirmingBroadcast(text: String)

    /// The flow this step belongs to, as the bot names it to people.
    var flowName: String? {
        switch self {
        case .idle: nil
        case .askedFirstName, .askedLastName, .askedEmail, .askedPasscode, .askedPasscodeAgain: "registration"
        case .askedLoginPasscode: "login"
        case .askedCurrentPasscode, .askedNewPasscode, .askedNewPasscodeAgain: "passcode change"
        case .confirmingDelete: "DELETE"
        case .confirmingBroadcast: "BROADCAST"
        }
    }

    /// The commands that start this flow again once it timed out (the login has timed out with it): LOGIN first,
    /// for the flows of someone logged in, unless they have logged in again since.
    func restartCommand(loggedIn: Bool) -> String {
        let login = loggedIn ? "" : "LOGIN, then "
        return switch self {
        case .idle, .askedFirstName, .askedLastName, .askedEmail, .askedPasscode, .askedPasscodeAgain: "JOIN"
        case .askedLoginPasscode: "LOGIN"
        case .askedCurrentPasscode, .askedNewPasscode, .askedNewPasscodeAgain: login + "PASSCODE"
        case .confirmingDelete: login + "DELETE"
        case .confirmingBroadcast: login + "BROADCAST <text>"
        }
    }

    /// What did not happen because this flow timed out, when that is worth saying.
    var timedOutConsequence: String? {
        switch self {
        case .confirmingDelete: "nothing was deleted"
        case .confirmingBroadcast: "nothing was sent"
        case .askedCurrentPasscode, .askedNewPasscode, .askedNewPasscodeAgain: "your passcode is unchanged"
        default: nil
        }
    }

    /// Whether the step waits for a YES.
    var isConfirmation: Bool {
        switch self {
        case .confirmingDelete, .confirmingBroadcast: true
        default: false
        }
    }

    /// What a command sent instead of the answer says first.
    var cancelledNote: String? {
        switch self {
        case .confirmingDelete: "Deletion cancelled: your data stays."
        case .confirmingBroadcast: "Broadcast cancelled."
        case .askedCurrentPasscode, .askedNewPasscode, .askedNewPasscodeAgain: "Passcode change cancelled: your passcode is unchanged."
        default: nil
        }
    }

    /// Whether the step is one of PASSCODE's questions.
    var isPasscodeChange: Bool {
        switch self {
        case .askedCurrentPasscode, .askedNewPasscode, .askedNewPasscodeAgain: true
        default: false
        }
    }

    /// Whether the step expects a passcode, so that the text must never be logged.
    var expectsPasscode: Bool {
        switch self {
        case .askedPasscode, .askedPasscodeAgain, .askedLoginPasscode, .askedCurrentPasscode, .askedNewPasscode, .askedNewPasscodeAgain: true
        default: false
        }
    }
}

/// A PBKDF2-HMAC-SHA256 hash of a passcode, with its salt and cost.
public struct PasscodeHash: Codable, Sendable, Equatable {
    public var hash: [UInt8]
    public var salt: [UInt8]
    public var iterations: Int

    public init(hash: [UInt8], salt: [UInt8], iterations: Int) {
        self.hash = hash
        self.salt = salt
        self.iterations = iterations
    }
}
