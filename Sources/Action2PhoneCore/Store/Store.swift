// SPDX-License-Identifier: Apache-2.0
import Foundation
import TwilioKit

/// Everything the bot keeps, behind one narrow interface with no database types in it, so that a
/// PostgreSQL implementation can be added for deployments that run several servers (SPEC §8).
/// Each method is one transaction.
///
/// ```swift
/// let store = try SQLiteStore.open(path: "db/action2phone.sqlite")
/// let outcome = try await store.processInbound(record, replyMode: .twiml, now: .now) { state, facts in
///     engine.reduce(&state, text: record.body, facts: facts, now: .now)
/// }
/// ```
public protocol Store: Sendable {
    /// Answers when the database can be read; throws otherwise.
    func ping() async throws

    /// Records one inbound message and advances its sender's conversation, in one transaction:
    /// loads the conversation, lets `decide` pick replies and effects, applies them, logs the inbound
    /// message (with the body `decide` says to log) and the TwiML reply, and in REST reply mode queues
    /// the replies in the outbox. A `MessageSid` already recorded returns `.duplicate` and changes nothing.
    func processInbound(
        _ record: InboundRecord,
        replyMode: ReplyMode,
        now: Date,
        decide: @escaping @Sendable (inout ConversationState, any ConversationFacts) throws -> Decision
    ) async throws -> InboundOutcome

    /// Replaces the passcode hash of the account at `phone` with `upgraded` (the same passcode, hashed at the cost now
    /// configured), if the account still has `verified`: a passcode changed meanwhile is left alone. Nothing else about
    /// the account changes. Returns whether it was replaced.
    @discardableResult
    func upgradePasscodeHash(phone: String, verified: PasscodeHash, upgraded: PasscodeHash) async throws -> Bool

    /// Finishes every broadcast still being fanned out (one stopped in the middle, or recorded by another
    /// process), a chunk of people per transaction, while `keepGoing` says so. Returns how many chunks it wrote.
    @discardableResult
    func fanOutBroadcasts(while keepGoing: @escaping @Sendable () -> Bool) async throws -> Int

    /// Finishes every deletion's erasure of the admins' rows that name the person (one stopped in the middle, or
    /// recorded by another process), a chunk of rows per transaction, while `keepGoing` says so. Returns how many
    /// chunks it wrote.
    @discardableResult
    func finishErasures(while keepGoing: @escaping @Sendable () -> Bool) async throws -> Int

    /// Whether this process's webhooks are fanning a broadcast out or erasing a deletion's mentions: a chunk after
    /// each batch of them, which another loop should not crowd.
    var webhooksHaveBackgroundWork: Bool { get }

    // MARK: Outbox

    /// Turns rows left `sending` by a crash into `uncertain`: they may or may not have reached Twilio, so
    /// they are not resent unless an operator says so. Returns how many there were.
    func recoverInterruptedSends(now: Date) async throws -> Int

    /// Claims the next due `queued` row (lowest id, never overtaking an earlier text to the same number) and
    /// marks it `sending`. Rows for numbers that opted out meanwhile fail instead of being sent.
    func claimNextOutbox(now: Date) async throws -> OutboxMessage?

    /// Claims up to `limit` due rows in one transaction, as `claimNextOutbox` would one at a time.
    func claimOutbox(now: Date, limit: Int) async throws -> [OutboxMessage]
    /// Claims the due row tried least often so far (conversation replies still first, texts to one number still
    /// in order): while Twilio is in trouble the outbox probes with one text at a time, and each probe that fails
    /// spends an attempt, so the probes go round the queue instead of spending one text's attempts.
    func claimProbe(now: Date) async throws -> OutboxMessage?

    /// Records the outcome of sending a claimed row; a Twilio 21610 also opts the number out, and errors
    /// that mean the number cannot receive texts suppress it.
    func completeOutbox(id: Int64, outcome: DeliveryOutcome, now: Date) async throws

    /// Records several outcomes in one transaction (the worker's group commit).
    func completeOutbox(_ outcomes: [(id: Int64, outcome: DeliveryOutcome)], now: Date) async throws

    /// The first of `sids` that no outbox row holds, or held before an operator retried it (reconciliation must not
    /// adopt another row's message, nor a retried row's earlier one).
    func firstUnrecordedSid(_ sids: [String]) async throws -> String?

    /// Outbox rows, newest first.
    func outboxMessages(status: OutboxStatus?, limit: Int) async throws -> [OutboxMessage]

    /// Applies a delivery status callback to the outbox row with that Twilio SID, moving it forward only.
    /// Returns `false` when no row has that SID. One that cannot be stored because the database cannot write is kept
    /// in memory for `retryHeldStatusCallbacks` (Twilio does not send it again), and the error thrown.
    @discardableResult
    func applyStatusCallback(_ callback: StatusCallback, now: Date) async throws -> Bool

    /// Applies the status callbacks kept because the database could not write, in one transaction, in the order they
    /// came; keeps them when it still cannot. Returns how many it stored, and how many it dropped because the database
    /// refused them for another reason.
    @discardableResult
    func retryHeldStatusCallbacks() async throws -> (stored: Int, dropped: Int)
}

/// A validated inbound webhook, as it will be logged.
public struct InboundRecord: Sendable, Equatable {
    public var messageSid: String
    public var idempotencyToken: String?
    /// The sender, in E.164 when it is a phone number.
    public var from: String
    public var to: String
    public var body: String
    public var numMedia: Int
    /// Every field Twilio sent.
    public var fields: [FormField]

    public init(
        messageSid: String,
        idempotencyToken: String? = nil,
        from: String,
        to: String,
        body: String,
        numMedia: Int = 0,
        fields: [FormField] = []
    ) {
        self.messageSid = messageSid
        self.idempotencyToken = idempotencyToken
        self.from = from
        self.to = to
        self.body = body
        self.numMedia = numMedia
        self.fields = fields
    }

    public init(_ message: IncomingMessage, idempotencyToken: String?) {
        self.init(
            messageSid: message.messageSid,
            idempotencyToken: idempotencyToken,
            from: PhoneNumber.canonicalSender(message.from),
            to: message.to,
            body: message.body,
            numMedia: message.numMedia,
            fields: message.fields
        )
    }
}

/// What the conversation decided for one inbound text.
public struct Decision: Sendable, Equatable {
    /// The texts to answer with, in order.
    public var replies: [String]
    /// Changes to apply to stored data, in order, in the same transaction.
    public var effects: [Effect]
    /// The body as it may be logged (`[redacted]` where it held a passcode); `nil` logs it as received.
    public var loggedBody: String?

    public init(replies: [String], effects: [Effect] = [], loggedBody: String? = nil) {
        self.replies = replies
        self.effects = effects
        self.loggedBody = loggedBody
    }
}

/// How replies reach the phone.
public enum ReplyMode: String, Sendable, CaseIterable {
    /// In the webhook's TwiML response.
    case twiml
    /// An empty `<Response/>`, with the replies sent through the outbox.
    case rest
}

/// The result of `processInbound`.
public enum InboundOutcome: Sendable, Equatable {
    /// First sight of this message: its TwiML reply.
    case processed(twiml: String)
    /// A retry of a message already processed: the TwiML answered the first time.
    case duplicate(twiml: String)

    public var twiml: String {
        switch self {
        case .processed(let t), .duplicate(let t): t
        }
    }
}

/// The states of an outbound message.
public enum OutboxStatus: String, Sendable, Codable, CaseIterable {
    case queued, sending, sent, delivered, undelivered, failed, uncertain, simulated

    /// How far along a message is; a status callback never moves a row to a lower rank.
    var rank: Int {
        switch self {
        case .queued: 0
        case .sending, .uncertain: 1
        case .sent: 2
        case .delivered, .undelivered, .failed, .simulated: 3
        }
    }
}
