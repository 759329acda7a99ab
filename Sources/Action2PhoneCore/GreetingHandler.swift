// SPDX-License-Identifier: Apache-2.0
import Foundation

/// Answers every text with one fixed greeting, recording it like any other step.
public struct GreetingHandler: InboundHandler {
    public static let greeting = "Privet, comrade! The people's SMS bot hears you. Reply HELP for commands."
    let store: any Store
    let replyMode: ReplyMode

    public init(store: any Store, replyMode: ReplyMode) {
        self.store = store
        self.replyMode = replyMode
    }

    public func handle(_ record: InboundRecord, now: Date) async throws -> InboundOutcome {
        try await store.processInbound(record, replyMode: replyMode, now: now) { state, _ in
            state.lastActivity = now
            return Decision(replies: [Self.greeting], loggedBody: record.body)
        }
    }
}
