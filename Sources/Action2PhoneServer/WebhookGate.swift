// SPDX-License-Identifier: Apache-2.0
import Action2PhoneCore
import HTTPTypes
import Hummingbird
import NIOCore
import TwilioKit

extension HTTPField.Name {
    static let twilioSignature = Self("X-Twilio-Signature")!
    static let twilioIdempotencyToken = Self("I-Twilio-Idempotency-Token")!
    static let forwardedProto = Self("X-Forwarded-Proto")!
}

/// The checks every Twilio webhook passes, in SPEC §3's order: 413 body too large, 415 not a form,
/// 400 undecodable form, 403 missing or wrong signature, 403 foreign `AccountSid`.
/// Nothing is stored for a request that fails here.
struct WebhookGate: Sendable {
    let validator: RequestValidator
    let accountSid: String?
    let publicURL: String?
    /// How long a body may take to arrive, in all. The idle timeout starts again with every byte, so a client
    /// sending one byte a minute would hold its connection (and a graceful stop, and the next server's start)
    /// for as long as it liked.
    let bodyDeadlines: BodyDeadlines

    init(config: ServerConfig) {
        self.validator = RequestValidator(authTokens: config.webhookTokens.map { $0.reveal() })
        self.accountSid = config.isLocalMode ? nil : config.accountSid
        self.publicURL = config.publicURL
        self.bodyDeadlines = BodyDeadlines(limit: config.bodyDeadline)
    }

    /// The decoded form fields of a request that passed every check; throws the HTTP error otherwise.
    func admit(_ request: Request, context: AppRequestContext) async throws -> [FormField] {
        let limit = context.maxUploadSize
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > limit {
            throw WebhookRejection(.contentTooLarge, "body larger than \(limit) bytes")
        }
        let buffer: ByteBuffer
        // Past the deadline the connection stops being read: the collection ends, the answer is 408, and the
        // connection closes once it is written.
        let reading = bodyDeadlines.begin(context.channel)
        let collected: Result<ByteBuffer, any Error>
        do {
            collected = .success(try await request.body.collect(upTo: limit))
        } catch {
            collected = .failure(error)
        }
        if bodyDeadlines.end(reading) {
            throw WebhookRejection(.requestTimeout, "request body not received within \(bodyDeadlines.limitText)")
        }
        do {
            buffer = try collected.get()
        } catch is NIOTooManyBytesError {
            throw WebhookRejection(.contentTooLarge, "body larger than \(limit) bytes")
        } catch {
            // The client stopped before sending the body it announced: its fault, not ours.
            throw WebhookRejection(.badRequest, "incomplete request body")
        }
        guard Self.isForm(request.headers[.contentType]) else {
            throw WebhookRejection(.unsupportedMediaType, "Content-Type must be application/x-www-form-urlencoded")
        }
        guard let fields = FormCodec.decode(Array(buffer.readableBytesView)) else {
            throw WebhookRejection(.badRequest, "undecodable form body")
        }
        guard let url = signedURL(request) else {
            throw WebhookRejection(.badRequest, "the Host header is not a host name and port")
        }
        let signature = request.headers[.twilioSignature]
        guard validator.isValid(signature: signature, url: url, params: fields) else {
            throw WebhookRejection(
                .forbidden,
                nil,
                reason: signature == nil ? "missing X-Twilio-Signature" : "invalid X-Twilio-Signature for \(Self.loggable(url))"
            )
        }
        // Only MessageSid, From and To are required (SPEC §3.7): a signed webhook without AccountSid is taken, one that
        // names another account (in any of its AccountSid fields) is not.
        if let accountSid, fields.contains(where: { $0.name == "AccountSid" && $0.value != accountSid }) {
            throw WebhookRejection(.forbidden, nil, reason: "AccountSid is not this account's")
        }
        return fields
    }

    /// `url` for the log: a request line can be many kilobytes, and a prober would fill the log with them.
    /// A password in it is never shown (`ServerConfig.displayed`).
    static func loggable(_ url: String, limit: Int = 300) -> String {
        let url = ServerConfig.displayed(url)
        return url.utf8.count <= limit ? url : String(decoding: url.utf8.prefix(limit), as: UTF8.self) + "… (\(url.utf8.count) bytes)"
    }

    /// Whether `contentType` is a form: its media type before any parameters (`; charset=utf-8`), without
    /// case or spaces, is `application/x-www-form-urlencoded`.
    static func isForm(_ contentType: String?) -> Bool {
        guard let contentType else { return false }
        if contentType == "application/x-www-form-urlencoded" { return true }  // as Twilio sends it
        return contentType.split(separator: ";", maxSplits: 1).first?.trimmingWhitespace().lowercased() == "application/x-www-form-urlencoded"
    }

    /// The URL Twilio signed: the public base URL plus the raw request target, or, without one, the URL
    /// rebuilt from `X-Forwarded-Proto` and `Host`. The query's bytes are kept exactly as received. Nil for a
    /// `Host` that is not a host and port: with a path, a query or a fragment in it (`bot.example.org/sms/status#`),
    /// a webhook signed for another URL of the account would pass as one signed for this one.
    func signedURL(_ request: Request) -> String? {
        let target = request.uri.description
        if let publicURL { return publicURL + target }
        if let authority = request.head.authority, !Self.isHostAndPort(authority) { return nil }
        var scheme = request.head.scheme ?? "http"
        if let proto = request.headers[.forwardedProto]?.split(separator: ",").first?.trimmingWhitespace().lowercased(),
            proto == "http" || proto == "https"
        {
            scheme = proto
        }
        return scheme + "://" + (request.head.authority ?? "localhost") + target
    }
}

extension WebhookGate {
    /// Whether `authority` can only be a host and a port (RFC 9110 §7.2): letters, digits, dots, hyphens and
    /// underscores, the brackets and colons of an IPv6 address, a colon before the port. No `/`, `?`, `#`, `@` or `%`.
    static func isHostAndPort(_ authority: String) -> Bool {
        !authority.isEmpty
            && authority.utf8.allSatisfy { b in
                switch b {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                    true
                case UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: ":"), UInt8(ascii: "["), UInt8(ascii: "]"):
                    true
                default: false
                }
            }
    }
}

/// A webhook refused before anything was stored.
struct WebhookRejection: HTTPResponseError {
    let status: HTTPResponse.Status
    /// Said to the caller (never for 403: a prober learns nothing).
    let message: String?
    /// Logged.
    let reason: String

    init(_ status: HTTPResponse.Status, _ message: String?, reason: String? = nil) {
        self.status = status
        self.message = message
        self.reason = reason ?? message ?? "\(status.code)"
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        guard let message else { return Response(status: status) }
        return Response(
            status: status,
            headers: [.contentType: "text/plain; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: message + "\n"))
        )
    }
}
