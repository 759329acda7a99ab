// SPDX-License-Identifier: Apache-2.0
import Foundation
import Logging
import TwilioKit

/// Sends texts: Twilio's REST API in production, a log line in local mode.
public protocol MessageSender: Sendable {
    func send(to: String, body: String) async -> Result<SentMessage, RESTFailure>
    /// The SID of a message with this body already created for `to` since `since`, if Twilio has one.
    func findExisting(to: String, body: String, since: Date) async -> Result<String?, RESTFailure>
}

/// Sends through Twilio's Messages API.
public struct TwilioSender: MessageSender {
    let client: TwilioRESTClient

    public init(client: TwilioRESTClient) { self.client = client }

    public func send(to: String, body: String) async -> Result<SentMessage, RESTFailure> {
        await client.createMessage(to: to, body: body).map { .accepted(sid: $0.sid) }
    }

    public func findExisting(to: String, body: String, since: Date) async -> Result<String?, RESTFailure> {
        // date_created has one-second resolution and clocks drift: allow a minute of slack.
        await client.listMessages(to: to).map { messages in
            messages.first { $0.body == body && ($0.created.map { $0 >= since.addingTimeInterval(-60) } ?? true) }?.sid
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

    public func findExisting(to: String, body: String, since: Date) async -> Result<String?, RESTFailure> {
        .success(nil)
    }
}
