// SPDX-License-Identifier: Apache-2.0
import Foundation

/// Turns one validated inbound message into its TwiML reply, recording it durably.
public protocol InboundHandler: Sendable {
    func handle(_ record: InboundRecord, now: Date) async throws -> InboundOutcome
}
