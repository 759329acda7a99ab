// SPDX-License-Identifier: Apache-2.0
import Foundation

/// Runs the conversation for one inbound message: reads the stored state, does any passcode hashing off the
/// event loop, then decides and applies the step in one store transaction.
public struct ConversationService: InboundHandler {
    let store: any Store
    let engine: ConversationEngine
    let hasher: PasscodeHasher
    let replyMode: ReplyMode

    public init(store: any Store, engine: ConversationEngine, hasher: PasscodeHasher, replyMode: ReplyMode) {
        self.store = store
        self.engine = engine
        self.hasher = hasher
        self.replyMode = replyMode
    }

    public func handle(_ record: InboundRecord, now: Date) async throws -> InboundOutcome {
        let input = Inbound(text: record.body, numMedia: record.numMedia, optOutType: record.fields.first { $0.name == "OptOutType" }?.value)
        let (state, account) = try await store.conversationSnapshot(phone: record.from)
        var evidence: PasscodeEvidence? = nil
        if let work = engine.passcodeWork(for: input, state: state, account: account, now: now) {
            evidence = await hasher.perform(work)
        }
        let engine = self.engine
        return try await store.processInbound(record, replyMode: replyMode, now: now) { [evidence] state, facts in
            try engine.reduce(&state, input, evidence: evidence, facts: facts, now: now)
        }
    }
}
