// SPDX-License-Identifier: Apache-2.0
import Action2PhoneCore
import Foundation
import Logging
import ServiceLifecycle
import TwilioKit

/// Sends the outbox: claims due rows, starts at most `rate` sends per second, evenly spaced (several may be
/// in flight when Twilio is slow, but never two to the same number), and records each outcome. While Twilio
/// is in trouble, every send waits and one text at a time probes (`OutboxPause`). When Twilio refuses the
/// credentials, every send is held, and the credentials are checked every `credentialsCheckInterval` without
/// sending anything: the texts queued stay queued, and only those in flight or already claimed fail.
///
/// On start, rows a crash left `sending` become `uncertain`. On graceful shutdown it stops claiming and
/// lets the sends in flight finish; a send is never cut off.
public struct OutboxWorker: Service {
    let store: any Store
    let sender: any MessageSender
    let policy: DeliveryPolicy
    let rate: Double
    let interval: Duration
    let pollInterval: Duration
    let maxInFlight: Int
    let credentialsCheckInterval: Duration
    let outagePause: OutboxPause
    let logger: Logger

    /// Whether every send is held because Twilio refused the credentials (until a check finds them accepted):
    /// `/healthz` says so.
    var sendsHeld: Bool { outagePause.gate(now: .now) == .held }

    public init(
        store: any Store,
        sender: any MessageSender,
        rate: Double,
        policy: DeliveryPolicy = DeliveryPolicy(),
        pollInterval: Duration = .milliseconds(100),
        maxInFlight: Int = 32,
        maxPause: Duration = .seconds(30),
        credentialsCheckInterval: Duration = .seconds(60),
        logger: Logger
    ) {
        precondition(rate >= 0.001 && rate <= 10_000 && maxInFlight > 0 && maxPause > .zero && credentialsCheckInterval > .zero)
        self.store = store
        self.sender = sender
        self.policy = policy
        self.rate = rate
        self.interval = .nanoseconds(Int64(1e9 / rate))
        self.pollInterval = pollInterval
        self.maxInFlight = maxInFlight
        self.credentialsCheckInterval = credentialsCheckInterval
        self.outagePause = OutboxPause(policy: policy, maxPause: maxPause)
        self.logger = logger
    }

    public func run() async throws {
        let recovered = try await store.recoverInterruptedSends(now: Date())
        if recovered > 0 {
            logger.warning(
                "outbox: \(recovered) text(s) were being sent when the server stopped; marked uncertain, not resent (see: action2phone outbox list --status uncertain)"
            )
        }

        let clock = ContinuousClock()
        let maxOwed = min(interval * 4, .milliseconds(20))
        let owedSlots = Int(maxOwed / interval)
        let lookahead = max(1, Int(.milliseconds(20) / interval))
        // Whatever the make-up, never more than ceil(rate) sends in any window of ceil(rate)/rate seconds
        // (for a whole rate: at most `rate` in any second).
        var window = SlidingWindow(capacity: max(1, Int(rate.rounded(.up))), interval: interval)
        var nextSlot = clock.now
        var idle = true
        // The last failure to claim, logged once while it lasts.
        var claimFailure: String? = nil
        var lastCheck: CredentialsCheck? = nil
        let inFlight = InFlight()
        let recorder = OutcomeRecorder(store: store, logger: logger)
        await withDiscardingTaskGroup { group in
            group.addTask { await finishBackgroundWork() }
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                if clock.now < nextSlot {
                    await pause(until: nextSlot)
                    continue
                }
                let gate = outagePause.gate(now: clock.now)
                if case .closed(let until) = gate {
                    await pause(until: until)
                    continue
                }
                if gate == .held {
                    await pause(until: clock.now.advanced(by: outagePause.checkWait(interval: credentialsCheckInterval)))
                    if !Task.isShuttingDownGracefully && !Task.isCancelled { lastCheck = await checkCredentials(after: lastCheck) }
                    continue
                }
                let limit = gate == .probing ? 1 : maxInFlight
                if inFlight.count >= limit {
                    // A probe may take the client's whole timeout: no need to look as often as at full rate.
                    await pause(until: clock.now.advanced(by: gate == .probing ? .milliseconds(20) : .milliseconds(2)))
                    continue
                }
                // Claim the slots that are owed (behind schedule: a claim takes longer than one interval at high
                // rates) or the next `lookahead` slots, whichever is more, in one transaction: the claim's round trip
                // is paid once per batch, and a row is marked `sending` at most about 20 ms before its own slot.
                // After idle time nothing is owed; at low rates nothing ever is (maxOwed is under one interval).
                let behind = idle ? 0 : min(Int((clock.now - nextSlot) / interval), owedSlots)
                let wanted = max(1, min(max(behind + 1, lookahead), limit - inFlight.count))
                let claimed: [OutboxMessage]
                do {
                    claimed =
                        if gate == .probing { try await store.claimProbe(now: Date()).map { [$0] } ?? [] } else {
                            try await store.claimOutbox(now: Date(), limit: wanted)
                        }
                } catch is CancellationError {
                    continue  // the server is stopping (a taken port stops it before it starts): nothing went wrong
                } catch {
                    // Once per kind of failure, not at every poll (the log may be on the disk that is full).
                    let failure = "\(error)"
                    if failure != claimFailure {
                        logger.error("outbox: cannot claim the next text; trying again while it lasts", metadata: ["error": "\(failure)"])
                    }
                    claimFailure = failure
                    await pause(until: clock.now.advanced(by: pollInterval))
                    continue
                }
                if claimFailure != nil {
                    logger.notice("outbox: can claim texts again")
                    claimFailure = nil
                }
                guard !claimed.isEmpty else {
                    idle = true
                    await pause(until: clock.now.advanced(by: pollInterval))
                    continue
                }
                for message in claimed {
                    if idle {
                        nextSlot = max(nextSlot, clock.now)  // the schedule starts with the first text after idle time
                        idle = false
                    }
                    if clock.now < nextSlot { try? await Task.sleep(until: nextSlot, clock: .continuous) }
                    if let free = window.nextFree(after: clock.now) { try? await Task.sleep(until: free, clock: .continuous) }
                    window.record(clock.now)
                    // Keep to the schedule: time lost to a late wake-up or a slow claim is made up by the next slots,
                    // so the average rate is the configured one. At most `maxOwed` is ever made up (four slots, and
                    // never more than 20 ms), so there is no burst, and at low rates nothing is owed at all.
                    let owedFloor = clock.now.advanced(by: .zero - maxOwed)
                    nextSlot = max(nextSlot, owedFloor).advanced(by: interval)
                    inFlight.add(1)
                    group.addTask {
                        await deliver(message, recorder: recorder)
                        inFlight.add(-1)
                    }
                }
            }
        }
        logger.info("outbox: stopped")
    }

    /// Webhooks fan a broadcast out, and erase a deletion's mentions, as they come (`InboundBatcher`); this finishes
    /// what they do not: cut short by a stop, by a chunk that failed, or recorded by `action2phone broadcast` or
    /// `users delete` in a process that then ended. It looks at the start and then every second, leaves the webhooks'
    /// own chunks alone, and stops between chunks when the server is stopping (the rest is finished at the next start).
    /// It also stores the status callbacks kept while the database could not write.
    func finishBackgroundWork() async {
        let store = self.store
        let keepGoing: @Sendable () -> Bool = {
            !Task.isShuttingDownGracefully && !Task.isCancelled && !store.webhooksHaveBackgroundWork
        }
        // Each failure logged once while it lasts; each kind of work tried on its own, so that a broadcast that cannot
        // be fanned out holds no deletion's erasure up.
        var lastFailures: [String: String] = [:]
        func attempt(_ what: String, _ work: () async throws -> Void) async {
            do {
                try await work()
                lastFailures[what] = nil
            } catch {
                let failure = "\(error)"
                if failure != lastFailures[what] {
                    logger.error("outbox: cannot \(what); trying again every second", metadata: ["error": "\(failure)"])
                }
                lastFailures[what] = failure
            }
        }
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            await attempt("fan out a broadcast") {
                let chunks = try await store.fanOutBroadcasts(while: keepGoing)
                if chunks > 0 { logger.notice("outbox: finished fanning out a broadcast that was left unfinished (\(chunks) chunk(s) of people)") }
            }
            await attempt("store the status callbacks kept") {
                let retried = try await store.retryHeldStatusCallbacks()
                if retried.stored > 0 {
                    logger.notice("outbox: stored \(retried.stored) status callback(s) kept while the database could not write")
                }
                if retried.dropped > 0 {
                    logger.error("outbox: dropped \(retried.dropped) status callback(s) kept while the database could not write: it refuses them")
                }
            }
            await attempt("erase what admins' rows say of a deleted account") {
                let chunks = try await store.finishErasures(while: keepGoing)
                if chunks > 0 {
                    logger.notice("outbox: finished erasing what admins' rows said of a deleted account (\(chunks) chunk(s) of rows)")
                }
            }
            await pause(until: ContinuousClock.now.advanced(by: .seconds(1)))
        }
    }

    /// Sends one claimed row, or, when an earlier attempt may have created it, looks for it at Twilio instead
    /// (the send then waits for a slot of its own), and records the outcome.
    func deliver(_ message: OutboxMessage, recorder: OutcomeRecorder) async {
        let metadata: Logger.Metadata = ["a2p.outbox.id": "\(message.id)", "a2p.phone": "\(message.to)"]
        let outcome = await attempt(message, metadata: metadata)
        switch outcome {
        case .retry(let at, _, let reason, _):
            logger.notice("outbox: will retry", metadata: metadata.merging(["a2p.retryAt": "\(at)", "a2p.reason": "\(reason)"]) { $1 })
        case .failed(let code, let reason), .uncertain(let code, let reason):
            logger.warning(
                "outbox: not delivered",
                metadata: metadata.merging(["a2p.code": "\(code.map(String.init) ?? "-")", "a2p.reason": "\(reason)"]) { $1 }
            )
        case .found:
            logger.info("outbox: an earlier attempt had reached Twilio; not sent again", metadata: metadata)
        case .notFound:
            logger.info("outbox: an earlier attempt did not reach Twilio; queued to be sent again", metadata: metadata)
        case .accepted, .simulated:
            logger.debug("outbox: sent", metadata: metadata)
        }
        await recorder.record(message.id, outcome)
    }

    private func attempt(_ message: OutboxMessage, metadata: Logger.Metadata) async -> DeliveryOutcome {
        guard message.needsReconcile, let since = message.firstAttemptAt else {
            return policy.outcome(of: await send(message), attempts: message.attempts, now: Date())
        }
        let started = ContinuousClock.now
        switch observed(await sender.findExisting(to: message.to, body: message.body, since: since), started: started, isSend: false) {
        case .success(let candidates):
            do {
                // Only a message no other row has claimed: two rows with the same text to one number stay two.
                if let sid = try await store.firstUnrecordedSid(candidates.map(\.sid)), let found = candidates.first(where: { $0.sid == sid }) {
                    return .found(sid: sid, twilioStatus: found.status, errorCode: found.errorCode, errorMessage: found.errorMessage)
                }
            } catch {
                return policy.outcome(
                    of: .failure(.undecodable("cannot read the outbox: \(error)")),
                    attempts: message.attempts,
                    now: Date(),
                    mayAlreadyExist: true
                )
            }
            return .notFound
        case .failure(let failure):
            // Cannot tell whether Twilio has it: never risk a second text; look again later, or leave it to an operator.
            return policy.outcome(of: .failure(failure), attempts: message.attempts, now: Date(), mayAlreadyExist: true)
        }
    }

    private func send(_ message: OutboxMessage) async -> Result<SentMessage, RESTFailure> {
        let started = ContinuousClock.now
        return observed(await sender.send(to: message.to, body: message.body), started: started, isSend: true)
    }

    /// Asks Twilio whether it accepts the credentials again, while sends are held for their refusal, and lifts the
    /// hold when they are. A finding is logged when it differs from the `last` one. A stop cuts the check short (it
    /// changes nothing at Twilio).
    private func checkCredentials(after last: CredentialsCheck?) async -> CredentialsCheck? {
        let sender = self.sender
        let check = await cancelWhenGracefulShutdown { await sender.checkCredentials() }
        guard !Task.isShuttingDownGracefully, !Task.isCancelled else { return last }
        switch check {
        case .accepted:
            if outagePause.liftHold(now: .now) != nil {
                logger.notice(
                    "outbox: Twilio accepts the credentials again; sending resumes, one text at a time until one is answered normally. Texts that failed with code 20003 are not resent on their own (see: action2phone outbox list --status failed, and --status uncertain, then outbox retry ID…)"
                )
            }
        case .refused(let reason):
            if check != last {
                logger.warning("outbox: the credentials are still refused; every send stays held", metadata: ["a2p.reason": "\(reason)"])
            }
        case .unknown(let reason):
            // Twilio or the network failed the check: sends stay held (a probe would only risk a text) until one works.
            if check != last {
                logger.warning("outbox: cannot check the credentials; every send stays held", metadata: ["a2p.reason": "\(reason)"])
            }
        }
        return check
    }

    /// Tells the pause how Twilio answered a request that started at `started`, and the operator when that
    /// starts or ends a pause or a hold. Only a send answered normally ends a pause: a lookup can work (or be
    /// refused) while creates fail, so for lookups only trouble counts.
    private func observed<T>(_ result: Result<T, RESTFailure>, started: ContinuousClock.Instant, isSend: Bool) -> Result<T, RESTFailure> {
        let failure: RESTFailure? = if case .failure(let failure) = result { failure } else { nil }
        let trouble = failure.map { DeliveryPolicy.isOutage($0) || DeliveryPolicy.refusesCredentials($0) } ?? false
        guard isSend || trouble else { return result }
        switch outagePause.observe(failure, started: started, now: .now) {
        case .paused(let wait, let first)?:
            let trouble = first ? "Twilio is in trouble" : "Twilio is still in trouble"
            let seconds = String(format: "%.1f", wait / .seconds(1))
            logger.warning(
                "outbox: \(trouble); every send waits \(seconds) s, then one text at a time until it answers normally",
                metadata: ["a2p.reason": "\(failure.map(String.init(describing:)) ?? "")"]
            )
        case .resumed?:
            logger.notice("outbox: Twilio answers normally again; sending at the configured rate")
        case .credentialsRefused(let first)?:
            let seconds = Int(outagePause.checkWait(interval: credentialsCheckInterval) / .seconds(1))
            let reason: Logger.Metadata = ["a2p.reason": "\(failure.map(String.init(describing:)) ?? "")"]
            if first {
                logger.error(
                    "outbox: Twilio refuses the credentials; every send is held, queued texts wait, and the credentials are checked every \(seconds) s. Fix TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN and restart (see: action2phone doctor)",
                    metadata: reason
                )
            } else {
                logger.warning(
                    "outbox: Twilio accepts the credentials for the account but still refuses to send; held again, next check in \(seconds) s",
                    metadata: reason
                )
            }
        case .credentialsAccepted?:
            break
        case nil:
            break
        }
        return result
    }

    /// Sleeps until `deadline`, waking early for a graceful shutdown.
    private func pause(until deadline: ContinuousClock.Instant) async {
        try? await cancelWhenGracefulShutdown {
            try await Task.sleep(until: deadline, clock: .continuous)
        }
    }
}

/// Group commit for send outcomes: outcomes that arrive while a write is under way are recorded together in
/// the next transaction, so a high send rate does not cost a database transaction per text. Each caller
/// resumes once its outcome is durable. While the database refuses, the batch is retried: a row left
/// `sending` holds back every later text to that number. It gives up only when the process is stopping (the
/// rows then become `uncertain` at the next start, never sent twice).
actor OutcomeRecorder {
    let store: any Store
    let logger: Logger
    private var pending: [(id: Int64, outcome: DeliveryOutcome, done: CheckedContinuation<Void, Never>)] = []
    private var flushing = false

    init(store: any Store, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    func record(_ id: Int64, _ outcome: DeliveryOutcome) async {
        await withCheckedContinuation { continuation in
            pending.append((id, outcome, continuation))
            if !flushing {
                flushing = true
                Task { await self.flush() }
            }
        }
    }

    private func flush() async {
        while !pending.isEmpty {
            let batch = pending
            pending = []
            var delay = Duration.milliseconds(50)
            for attempt in 1... {
                do {
                    if attempt <= 3 {
                        try await store.completeOutbox(batch.map { ($0.id, $0.outcome) }, now: Date())
                    } else {
                        // A batch that keeps failing may hold one bad outcome: record them one by one, so the others land.
                        var failed: Error? = nil
                        for item in batch {
                            do { try await store.completeOutbox(id: item.id, outcome: item.outcome, now: Date()) } catch { failed = error }
                        }
                        if let failed { throw failed }
                    }
                    break
                } catch {
                    logger.error("outbox: cannot record \(batch.count) send outcome(s); retrying", metadata: ["error": "\(error)"])
                    if Task.isCancelled || (Task.isShuttingDownGracefully && attempt >= 20) { break }
                    try? await Task.sleep(for: delay)
                    delay = min(delay * 2, .seconds(5))
                }
            }
            for item in batch { item.done.resume() }
        }
        flushing = false
    }
}

/// The start times of the last `capacity` sends: a send may start only when the oldest of them is at least
/// `capacity × interval` old.
struct SlidingWindow {
    let capacity: Int
    let length: Duration
    private var starts: [ContinuousClock.Instant] = []
    private var head = 0

    init(capacity: Int, interval: Duration) {
        self.capacity = capacity
        self.length = interval * capacity
        starts.reserveCapacity(capacity)
    }

    /// When the next send may start, if not now.
    func nextFree(after now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        guard starts.count == capacity else { return nil }
        let free = starts[head].advanced(by: length)
        return free > now ? free : nil
    }

    mutating func record(_ start: ContinuousClock.Instant) {
        if starts.count < capacity {
            starts.append(start)
        } else {
            starts[head] = start
            head = (head + 1) % capacity
        }
    }
}

/// How many sends are in flight.
final class InFlight: Sendable {
    private let value = Locked(0)
    var count: Int { value.withLock { $0 } }
    func add(_ n: Int) { value.withLock { $0 += n } }
}
