// SPDX-License-Identifier: Apache-2.0

/// Why a Twilio webhook could not be decoded.
public enum WebhookDecodingError: Error, Equatable, CustomStringConvertible {
    /// A field every webhook of this kind carries is absent or empty.
    case missingField(String)
    /// A message SID with more after it (`MessageSid.isExtended`).
    case extendedSid(String)
    /// A field longer than any real one (`WebhookLimits`), in bytes.
    case tooLong(String, limit: Int)
    /// A field that names a message, an address or a status with a control character (a line break) in it.
    case controlCharacter(String)

    public var description: String {
        switch self {
        case .missingField(let name): "missing \(name)"
        case .extendedSid(let name): "\(name) has more after its 34-character SID: a signed request's fields run together"
        case .tooLong(let name, let limit): "\(name) is longer than \(limit) bytes"
        case .controlCharacter(let name): "\(name) has a control character in it"
        }
    }
}

/// The longest values taken for the fields that name a message, its ends and its status, in UTF-8 bytes: a SID is 34
/// characters, an address (`+14155550100`, `whatsapp:+…`, a short code, an RCS agent's id) far shorter than 256, a
/// status a word (`undelivered`). A longer one is refused rather than stored as a new message or a new number; so is
/// one with a control character in it, which no real one has and which would break the log line it is written to.
public enum WebhookLimits {
    public static let sid = 64
    public static let address = 256
    public static let status = 32

    static func check(_ name: String, _ value: String, limit: Int) throws(WebhookDecodingError) {
        if value.utf8.count > limit { throw .tooLong(name, limit: limit) }
        if value.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) { throw .controlCharacter(name) }
    }
}

/// Twilio's message SIDs: `SM` or `MM` and 32 lower-case hex digits (twilio.md §3).
public enum MessageSid {
    /// Whether `sid` is a message SID with more after it. Twilio signs names and values run together, so a captured
    /// `MessageSid=SMx…&NumMedia=0` and a forged `MessageSid=SMx…NumMedia0` carry the same signature: a later
    /// field folded into the SID would make a replay look new to the MessageSid check. Real SIDs are exactly 34
    /// characters; any other value (a test's `SM1`) is taken as it is, as SPEC's tolerant decoding asks.
    public static func isExtended(_ sid: String) -> Bool {
        let utf8 = sid.utf8
        guard utf8.count > 34, utf8.starts(with: "SM".utf8) || utf8.starts(with: "MM".utf8) else { return false }
        return utf8.dropFirst(2).prefix(32).allSatisfy {
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0)
        }
    }
}

/// Twilio's "a message comes in" webhook, decoded tolerantly: only `MessageSid`, `From` and `To` are
/// required, everything else is an optional string, and every field received is kept in `fields`.
public struct IncomingMessage: Sendable, Equatable {
    public var messageSid: String
    public var from: String
    public var to: String
    /// The text; empty when the message had only media.
    public var body: String
    public var accountSid: String?
    public var messagingServiceSid: String?
    public var numMedia: Int
    public var numSegments: Int?
    /// `STOP`, `START` or `HELP` when Advanced Opt-Out matched a keyword.
    public var optOutType: String?
    /// Every field as received, unknown ones included (they count in the signature).
    public var fields: [FormField]

    public init(fields: [FormField]) throws(WebhookDecodingError) {
        func first(_ name: String) -> String? { fields.first { $0.name == name }?.value }
        func required(_ name: String) throws(WebhookDecodingError) -> String {
            guard let v = first(name), !v.isEmpty else { throw .missingField(name) }
            return v
        }
        self.messageSid = try required("MessageSid")
        if MessageSid.isExtended(messageSid) { throw .extendedSid("MessageSid") }
        try WebhookLimits.check("MessageSid", messageSid, limit: WebhookLimits.sid)
        self.from = try required("From")
        try WebhookLimits.check("From", from, limit: WebhookLimits.address)
        self.to = try required("To")
        try WebhookLimits.check("To", to, limit: WebhookLimits.address)
        self.body = first("Body") ?? ""
        self.accountSid = first("AccountSid")
        self.messagingServiceSid = first("MessagingServiceSid")
        self.numMedia = first("NumMedia").flatMap { Int($0) } ?? 0
        self.numSegments = first("NumSegments").flatMap { Int($0) }
        self.optOutType = first("OptOutType")
        self.fields = fields
    }

    /// The first value of a field, or `nil`.
    public subscript(field name: String) -> String? {
        fields.first { $0.name == name }?.value
    }
}

/// A message status callback: `MessageSid` and `MessageStatus`, with the error code on failure.
public struct StatusCallback: Sendable, Equatable {
    public var messageSid: String
    public var messageStatus: String
    public var accountSid: String?
    public var errorCode: Int?
    public var errorMessage: String?
    public var fields: [FormField]

    public init(fields: [FormField]) throws(WebhookDecodingError) {
        func first(_ name: String) -> String? { fields.first { $0.name == name }?.value }
        guard let sid = first("MessageSid") ?? first("SmsSid"), !sid.isEmpty else { throw .missingField("MessageSid") }
        if MessageSid.isExtended(sid) { throw .extendedSid("MessageSid") }
        try WebhookLimits.check("MessageSid", sid, limit: WebhookLimits.sid)
        guard let status = first("MessageStatus") ?? first("SmsStatus"), !status.isEmpty else {
            throw .missingField("MessageStatus")
        }
        try WebhookLimits.check("MessageStatus", status, limit: WebhookLimits.status)
        self.messageSid = sid
        self.messageStatus = status.lowercased()
        self.accountSid = first("AccountSid")
        self.errorCode = first("ErrorCode").flatMap { Int($0) }
        self.errorMessage = first("ErrorMessage")
        self.fields = fields
    }
}
