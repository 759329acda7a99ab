// SPDX-License-Identifier: Apache-2.0
import Foundation

/// What the bot remembers about one phone between texts: the pending question with its answers so far,
/// and the login. Stored as JSON per phone; expires after the session TTL of silence.
public struct ConversationState: Codable, Sendable, Equatable {
    public var step: Step
    public var login: Login?
    public var lastActivity: Date?

    public init(step: Step = .idle, login: Login? = nil, lastActivity: Date? = nil) {
        self.step = step
        self.login = login
        self.lastActivity = lastActivity
    }
}

/// A logged-in session.
public struct Login: Codable, Sendable, Equatable {
    public var userId: Int64
    public var since: Date
    public init(userId: Int64, since: Date) {
        self.userId = userId
        self.since = since
    }
}

/// The question the bot is waiting for an answer to.
public enum Step: Codable, Sendable, Equatable {
    case idle
}

/// A change to stored data that a conversation step asks for; the store applies it in the step's transaction.
public enum Effect: Sendable, Equatable {
    /// The number opts out (consent log source `keyword`).
    case optOut(text: String)
    /// The number opts back in.
    case optIn(text: String)
}

/// Read-only facts the conversation may consult while deciding, read inside the step's transaction.
public protocol ConversationFacts {
    /// The phone the text came from.
    var phone: String { get }
    /// Whether the phone has opted out.
    func isOptedOut() throws -> Bool
}
