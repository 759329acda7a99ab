// SPDX-License-Identifier: Apache-2.0
import Foundation

/// A change to stored data that a conversation step asks for; the store applies it in the step's transaction.
public enum Effect: Sendable, Equatable {
    /// The number opts out (consent log source `keyword`).
    case optOut(text: String)
    /// The number opts back in (consent log source `keyword`).
    case optIn(text: String)
    /// A new account for the texting phone.
    case register(Registration)
    /// A wrong passcode: when the wrong passcodes still inside the window were sent (this one last), or the
    /// lock this one set (and no failures kept).
    case loginFailed(userId: Int64, recentFailures: [Date], lockedUntil: Date?)
    /// A right passcode: failures are forgotten.
    case loginSucceeded(userId: Int64)
    /// PASSCODE: the new passcode replaces the old one (failures are forgotten, as after a right passcode).
    case changePasscode(userId: Int64, passcode: PasscodeHash)
    /// Inbox messages shown, now read.
    case markRead([Int64])
    /// A direct message: into the recipient's inbox, and texted unless they opted out or are suppressed.
    case sendDirect(recipientId: Int64, senderId: Int64?, body: String)
    /// A broadcast: into every registered person's inbox, and texted to each one who can receive it.
    case broadcast(senderId: Int64?, body: String)
    /// The account is erased; only what opt-out compliance needs is kept.
    case deleteAccount(userId: Int64)
}

/// A registration, complete and validated.
public struct Registration: Sendable, Equatable {
    public var firstName: String
    public var lastName: String
    public var email: String
    public var passcode: PasscodeHash
    public var role: Role
}

/// What a person may do.
public enum Role: String, Sendable, Codable, Equatable {
    case user, admin
}

/// A registered person, as the conversation sees them.
public struct Account: Sendable, Equatable {
    public var id: Int64
    public var phone: String
    public var firstName: String
    public var lastName: String
    public var email: String
    public var role: Role
    public var createdAt: Date
    public var passcode: PasscodeHash
    /// When the wrong passcodes not yet forgotten were sent, oldest first.
    public var recentFailedLogins: [Date]
    public var lockedUntil: Date?
    /// The passcode is one an organiser gave (`users reset-passcode`), not yet replaced with PASSCODE.
    public var passcodeFromOrganiser: Bool

    public init(
        id: Int64,
        phone: String,
        firstName: String,
        lastName: String,
        email: String,
        role: Role = .user,
        createdAt: Date,
        passcode: PasscodeHash,
        recentFailedLogins: [Date] = [],
        lockedUntil: Date? = nil,
        passcodeFromOrganiser: Bool = false
    ) {
        self.id = id
        self.phone = phone
        self.firstName = firstName
        self.lastName = lastName
        self.email = email
        self.role = role
        self.createdAt = createdAt
        self.passcode = passcode
        self.recentFailedLogins = recentFailedLogins
        self.lockedUntil = lockedUntil
        self.passcodeFromOrganiser = passcodeFromOrganiser
    }

    public var fullName: String { firstName + " " + lastName }
}

/// A message in someone's inbox.
public struct InboxItem: Sendable, Equatable {
    public var id: Int64
    public var senderName: String?
    public var kind: String
    public var body: String
    public var createdAt: Date

    public init(id: Int64, senderName: String?, kind: String, body: String, createdAt: Date) {
        self.id = id
        self.senderName = senderName
        self.kind = kind
        self.body = body
        self.createdAt = createdAt
    }
}

/// The counts `USERS` reports.
public struct UserCounts: Sendable, Equatable {
    public var registered: Int
    public var optedOut: Int
    public var admins: Int
    public var loggedIn: Int
    public init(registered: Int, optedOut: Int, admins: Int, loggedIn: Int) {
        self.registered = registered
        self.optedOut = optedOut
        self.admins = admins
        self.loggedIn = loggedIn
    }
}

/// Who a broadcast reaches.
public struct BroadcastAudience: Sendable, Equatable {
    /// Everyone registered: each gets the message in their inbox.
    public var registered: Int
    /// Those of them who are neither opted out nor suppressed: each is texted.
    public var textable: Int
    public init(registered: Int, textable: Int) {
        self.registered = registered
        self.textable = textable
    }
}

/// A number's consent state.
public struct Consent: Sendable, Equatable {
    public var optedOut: Bool
    public var suppressed: Bool
    public init(optedOut: Bool = false, suppressed: Bool = false) {
        self.optedOut = optedOut
        self.suppressed = suppressed
    }
}

/// Read-only facts the conversation consults while deciding, read inside the step's transaction.
public protocol ConversationFacts {
    /// The phone the text came from.
    var phone: String { get }
    /// The consent state of any number.
    func consent(of phone: String) throws -> Consent
    /// The account registered to `phone`.
    func account() throws -> Account?
    /// The account with this E.164 phone or (case-insensitive) email.
    func account(phoneOrEmail: String) throws -> Account?
    func isEmailRegistered(_ email: String) throws -> Bool
    /// Unread inbox messages, oldest first.
    func unreadMessages(userId: Int64, limit: Int) throws -> [InboxItem]
    func unreadCount(userId: Int64) throws -> Int
    /// Counts for `USERS`; "logged in" means logged in and active since `activeSince`.
    func userCounts(activeSince: Date) throws -> UserCounts
    /// Up to `limit` people whose name, email or phone contains `text`.
    func findUsers(matching text: String, limit: Int) throws -> [Account]
    func broadcastAudience() throws -> BroadcastAudience
}

extension ConversationFacts {
    /// The consent state of the texting phone.
    public func consent() throws -> Consent { try consent(of: phone) }
}
