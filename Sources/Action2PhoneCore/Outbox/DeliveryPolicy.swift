// SPDX-License-Identifier: Apache-2.0
import Foundation
import TwilioKit

/// How a send's result becomes an outbox outcome (SPEC §5, twilio.md §6 and §10.14):
/// 429/20429, 21611 (the sender's queue at Twilio is full: "later, slow down") and connections never made are
/// retried with exponential backoff and jitter, never sooner than `Retry-After`; a 5xx, a timeout or a dropped
/// connection may have created the message, so the retry reconciles first; any other 4xx fails at once with
/// Twilio's code and message.
public struct DeliveryPolicy: Sendable {
    public var maxAttempts: Int
    public var baseDelay: TimeInterval
    public var maxDelay: TimeInterval
    /// The fraction of the backoff actually waited, drawn at random ("equal jitter").
    public var jitter: ClosedRange<Double>

    public init(maxAttempts: Int = 8, baseDelay: TimeInterval = 1, maxDelay: TimeInterval = 300, jitter: ClosedRange<Double> = 0.5...1.0) {
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.jitter = jitter
    }

    /// The wait before attempt `attempts + 1`: base × 2^(attempts-1), capped and jittered, or `Retry-After` when
    /// that is longer (capped too). Never shorter than the backoff: a short `Retry-After` repeated through a long
    /// outage would otherwise spend every attempt within seconds and fail texts a backoff would have delivered.
    public func delay(afterAttempt attempts: Int, retryAfter: TimeInterval?) -> TimeInterval {
        let exponential = min(maxDelay, baseDelay * pow(2, Double(max(0, attempts - 1)))) * Double.random(in: jitter)
        guard let retryAfter else { return exponential }
        return max(exponential, min(max(retryAfter, 0), maxDelay))
    }

    /// Whether `failure` says Twilio as a whole is in trouble (rate limiting, a server error, no answer, an
    /// answer that is not Twilio's) rather than refusing this one text (any other `4xx`). The outbox pauses all
    /// sends on it (`OutboxPause`).
    public static func isOutage(_ failure: RESTFailure) -> Bool {
        switch failure {
        case .http(let status, let code, _, _, _): isSlowDown(status: status, code: code) || status >= 500
        case .transport, .undecodable: true
        case .inconclusive: false
        }
    }

    /// Whether Twilio asks for fewer sends: rate limiting (429, 20429), or the sender's queue holding 10 hours of
    /// texts already (21611, a 400 that refuses this text only until the queue drains: twilio.md §6). Neither
    /// created the message.
    static func isSlowDown(status: Int, code: Int?) -> Bool {
        status == 429 || code == 20429 || code == 21611
    }

    /// Whether `failure` is Twilio refusing the account's credentials (401, code 20003): every other request
    /// would be refused too, until an operator fixes them (twilio.md §6: never retry it).
    public static func refusesCredentials(_ failure: RESTFailure) -> Bool {
        if case .http(let status, let code, _, _, _) = failure { status == 401 || code == 20003 } else { false }
    }

    /// The outcome of attempt number `attempts` (1-based) that ended with `result`. When an earlier attempt may
    /// have created the message (`mayAlreadyExist`), an attempt that ends without success is `uncertain`,
    /// never `failed`: an operator decides.
    public func outcome(of result: Result<SentMessage, RESTFailure>, attempts: Int, now: Date, mayAlreadyExist: Bool = false) -> DeliveryOutcome {
        let outcome = plainOutcome(of: result, attempts: attempts, now: now)
        if mayAlreadyExist, case .failed(let code, let message) = outcome { return .uncertain(code: code, message: message) }
        return outcome
    }

    private func plainOutcome(of result: Result<SentMessage, RESTFailure>, attempts: Int, now: Date) -> DeliveryOutcome {
        let failure: RESTFailure
        switch result {
        case .success(.accepted(let sid)): return .accepted(sid: sid)
        case .success(.simulated): return .simulated
        case .failure(let f): failure = f
        }
        let retryable: (code: Int?, message: String, reconcile: Bool, retryAfter: TimeInterval?)
        switch failure {
        case .http(let status, let code, let message, _, let retryAfter) where Self.isSlowDown(status: status, code: code):
            retryable = (code ?? 20429, message, false, retryAfter)
        case .http(let status, let code, let message, _, let retryAfter) where status >= 500:
            retryable = (code, message, true, retryAfter)
        case .http(let status, let code, let message, _, _):
            // An answer without Twilio's error code keeps its HTTP status in the message ("[HTTP 404] …"), not in
            // `errorCode`, where 404 would read as a Twilio error.
            return .failed(code: code, message: code == nil && !message.hasPrefix("[HTTP") ? "[HTTP \(status)] \(message)" : message)
        case .transport(.notSent, let detail):
            retryable = (nil, detail, false, nil)
        case .transport(.maybeSent, let detail):
            retryable = (nil, detail, true, nil)
        case .undecodable(let detail):
            retryable = (nil, detail, true, nil)
        case .inconclusive(let detail):
            // Asking again will not settle it: an operator decides (uncertain, as the message may exist).
            return .failed(code: nil, message: detail + " (outbox retry --without-lookup ID sends it anyway)")
        }
        guard attempts < maxAttempts else {
            let message = "gave up after \(attempts) attempts: \(retryable.message)"
            return retryable.reconcile ? .uncertain(code: retryable.code, message: message) : .failed(code: retryable.code, message: message)
        }
        let wait = delay(afterAttempt: attempts, retryAfter: retryable.retryAfter)
        return .retry(at: now.addingTimeInterval(wait), code: retryable.code, message: retryable.message, reconcile: retryable.reconcile)
    }
}

/// A send's success.
public enum SentMessage: Sendable, Equatable {
    case accepted(sid: String)
    case simulated
}
