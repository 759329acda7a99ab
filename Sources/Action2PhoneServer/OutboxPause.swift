// SPDX-License-Identifier: Apache-2.0
import Action2PhoneCore
import TwilioKit

/// Pauses the whole outbox while Twilio is in trouble.
///
/// Each text already backs off on its own (`DeliveryPolicy`), but during an outage the texts queued behind it
/// would still go out at the full send rate: a `429` storm would be fed, and every queued text would spend its
/// attempts, so an outage longer than the attempts span (about one to two minutes) would fail them all. So the
/// first sign of trouble (`DeliveryPolicy.isOutage`) pauses every send, then one text at a time probes, and the
/// first normal answer to a probe resumes the full rate. Each further failed probe doubles the pause (with the
/// policy's jitter, never shorter than `Retry-After`), up to `maxPause`.
///
/// Sends that were in flight when a pause began and fail during it share that pause: a burst of failures
/// counts once. A normal answer during a pause comes from a request that started before it, and changes nothing.
final class OutboxPause: Sendable {
    /// What the worker may start now.
    enum Gate: Equatable {
        /// Any number of sends, at the configured rate.
        case open
        /// Nothing before `until`.
        case closed(until: ContinuousClock.Instant)
        /// One send at a time, until one is answered normally.
        case probing
    }

    /// A change worth telling the operator about.
    enum Change: Equatable {
        case paused(for: Duration, first: Bool)
        case resumed
    }

    private struct State {
        /// Pauses in a row (0: no trouble).
        var pauses = 0
        var until: ContinuousClock.Instant?
    }

    private let state = Locked(State())
    let policy: DeliveryPolicy
    let maxPause: Duration

    init(policy: DeliveryPolicy, maxPause: Duration = .seconds(30)) {
        self.policy = policy
        self.maxPause = maxPause
    }

    func gate(now: ContinuousClock.Instant) -> Gate {
        state.withLock { s in
            if let until = s.until, now < until { return .closed(until: until) }
            return s.pauses > 0 ? .probing : .open
        }
    }

    /// Notes how a request to Twilio ended (`nil`: it succeeded).
    func observe(_ failure: RESTFailure?, now: ContinuousClock.Instant) -> Change? {
        state.withLock { s in
            let pausedNow = s.until.map { now < $0 } ?? false
            guard let failure, DeliveryPolicy.isOutage(failure) else {
                guard s.pauses > 0, !pausedNow else { return nil }
                s = State()
                return .resumed
            }
            if pausedNow, let until = s.until {
                if let retryAfter = failure.retryAfter {
                    s.until = max(until, now.advanced(by: min(.seconds(retryAfter), maxPause)))
                }
                return nil
            }
            s.pauses += 1
            let wait = min(.seconds(policy.delay(afterAttempt: s.pauses, retryAfter: failure.retryAfter)), maxPause)
            s.until = now.advanced(by: wait)
            return .paused(for: wait, first: s.pauses == 1)
        }
    }
}
