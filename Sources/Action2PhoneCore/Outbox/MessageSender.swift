// SPDX-License-Identifier: Apache-2.0
import Foundation
import Logging
import TwilioKit

/// Sends texts: Twilio's REST API in production, a log line in local mode.
public protocol MessageSender: Sendable {
    func send(to: String, body: String) async -> Result<SentMessage, RESTFailure>
    /// Messages with this body that Twilio created for `to` since about `since`, newest first.
    func findExisting(to: String, body: String, since: Date) async -> Result<[MessageResource], RESTFailure>
    /// Whether Twilio accepts the credentials for sending, asked without sending anything.
    func checkCredentials() async -> CredentialsCheck
}

/// What a check of the credentials found (`MessageSender.checkCredentials`).
public enum CredentialsCheck: Sendable, Equatable {
    /// Accepted, and the account is active.
    case accepted
    /// Refused (401, code 20003), or the account is not active: a text sent now would fail.
    case refused(String)
    /// The check itself could not tell: Twilio or the network failed it.
    case unknown(String)
}

/// Sends through Twilio's Messages API.
public struct TwilioSender: MessageSender {
    let client: TwilioRESTClient

    public init(client: TwilioRESTClient) { self.client = client }

    /// How far ahead of Twilio's this machine's clock may be for a lookup to find the message an attempt created.
    static let clockSlack: TimeInterval = 600

    public func send(to: String, body: String) async -> Result<SentMessage, RESTFailure> {
        await client.createMessage(to: to, body: body).map { .accepted(sid: $0.sid) }
    }

    public func findExisting(to: String, body: String, since: Date) async -> Result<[MessageResource], RESTFailure> {
        // `since` is this machine's time and date_created Twilio's: a clock running ahead of Twilio's by more than the
        // slack would hide the message the first attempt created, and the text would go twice. Ten minutes covers a
        // clock left unsynchronised; the messages other rows recorded (their SIDs) are never taken for this one.
        let earliest = since.addingTimeInterval(-Self.clockSlack)
        return await client.listMessages(to: to, since: earliest).map { messages in
            messages.filter { Self.sameText(twilio: $0.body ?? "", ours: body) && ($0.created.map { $0 >= earliest } ?? true) }
        }
    }

    public func checkCredentials() async -> CredentialsCheck {
        switch await client.fetchAccount() {
        case .success(let account):
            guard let status = account.status, status != "active" else { return .accepted }
            return .refused("the account is \(status)")
        case .failure(let failure) where DeliveryPolicy.refusesCredentials(failure):
            return .refused("\(failure)")
        case .failure(let failure):
            return .unknown("\(failure)")
        }
    }

    /// Whether the body Twilio lists is the text we sent. Twilio may have changed it on the way: a trial account
    /// prefixes it, and a Messaging Service with Smart Encoding replaces Unicode look-alikes with GSM-7 characters.
    /// Missing our own text there would send it a second time.
    static func sameText(twilio: String, ours: String) -> Bool {
        if twilio == ours { return true }
        let trial = "Sent from your Twilio trial account - "
        let listed = twilio.hasPrefix(trial) ? String(twilio.dropFirst(trial.count)) : twilio
        return listed == ours || smartEncoded(listed) == smartEncoded(ours)
    }

    /// `text` with the common look-alikes Smart Encoding replaces (quotes, dashes, the ellipsis, unusual spaces)
    /// as their GSM-7 forms.
    static func smartEncoded(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\u{2018}", "\u{2019}", "\u{201A}", "\u{201B}", "\u{2032}", "\u{02BC}": out.append("'")
            case "\u{201C}", "\u{201D}", "\u{201E}", "\u{201F}", "\u{2033}", "\u{00AB}", "\u{00BB}": out.append("\"")
            case "\u{2010}", "\u{2011}", "\u{2012}", "\u{2013}", "\u{2014}", "\u{2015}", "\u{2212}": out.append("-")
            case "\u{2026}": out.append("...")
            case "\u{00A0}", "\u{2000}"..."\u{200A}", "\u{202F}", "\u{205F}", "\u{3000}": out.append(" ")
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

/// Local mode: logs what would have been sent; nothing leaves the machine.
public struct SimulatedSender: MessageSender {
    let logger: Logger

    public init(logger: Logger) { self.logger = logger }

    public func send(to: String, body: String) async -> Result<SentMessage, RESTFailure> {
        // Quoted and escaped: a text's line breaks must not start lines of the log that look like entries of their own.
        logger.info("local mode, not sent: SMS to \(to): \(body.debugDescription)")
        return .success(.simulated)
    }

    public func findExisting(to: String, body: String, since: Date) async -> Result<[MessageResource], RESTFailure> {
        .success([])
    }

    public func checkCredentials() async -> CredentialsCheck { .accepted }
}
