// SPDX-License-Identifier: Apache-2.0
import Foundation

/// A registered person as operators see them (`users list|show|find`). The JSON field names are SPEC §6's.
public struct UserRecord: Sendable, Equatable, Encodable {
    public var id: Int64
    public var phone: String
    public var firstName: String
    public var lastName: String
    public var email: String
    public var role: Role
    public var optedOut: Bool
    public var suppressed: Bool
    public var createdAt: Date
    public var lastSeenAt: Date?
    public var unread: Int
    public var locked: Bool
    /// Not in the JSON: shown in tables.
    public var lockedUntil: Date?

    enum CodingKeys: String, CodingKey {
        case id, phone, firstName, lastName, email, role, optedOut, suppressed, createdAt, lastSeenAt, unread, locked
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(phone, forKey: .phone)
        try c.encode(firstName, forKey: .firstName)
        try c.encode(lastName, forKey: .lastName)
        try c.encode(email, forKey: .email)
        try c.encode(role, forKey: .role)
        try c.encode(optedOut, forKey: .optedOut)
        try c.encode(suppressed, forKey: .suppressed)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(lastSeenAt, forKey: .lastSeenAt)  // null when never seen
        try c.encode(unread, forKey: .unread)
        try c.encode(locked, forKey: .locked)
    }
}

/// A number's consent state, whoever it belongs to, and its latest change (`action2phone users show` on a number
/// no one registered with: one that opted out and never registered, or whose owner deleted their account).
public struct NumberConsent: Sendable, Equatable {
    public var optedOut: Bool
    public var suppressed: Bool
    /// `optOut`, `optIn`, `suppress` or `unsuppress`; by `keyword`, `twilio` or `operator`.
    public var lastAction: String
    public var lastSource: String
    public var lastChange: Date
}

/// Which users `users list` shows.
public struct UserFilter: Sendable {
    public var optedOut = false
    public var admins = false
    public var limit = 1000
    public init(optedOut: Bool = false, admins: Bool = false, limit: Int = 1000) {
        self.optedOut = optedOut
        self.admins = admins
        self.limit = limit
    }
}

/// An operator's change to an outbox row that cannot be made.
public struct OutboxRetryRefusal: Sendable, Equatable {
    public var id: Int64
    public var reason: String
}
