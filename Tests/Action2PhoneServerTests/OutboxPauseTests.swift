import Action2PhoneCore
import Testing
import TwilioKit

@testable import Action2PhoneServer

@Suite("Outbox pause while Twilio is in trouble")
struct OutboxPauseTests {
    let t0 = ContinuousClock.now
    let policy = DeliveryPolicy(maxAttempts: 8, baseDelay: 1, maxDelay: 300, jitter: 1...1)
    let unavailable = RESTFailure.http(status: 503, code: 20503, message: "Service Unavailable", moreInfo: nil, retryAfter: nil)

    func at(_ seconds: Double) -> ContinuousClock.Instant { t0.advanced(by: .seconds(seconds)) }
    func tooMany(retryAfter: Double?) -> RESTFailure {
        .http(status: 429, code: 20429, message: "Too Many Requests", moreInfo: nil, retryAfter: retryAfter)
    }

    @Test func outagesAreTwilioWideFailuresNotRefusalsOfOneText() {
        #expect(DeliveryPolicy.isOutage(tooMany(retryAfter: nil)))
        #expect(DeliveryPolicy.isOutage(.http(status: 400, code: 20429, message: "", moreInfo: nil, retryAfter: nil)))
        #expect(DeliveryPolicy.isOutage(unavailable))
        #expect(DeliveryPolicy.isOutage(.http(status: 500, code: nil, message: "", moreInfo: nil, retryAfter: nil)))
        #expect(DeliveryPolicy.isOutage(.transport(.notSent, "connection refused")))
        #expect(DeliveryPolicy.isOutage(.transport(.maybeSent, "timed out")))
        #expect(DeliveryPolicy.isOutage(.undecodable("not JSON")))
        #expect(!DeliveryPolicy.isOutage(.http(status: 400, code: 21211, message: "bad To", moreInfo: nil, retryAfter: nil)))
        #expect(!DeliveryPolicy.isOutage(.http(status: 400, code: 21610, message: "unsubscribed", moreInfo: nil, retryAfter: nil)))
        #expect(!DeliveryPolicy.isOutage(.http(status: 401, code: 20003, message: "Authenticate", moreInfo: nil, retryAfter: nil)))
    }

    @Test func refusedCredentialsHoldUntilACheckAcceptsThem() {
        let pause = OutboxPause(policy: policy)
        let refused = RESTFailure.http(status: 401, code: 20003, message: "Authenticate", moreInfo: nil, retryAfter: nil)
        #expect(DeliveryPolicy.refusesCredentials(refused))
        #expect(!DeliveryPolicy.refusesCredentials(.http(status: 400, code: 21211, message: "bad To", moreInfo: nil, retryAfter: nil)))
        #expect(pause.observe(refused, started: at(0), now: at(0.1)) == .credentialsRefused(first: true))
        #expect(pause.gate(now: at(0.1)) == .held)
        // More refusals from sends already in flight are said once; an outage on top, and its end, change nothing
        #expect(pause.observe(refused, started: at(0), now: at(0.2)) == nil)
        #expect(pause.observe(unavailable, started: at(0), now: at(0.3)) == nil)
        #expect(pause.observe(nil, started: at(0.4), now: at(0.5)) == nil)
        #expect(pause.gate(now: at(100)) == .held)
        // Only a check lifts the hold, and one text at a time probes then
        #expect(pause.liftHold(now: at(100)) == .credentialsAccepted)
        #expect(pause.gate(now: at(100)) == .probing)
        #expect(pause.liftHold(now: at(100)) == nil)
        // A refusal of a request that started before the hold was lifted does not hold again
        #expect(pause.observe(refused, started: at(99), now: at(100.5)) == nil)
        #expect(pause.gate(now: at(100.5)) == .probing)
        // A probe answered normally resumes the full rate; a fresh refusal holds again
        #expect(pause.observe(nil, started: at(101), now: at(101.1)) == .resumed)
        #expect(pause.gate(now: at(101.1)) == .open)
        #expect(pause.observe(refused, started: at(102), now: at(102.1)) == .credentialsRefused(first: true))
        #expect(pause.gate(now: at(102.1)) == .held)
        #expect(pause.checkWait(interval: .seconds(60)) == .seconds(60))
    }

    @Test func aProbeRefusedAfterALiftHoldsAgainAndEachCheckWaitsTwiceAsLong() {
        // Given a hold, lifted by a check, whose probe is refused again (Twilio reads the account but will not send)
        let pause = OutboxPause(policy: policy)
        let refused = RESTFailure.http(status: 401, code: 20003, message: "Authenticate", moreInfo: nil, retryAfter: nil)
        _ = pause.observe(refused, started: at(0), now: at(0.1))
        var now = 0.1
        for wait in [120, 240, 480, 960, 1920, 3600, 3600] {
            #expect(pause.liftHold(now: at(now)) == .credentialsAccepted)
            // Then it is held again, said as a repeat, and the next check waits longer, up to an hour
            #expect(pause.observe(refused, started: at(now + 1), now: at(now + 2)) == .credentialsRefused(first: false))
            #expect(pause.checkWait(interval: .seconds(60)) == .seconds(wait))
            now += 10
        }
        // And once a probe is answered normally, the next hold is a first one again, checked at the base interval
        _ = pause.liftHold(now: at(now))
        #expect(pause.observe(nil, started: at(now + 1), now: at(now + 2)) == .resumed)
        #expect(pause.observe(refused, started: at(now + 3), now: at(now + 4)) == .credentialsRefused(first: true))
        #expect(pause.checkWait(interval: .seconds(60)) == .seconds(60))
    }

    @Test func normalAnswersLeaveTheOutboxOpen() {
        let pause = OutboxPause(policy: policy)
        #expect(pause.observe(nil, started: at(0), now: at(0.1)) == nil)
        #expect(
            pause.observe(.http(status: 400, code: 21211, message: "bad To", moreInfo: nil, retryAfter: nil), started: at(0), now: at(0.1)) == nil
        )
        #expect(pause.gate(now: at(0.1)) == .open)
    }

    @Test func troublePausesThenProbesAndDoublesUpToTheCap() {
        let pause = OutboxPause(policy: policy, maxPause: .seconds(5))
        #expect(pause.observe(unavailable, started: at(0), now: at(0)) == .paused(for: .seconds(1), first: true))
        #expect(pause.gate(now: at(0.5)) == .closed(until: at(1)))
        #expect(pause.gate(now: at(1)) == .probing)
        #expect(pause.observe(unavailable, started: at(1), now: at(1)) == .paused(for: .seconds(2), first: false))
        #expect(pause.gate(now: at(2.9)) == .closed(until: at(3)))
        #expect(pause.observe(unavailable, started: at(3), now: at(3)) == .paused(for: .seconds(4), first: false))
        #expect(pause.observe(unavailable, started: at(7), now: at(7)) == .paused(for: .seconds(5), first: false))  // capped
        #expect(pause.observe(unavailable, started: at(12), now: at(12)) == .paused(for: .seconds(5), first: false))
        // A probe answered normally (a refusal of that one text counts: Twilio answered) resumes the full rate.
        let refused = RESTFailure.http(status: 400, code: 21211, message: "bad To", moreInfo: nil, retryAfter: nil)
        #expect(pause.observe(refused, started: at(17), now: at(17.2)) == .resumed)
        #expect(pause.gate(now: at(17.2)) == .open)
        // The next trouble starts again from the first pause.
        #expect(pause.observe(unavailable, started: at(20), now: at(20)) == .paused(for: .seconds(1), first: true))
    }

    @Test func answersToSendsAlreadyInFlightNeitherEscalateNorEndAPause() {
        let pause = OutboxPause(policy: policy)
        #expect(pause.observe(unavailable, started: at(0), now: at(0.1)) == .paused(for: .seconds(1), first: true))
        // Sends started before the pause fail during it, and after it (timeouts come back up to 15 s later).
        for k in 1...20 { #expect(pause.observe(unavailable, started: at(0), now: at(0.1 + 0.05 * Double(k))) == nil) }
        #expect(pause.gate(now: at(1.1)) == .probing)
        for k in 1...10 { #expect(pause.observe(.transport(.maybeSent, "timed out"), started: at(0.05), now: at(1.1 + Double(k))) == nil) }
        // A slow success from before the pause does not end it either.
        #expect(pause.observe(nil, started: at(0), now: at(12)) == nil)
        #expect(pause.gate(now: at(12)) == .probing)
        // The first probe that fails is the second pause, not the thirty-second; one answered normally ends it.
        #expect(pause.observe(unavailable, started: at(12), now: at(12.5)) == .paused(for: .seconds(2), first: false))
        #expect(pause.observe(nil, started: at(14.5), now: at(14.6)) == .resumed)
    }

    @Test func retryAfterIsWaitedInFullEvenPastTheCapAndCanOnlyLengthenAPause() {
        let pause = OutboxPause(policy: policy, maxPause: .seconds(30))
        #expect(pause.observe(tooMany(retryAfter: 7), started: at(0), now: at(0)) == .paused(for: .seconds(7), first: true))
        #expect(pause.observe(tooMany(retryAfter: 10), started: at(0), now: at(1)) == nil)
        #expect(pause.gate(now: at(10.9)) == .closed(until: at(11)))
        #expect(pause.observe(tooMany(retryAfter: 1), started: at(0), now: at(2)) == nil)
        #expect(pause.gate(now: at(10.9)) == .closed(until: at(11)))
        // Twilio asks for longer than the outbox's own cap: it gets it, up to the policy's maxDelay (300 s).
        #expect(pause.observe(tooMany(retryAfter: 45), started: at(11), now: at(11)) == .paused(for: .seconds(45), first: false))
        #expect(pause.observe(tooMany(retryAfter: 3600), started: at(56), now: at(56)) == .paused(for: .seconds(300), first: false))
    }
}
