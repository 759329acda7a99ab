import Action2PhoneCore
@testable import Action2PhoneServer
import Testing
import TwilioKit

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

    @Test func normalAnswersLeaveTheOutboxOpen() {
        let pause = OutboxPause(policy: policy)
        #expect(pause.observe(nil, now: at(0)) == nil)
        #expect(pause.observe(.http(status: 400, code: 21211, message: "bad To", moreInfo: nil, retryAfter: nil), now: at(0)) == nil)
        #expect(pause.gate(now: at(0)) == .open)
    }

    @Test func troublePausesThenProbesAndDoublesUpToTheCap() {
        let pause = OutboxPause(policy: policy, maxPause: .seconds(5))
        #expect(pause.observe(unavailable, now: at(0)) == .paused(for: .seconds(1), first: true))
        #expect(pause.gate(now: at(0.5)) == .closed(until: at(1)))
        #expect(pause.gate(now: at(1)) == .probing)
        #expect(pause.observe(unavailable, now: at(1)) == .paused(for: .seconds(2), first: false))
        #expect(pause.gate(now: at(2.9)) == .closed(until: at(3)))
        #expect(pause.observe(unavailable, now: at(3)) == .paused(for: .seconds(4), first: false))
        #expect(pause.observe(unavailable, now: at(7)) == .paused(for: .seconds(5), first: false))  // capped
        #expect(pause.observe(unavailable, now: at(12)) == .paused(for: .seconds(5), first: false))
        // A probe answered normally (a refusal of that one text counts: Twilio answered) resumes the full rate.
        #expect(pause.observe(.http(status: 400, code: 21211, message: "bad To", moreInfo: nil, retryAfter: nil), now: at(17)) == .resumed)
        #expect(pause.gate(now: at(17)) == .open)
        // The next trouble starts again from the first pause.
        #expect(pause.observe(unavailable, now: at(20)) == .paused(for: .seconds(1), first: true))
    }

    @Test func failuresOfSendsAlreadyInFlightShareOnePause() {
        let pause = OutboxPause(policy: policy)
        #expect(pause.observe(unavailable, now: at(0)) == .paused(for: .seconds(1), first: true))
        for k in 1...20 { #expect(pause.observe(unavailable, now: at(0.01 * Double(k))) == nil) }
        // A success from a send that started before the pause changes nothing either.
        #expect(pause.observe(nil, now: at(0.5)) == nil)
        #expect(pause.gate(now: at(0.5)) == .closed(until: at(1)))
        // The first probe that fails is the second pause, not the twenty-second.
        #expect(pause.observe(unavailable, now: at(1)) == .paused(for: .seconds(2), first: false))
    }

    @Test func retryAfterIsHonouredAndCanOnlyLengthenAPause() {
        let pause = OutboxPause(policy: policy, maxPause: .seconds(30))
        #expect(pause.observe(tooMany(retryAfter: 7), now: at(0)) == .paused(for: .seconds(7), first: true))
        #expect(pause.observe(tooMany(retryAfter: 10), now: at(1)) == nil)
        #expect(pause.gate(now: at(10.9)) == .closed(until: at(11)))
        #expect(pause.observe(tooMany(retryAfter: 1), now: at(2)) == nil)
        #expect(pause.gate(now: at(10.9)) == .closed(until: at(11)))
        // A Retry-After beyond the cap waits the cap.
        #expect(pause.observe(tooMany(retryAfter: 3600), now: at(11)) == .paused(for: .seconds(30), first: false))
    }
}
