// SPDX-License-Identifier: Apache-2.0
import Action2PhoneCore
import TwilioKit

/// Pauses the whole outbox while Twilio is in trouble.
///
/// Each text already backs off on its own (`DeliveryPolicy`), but during an outage the texts queued behind it
/// would still go out at the full send rate: a `429` storm would be fed, and every queued text would spend its
/// attempts, so an outage longer than the attempts span (about one to two minutes) would fail them all. So the
/// first sign of trouble (`DeliveryPolicy.isOutage`) pauses every send, then one text at a time probes, and the
/// first probe answered normally resumes the full rate. Each further failed probe doubles the pause (with the
/// policy's jitter, up to `maxPause`); a `Retry-After` is always waited in full (up to the policy's `maxDelay`).
///
/// Only requests that started after the current pause began (probes) move it on: an answer to a request that was
/// already in flight, failed or not, can only lengthen the pause by its `Retry-After`. So a burst of failures
/// (32 sends timing out one after another over 15 s) counts once, and a slow success from before the trouble
/// does not end it.
///
/// Twilio refusing the credentials (`DeliveryPolicy.refusesCredentials`) holds every send instead, with no probe:
/// each text sent would fail the same way. The hold lasts until a check of the credentials that spends no text
/// finds them accepted (`liftHold`), or until the next start; one text at a time then probes, as after an outage.
/// Should that probe be refused too (Twilio reads the account but will not send for it), the hold comes back and
/// each further check waits twice as long (`checkWait`), up to an hour, so it costs few texts. A refusal of a
/// request that started before the hold was lifted does not hold again.
final class OutboxPause: Sendable {
    /// What the worker may start now.
    enum Gate: Equatable {
        /// Any number of sends, at the configured rate.
        case open
        /// Nothing before `until`.
        case closed(until: ContinuousClock.Instant)
        /// One send at a time, until one is answered normally.
        case probing
        /// Nothing until Twilio accepts the credentials again.
        case held
    }

    /// A change worth telling the operator about.
    enum Change: Equatable {
        case paused(for: Duration, first: Bool)
        case resumed
        /// `first`: since sending last worked (a probe refused after a lift is not).
        case credentialsRefused(first: Bool)
        case credentialsAccepted
    }

    private struct State {
        /// Pauses in a row (0: no trouble).
        var pauses = 0
        /// When the latest pause began.
        var since: ContinuousClock.Instant?
        var until: ContinuousClock.Instant?
        var credentialsRefused = false
        /// When the latest hold was lifted.
        var heldUntil: ContinuousClock.Instant?
        /// Holds lifted since sending last worked.
        var lifts = 0
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
            if s.credentialsRefused { return .held }
            if let until = s.until, now < until { return .closed(until: until) }
            return s.pauses > 0 ? .probing : .open
        }
    }

    /// Notes how a request to Twilio that started at `started` ended (`failure` nil: it was answered normally).
    func observe(_ failure: RESTFailure?, started: ContinuousClock.Instant, now: ContinuousClock.Instant) -> Change? {
        state.withLock { s in
            if let failure, DeliveryPolicy.refusesCredentials(failure) {
                guard !s.credentialsRefused, s.heldUntil.map({ started >= $0 }) ?? true else { return nil }
                s.credentialsRefused = true
                return .credentialsRefused(first: s.lifts == 0)
            }
            // While held, answers to requests already in flight change nothing: only a check lifts the hold.
            guard !s.credentialsRefused else { return nil }
            let fresh = s.since.map { started >= $0 } ?? true
            let pausedNow = s.until.map { now < $0 } ?? false
            guard let failure, DeliveryPolicy.isOutage(failure) else {
                guard s.pauses > 0, fresh, !pausedNow else { return nil }
                s = State(heldUntil: s.heldUntil)
                return .resumed
            }
            let retryAfter = failure.retryAfter.map { Duration.seconds(min(max($0, 0), policy.maxDelay)) } ?? .zero
            guard s.pauses == 0 || (fresh && !pausedNow) else {
                if let until = s.until { s.until = max(until, now.advanced(by: retryAfter)) }
                return nil
            }
            s.pauses += 1
            let backoff = min(.seconds(policy.delay(afterAttempt: s.pauses, retryAfter: nil)), maxPause)
            let wait = max(backoff, retryAfter)
            s.since = now
            s.until = now.advanced(by: wait)
            return .paused(for: wait, first: s.pauses == 1)
        }
    }

    /// Lifts a hold (a check found the credentials accepted): one text at a time probes until one is answered
    /// normally. `credentialsAccepted` when sends were held.
    func liftHold(now: ContinuousClock.Instant) -> Change? {
        state.withLock { s in
            guard s.credentialsRefused else { return nil }
            s.credentialsRefused = false
            s.heldUntil = now
            s.lifts += 1
            s.pauses = max(s.pauses, 1)
            s.since = now
            return .credentialsAccepted
        }
    }

    /// How long a hold waits before its next check: `interval`, doubled for each lift since sending last worked
    /// (each one cost a probe that was refused), at most an hour.
    func checkWait(interval: Duration) -> Duration {
        let lifts = state.withLock { $0.lifts }
        return min(interval * (1 << min(lifts, 16)), max(interval, .seconds(3600)))
    }
}
