// SPDX-License-Identifier: Apache-2.0
import Foundation
import Logging

/// Runs the conversation for one inbound message: reads the stored state, does any passcode hashing off the
/// event loop, then decides and applies the step in one store transaction.
public struct ConversationService: InboundHandler {
    let store: any Store
    let engine: ConversationEngine
    let hasher: PasscodeHasher
    let replyMode: ReplyMode
    /// How long a text waits for a free hashing slot before it is answered that the passcode was not
    /// checked (send it again): Twilio gives up on a webhook after 15 s, and in `twiml` mode its reply would be
    /// lost with it.
    let passcodeWait: Duration
    /// Whether a passcode hash's upgrade (`upgrade`) happens after the reply (`serve`) or before it (`chat` and
    /// `replay` in this process, which may end right after their last text).
    let upgradesInBackground: Bool
    let logger: Logger

    public static let defaultPasscodeWait: Duration = .seconds(8)

    public init(
        store: any Store,
        engine: ConversationEngine,
        hasher: PasscodeHasher,
        replyMode: ReplyMode,
        passcodeWait: Duration = defaultPasscodeWait,
        upgradesInBackground: Bool = true,
        logger: Logger = Logger(label: "action2phone")
    ) {
        self.store = store
        self.engine = engine
        self.hasher = hasher
        self.replyMode = replyMode
        self.passcodeWait = passcodeWait
        self.upgradesInBackground = upgradesInBackground
        self.logger = logger
    }

    /// One transaction in the common case. A text that needs PBKDF2 (a passcode answer, `LOGIN <passcode>`)
    /// aborts its first transaction, hashes off the event loop, and runs again with the result.
    public func handle(_ record: InboundRecord, now: Date) async throws -> InboundOutcome {
        let input = Inbound(text: record.body, numMedia: record.numMedia, optOutType: record.fields.first { $0.name == "OptOutType" }?.value)
        do {
            return try await step(record, input, prepared: nil, now: now)
        } catch let needed as PasscodeWorkNeeded {
            if case .verify(_, let stored) = needed.work, !stored.isUsable {
                // It matches no passcode, so the person can never log in, and would only hear "wrong passcode".
                logger.error(
                    "the stored passcode of this number's account is damaged and matches no passcode; the person cannot log in until the account is deleted (action2phone users delete) and registered again",
                    metadata: ["a2p.phone": "\(record.from)"]
                )
            }
            let evidence = await hasher.perform(needed.work, waitingAtMost: passcodeWait)
            let outcome = try await step(record, input, prepared: (needed.work, evidence), now: now)
            if case .verify(let passcode, let stored) = needed.work, evidence == .verified(true, against: stored),
                stored.iterations < hasher.iterations
            {
                // (In `serve`, not awaited: the reply does not wait for a second hash, which a burst of logins could
                // push past Twilio's 15 s.)
                if upgradesInBackground {
                    Task { await upgrade(stored, of: record.from, to: passcode) }
                } else {
                    await upgrade(stored, of: record.from, to: passcode)
                }
            }
            return outcome
        }
    }

    /// Hashes a passcode that has just been verified again at the cost now configured, and stores that hash: one
    /// made at a lower cost (an older default, a test setting used by mistake) would otherwise stay as weak as it was
    /// made. After the reply, in a hashing slot of its own; a passcode changed meanwhile is left alone.
    private func upgrade(_ stored: PasscodeHash, of phone: String, to passcode: String) async {
        guard let upgraded = await hasher.hash(passcode, waitingAtMost: passcodeWait) else { return }
        do {
            if try await store.upgradePasscodeHash(phone: phone, verified: stored, upgraded: upgraded) {
                logger.info(
                    "passcode hash upgraded to the configured cost",
                    metadata: ["a2p.phone": "\(phone)", "a2p.iterations": "\(stored.iterations) -> \(upgraded.iterations)"]
                )
            }
        } catch {
            logger.error("could not store the upgraded passcode hash (the old one stays)", metadata: ["error": "\(error)"])
        }
    }

    private func step(
        _ record: InboundRecord,
        _ input: Inbound,
        prepared: (PasscodeWork, PasscodeEvidence)?,
        now: Date
    ) async throws -> InboundOutcome {
        let engine = self.engine
        return try await store.processInbound(record, replyMode: replyMode, now: now) { state, facts in
            var evidence: PasscodeEvidence? = nil
            if let work = engine.passcodeWork(
                for: input,
                state: state,
                account: try facts.account(),
                optedOut: try facts.consent().optedOut,
                now: now
            ) {
                guard let prepared else { throw PasscodeWorkNeeded(work: work) }
                // Work done for another state (it changed meanwhile) is not used: the step asks again.
                evidence = prepared.0 == work ? prepared.1 : nil
            }
            // The text was taken for a passcode and hashed: whatever the state is now, it is never logged or echoed.
            return try engine.reduce(&state, input, evidence: evidence, facts: facts, now: now, passcodeText: prepared != nil)
        }
    }
}

/// Thrown inside the step's transaction (rolling it back) when the text needs passcode hashing first.
struct PasscodeWorkNeeded: Error {
    let work: PasscodeWork
}
