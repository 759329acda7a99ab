// SPDX-License-Identifier: Apache-2.0

/// Why a Twilio webhook could not be decoded.
public enum WebhookDecodingError: Error, Equatable, CustomStringConvertible {
    /// A field every webhook of this kind carries is absent or empty.
    case missingField(String)

    public var description: String {
        switch self {
        case .missingField(let name): "missing \(name)"
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
        self.from = try required("From")
        self.to = try required("To")
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
        guard let status = first("MessageStatus") ?? first("SmsStatus"), !status.isEmpty else {
            throw .missingField("MessageStatus")
        }
        self.messageSid = sid
        self.messageStatus = status.lowercased()
        self.accountSid = first("AccountSid")
        self.errorCode = first("ErrorCode").flatMap { Int($0) }
        self.errorMessage = first("ErrorMessage")
        self.fields = fields
    }
}
