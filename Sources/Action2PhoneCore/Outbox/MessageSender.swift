// SPDX-License-Identifier: Apache-2.0
import Foundation
import Logging
import TwilioKit

/// Sends texts: Twilio's REST API in production, a log line in local mode.
public protocol MessageSender: Sendable {
    func send(to: String, body: String) async -> Result<SentMessage, RESTFailure>
    /// Messages with this body that Twilio created for `to` since about `since`, newest first.
    func findExisting(to: String, body: String, since: Date) async -> Result<[MessageResource], RESTFailure>
}

/// Sends through Twilio's Messages API.
public struct TwilioSender: MessageSender {
    let client: TwilioRESTClient

    public init(client: TwilioRESTClient) { self.client = client }

    public func send(to: String, body: String) async -> Result<SentMessage, RESTFailure> {
        await client.createMessage(to: to, body: body).map { .accepted(sid: $0.sid) }
    }

    public func findExisting(to: String, body: String, since: Date) async -> Result<[MessageResource], RESTFailure> {
        // date_created has one-second resolution and clocks drift a little: allow 15 seconds of slack.
        let earliest = since.addingTimeInterval(-15)
        return await client.listMessages(to: to, since: earliest).map { messages in
            messages.filter { $0.body == body && ($0.created.map { $0 >= earliest } ?? true) }
        }
    }
}

/// Local mode: logs what would have been sent; nothing leaves the machine.
public struct SimulatedSender: MessageSender {
    let logger: Logger

    public init(logger: Logger) { self.logger = logger }

    public func send(to: String, body: String) async -> Result<SentMessage, RESTFailure> {
        logger.info("local mode, not sent: SMS to \(to): \(body)")
        return .success(.simulated)
    }

    public func findExisting(to: String, body: String, since: Date) async -> Result<[MessageResource], RESTFailure> {
        .success([])
    }
}
