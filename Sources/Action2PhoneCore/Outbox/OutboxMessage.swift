// SPDX-License-Identifier: Apache-2.0
import Foundation

/// One outbound text in the durable outbox.
public struct OutboxMessage: Sendable, Equatable, Codable {
    public var id: Int64
    public var to: String
    public var body: String
    public var status: OutboxStatus
    public var attempts: Int
    public var twilioSid: String?
    public var errorCode: Int?
    public var errorMessage: String?
    public var createdAt: Date
    public var updatedAt: Date
    /// `reply`, `direct`, `broadcast` or `operator`.
    public var purpose: String
    public var firstAttemptAt: Date?
    public var needsReconcile: Bool

    public init(
        id: Int64,
        to: String,
        body: String,
        status: OutboxStatus,
        attempts: Int = 0,
        twilioSid: String? = nil,
        errorCode: Int? = nil,
        errorMessage: String? = nil,
        createdAt: Date,
        updatedAt: Date,
        purpose: String = "direct",
        firstAttemptAt: Date? = nil,
        needsReconcile: Bool = false
    ) {
        self.id = id
        self.to = to
        self.body = body
        self.status = status
        self.attempts = attempts
        self.twilioSid = twilioSid
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.purpose = purpose
        self.firstAttemptAt = firstAttemptAt
        self.needsReconcile = needsReconcile
    }
}

/// What became of one delivery attempt.
public enum DeliveryOutcome: Sendable, Equatable {
    /// Twilio accepted the message.
    case accepted(sid: String)
    /// Reconciliation found that an earlier attempt had created the message, with Twilio's status for it.
    case found(sid: String, twilioStatus: String, errorCode: Int?, errorMessage: String?)
    /// Reconciliation looked and Twilio does not have the message: it is queued again, to be sent without
    /// another lookup at a slot of its own (sent straight after the lookup, it would break the send rate).
    case notFound
    /// Local mode: nothing was sent.
    case simulated
    /// A permanent error: never retried.
    case failed(code: Int?, message: String)
    /// A passing error: queued again for `at`; `reconcile` when Twilio may already have the message.
    case retry(at: Date, code: Int?, message: String, reconcile: Bool)
    /// Attempts ran out after an error that may have sent the message: an operator decides.
    case uncertain(code: Int?, message: String)
}
