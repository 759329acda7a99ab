// SPDX-License-Identifier: Apache-2.0
import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A client for the parts of Twilio's 2010-04-01 REST API the bot uses: create a message, list messages
/// (to reconcile a send whose outcome is unknown), and look up the account and its numbers (for `doctor`).
///
/// ```swift
/// let client = TwilioRESTClient(accountSid: "AC…", authToken: token, sender: .number("+15005550006"))
/// switch await client.createMessage(to: "+14155550100", body: "Privet") {
/// case .created(let message): print(message.sid)
/// case .failed(let failure): print(failure)
/// }
/// ```
public struct TwilioRESTClient: Sendable {
    /// Who a message is sent from.
    public enum Sender: Sendable, Equatable {
        case number(String)
        case messagingService(String)
    }

    public let baseURL: String
    public let accountSid: String
    private let authorization: String
    public let sender: Sender
    public let statusCallback: String?
    /// This client's connections to the API, and the thread that drives them.
    private let transport: CurlTransport
    /// How long one request may take in all, its answer included.
    private let deadline: Duration

    public init(
        baseURL: String = "https://api.twilio.com",
        accountSid: String,
        authToken: String,
        sender: Sender,
        statusCallback: String? = nil,
        timeout: TimeInterval = 15
    ) {
        self.init(
            baseURL: baseURL,
            accountSid: accountSid,
            authToken: authToken,
            sender: sender,
            statusCallback: statusCallback,
            timeout: timeout,
            keptConnectionAge: CurlTransport.keptConnectionAge
        )
    }

    init(
        baseURL: String,
        accountSid: String,
        authToken: String,
        sender: Sender,
        statusCallback: String?,
        timeout: TimeInterval,
        keptConnectionAge: Duration
    ) {
        self.transport = CurlTransport(keptConnectionAge: keptConnectionAge)
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.accountSid = accountSid
        self.authorization = "Basic " + Crypto.base64(Array("\(accountSid):\(authToken)".utf8))
        self.sender = sender
        self.statusCallback = statusCallback
        // `timeout` (at least a second) is how long an answer may keep silent, or a connection take to be made; an
        // answer that trickles in a byte at a time would otherwise hold the send (and the number's queue, and a
        // shutdown) for as long as it lasts, so the whole request gets twice as long (`CurlTransport`).
        self.deadline = .seconds(2 * max(1, timeout.rounded(.up)))
    }

    // MARK: - Messages

    /// `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`.
    public func createMessage(to: String, body: String) async -> Result<MessageResource, RESTFailure> {
        var fields: [FormField] = [.init("To", to)]
        switch sender {
        case .number(let from): fields.append(.init("From", from))
        case .messagingService(let sid): fields.append(.init("MessagingServiceSid", sid))
        }
        fields.append(.init("Body", body))
        if let statusCallback { fields.append(.init("StatusCallback", statusCallback)) }
        guard let url = URL(string: "\(baseURL)/2010-04-01/Accounts/\(accountSid)/Messages.json") else { return .failure(badURL) }
        var request = URLRequest(url: url)
        request.httpMethod = "POST"
        request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
        request.httpBody = Data(FormCodec.encode(fields).utf8)
        return await perform(request, expecting: 201, as: MessageResource.self)
    }

    /// `GET …/Messages.json?To=…[&From=…]`: the messages to a number created since `since`, newest first (and
    /// perhaps some older ones), following `next_page_uri` until a page holds nothing created since `since`. More than
    /// `maxPages` pages of them is a failure: the caller cannot tell what is there.
    public func listMessages(to: String, since: Date, pageSize: Int = 50, maxPages: Int = 10) async -> Result<[MessageResource], RESTFailure> {
        var query: [FormField] = [.init("To", to)]
        if case .number(let from) = sender { query.append(.init("From", from)) }
        query.append(.init("PageSize", String(pageSize)))
        var path = "/2010-04-01/Accounts/\(accountSid)/Messages.json?\(FormCodec.encode(query))"
        var messages: [MessageResource] = []
        for _ in 0..<maxPages {
            // Always on the configured host: a next_page_uri is a path on it.
            guard path.hasPrefix("/"), let url = URL(string: baseURL + path) else { return .failure(badURL) }
            let page: MessagePage
            switch await perform(URLRequest(url: url), expecting: 200, as: MessagePage.self) {
            case .success(let p): page = p
            case .failure(let failure): return .failure(failure)
            }
            messages += page.messages
            // Twilio sorts by when a message was sent, not created: go on while any on the page may be recent enough.
            let reachedSince = page.messages.allSatisfy { ($0.created ?? .distantPast) < since }
            guard !reachedSince, let next = page.nextPageURI, !next.isEmpty else { return .success(messages) }
            path = next
        }
        return .failure(.inconclusive("more than \(maxPages * pageSize) messages to \(to) since \(since): cannot tell whether one is this text"))
    }

    // MARK: - Account and numbers (doctor)

    /// `GET /2010-04-01/Accounts/{AccountSid}.json`: checks that the credentials are accepted.
    public func fetchAccount() async -> Result<AccountResource, RESTFailure> {
        guard let url = URL(string: "\(baseURL)/2010-04-01/Accounts/\(accountSid).json") else { return .failure(badURL) }
        return await perform(URLRequest(url: url), expecting: 200, as: AccountResource.self)
    }

    /// `GET …/IncomingPhoneNumbers.json?PhoneNumber=…`: the account's number, with its SMS webhook.
    public func findIncomingNumber(_ phoneNumber: String) async -> Result<IncomingNumber?, RESTFailure> {
        let query = FormCodec.encode([.init("PhoneNumber", phoneNumber)])
        guard let url = URL(string: "\(baseURL)/2010-04-01/Accounts/\(accountSid)/IncomingPhoneNumbers.json?\(query)") else {
            return .failure(badURL)
        }
        return await perform(URLRequest(url: url), expecting: 200, as: IncomingNumberPage.self).map { $0.incomingPhoneNumbers.first }
    }

    /// `GET https://messaging.twilio.com/v1/Services/{sid}`: a Messaging Service of the account, with its inbound
    /// webhook (`nil` when the account has no such service: Twilio answers 404).
    public func fetchMessagingService(_ sid: String) async -> Result<MessagingService?, RESTFailure> {
        guard let url = URL(string: "\(messagingBaseURL)/v1/Services/\(sid)") else { return .failure(badURL) }
        switch await perform(URLRequest(url: url), expecting: 200, as: MessagingService.self) {
        case .success(let service): return .success(service)
        case .failure(.http(404, _, _, _, _)): return .success(nil)
        case .failure(let failure): return .failure(failure)
        }
    }

    /// Where the Messaging Services API is: `messaging.` where Twilio's own API host begins with `api.`
    /// (`https://api.twilio.com`, or a region's `https://api.dublin.ie1.twilio.com`); any other base (a local
    /// stand-in) serves both.
    public var messagingBaseURL: String {
        guard let scheme = baseURL.range(of: "://") else { return baseURL }
        let host = baseURL[scheme.upperBound...].prefix { $0 != "/" && $0 != ":" }.lowercased()
        guard host.hasPrefix("api."), host.hasSuffix(".twilio.com") else { return baseURL }
        return baseURL.replacingCharacters(in: scheme.upperBound..<baseURL.index(scheme.upperBound, offsetBy: 4), with: "messaging.")
    }

    // MARK: - Transport

    private var badURL: RESTFailure { .transport(.notSent, "invalid API URL from base \(URLPassword.masked(baseURL)) and account \(accountSid)") }

    private func perform<T: Decodable>(_ request: URLRequest, expecting status: Int, as type: T.Type) async -> Result<T, RESTFailure> {
        var request = request
        request.setValue(authorization, forHTTPHeaderField: "Authorization")
        request.setValue("application/json", forHTTPHeaderField: "Accept")
        let answer: CurlTransport.Answer
        switch await transport.perform(request, timeout: deadline) {
        case .success(let a): answer = a
        case .failure(let error): return .failure(.transport(Self.classify(error), Self.describe(error)))
        }
        // A redirect is not followed: the credentials go to TWILIO_API_BASE_URL alone (a redirected POST would also
        // have lost its body). Twilio's API does not redirect; whoever answered did not create the message.
        if (300..<400).contains(answer.status) {
            return .failure(
                .transport(
                    .notSent,
                    "the API answered HTTP \(answer.status), a redirect; not followed (the credentials go to TWILIO_API_BASE_URL only)"
                )
            )
        }
        // 408: the server closed the connection before it had the whole request (RFC 9110 §15.5.9), or before any
        // (libcurl reads one written on a kept connection while it was idle as the answer to the next request): no
        // message was created, and the request is safe to send again.
        if answer.status == 408 {
            return .failure(.transport(.notSent, "the API answered HTTP 408, Request Timeout: it did not read the request"))
        }
        guard answer.status == status || (200..<300).contains(answer.status) else {
            let body = try? JSONDecoder().decode(APIError.self, from: answer.body)
            return .failure(
                .http(
                    status: answer.status,
                    code: body?.code,
                    message: body?.message ?? "[HTTP \(answer.status)] Failed to execute request",
                    moreInfo: body?.moreInfo,
                    retryAfter: Self.retryAfter(answer.headers["retry-after"])
                )
            )
        }
        do {
            return .success(try JSONDecoder().decode(T.self, from: answer.body))
        } catch {
            return .failure(.undecodable("HTTP \(answer.status) with a body that is not the expected JSON: \(error)"))
        }
    }

    /// Whether a transport error can have let the request reach Twilio.
    static func classify(_ error: URLError) -> RESTFailure.Delivery {
        switch error.code {
        case .cannotConnectToHost, .cannotFindHost, .dnsLookupFailed, .notConnectedToInternet, .badURL, .unsupportedURL,
            .secureConnectionFailed, .serverCertificateUntrusted, .serverCertificateHasBadDate, .serverCertificateNotYetValid,
            .serverCertificateHasUnknownRoot, .clientCertificateRejected, .cannotLoadFromNetwork:
            .notSent
        default:
            .maybeSent  // timed out, connection lost, bad response: the message may exist
        }
    }

    /// Transport errors in words (corelibs' localized descriptions are only codes).
    static func describe(_ error: URLError) -> String {
        let what =
            switch error.code {
            case .timedOut: "timed out waiting for Twilio"
            case .networkConnectionLost: "the connection was lost"
            case .cannotConnectToHost: "cannot connect to the API host"
            case .cannotFindHost, .dnsLookupFailed: "cannot find the API host"
            case .notConnectedToInternet: "no network"
            case .secureConnectionFailed: "TLS connection failed"
            case .badServerResponse: "bad response from the server"
            default: "network error"
            }
        let detail = (error.userInfo[CurlTransport.detailKey] as? String).map { ": " + $0 } ?? ""
        return "\(what)\(detail) (URLError \(error.code.rawValue))"
    }

    /// `Retry-After` as seconds (a number of seconds or an HTTP date).
    static func retryAfter(_ value: String?) -> TimeInterval? {
        guard let value = value?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if let seconds = Double(value), seconds >= 0 { return seconds }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter.date(from: value).map { max(0, $0.timeIntervalSinceNow) }
    }
}

/// Why a REST call did not succeed.
public enum RESTFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// Whether a request that failed in transport may have reached Twilio.
    public enum Delivery: Sendable, Equatable {
        /// The connection was never made: safe to send again.
        case notSent
        /// The request may have been received (timeout, dropped connection).
        case maybeSent
    }

    case transport(Delivery, String)
    /// Twilio answered with an error status; `code` and `message` come from its error JSON when present.
    case http(status: Int, code: Int?, message: String, moreInfo: String?, retryAfter: TimeInterval?)
    case undecodable(String)
    /// Twilio answered, but the answer cannot settle the question (a lookup with too many messages to read).
    case inconclusive(String)

    /// The `Retry-After` Twilio sent with an error status, if any.
    public var retryAfter: TimeInterval? {
        if case .http(_, _, _, _, let retryAfter) = self { retryAfter } else { nil }
    }

    public var description: String {
        switch self {
        case .transport(let delivery, let detail): "transport failure (\(delivery == .notSent ? "not sent" : "may have been sent")): \(detail)"
        case .http(let status, let code, let message, _, _): "HTTP \(status)\(code.map { " code \($0)" } ?? ""): \(message)"
        case .undecodable(let detail), .inconclusive(let detail): detail
        }
    }
}

/// A message resource (`num_segments` and `price` are strings in Twilio's JSON).
public struct MessageResource: Decodable, Sendable, Equatable {
    public var sid: String
    public var status: String
    public var to: String?
    public var from: String?
    public var body: String?
    public var numSegments: String?
    public var errorCode: Int?
    public var errorMessage: String?
    public var dateCreated: String?

    enum CodingKeys: String, CodingKey {
        case sid, status, to, from, body
        case numSegments = "num_segments"
        case errorCode = "error_code"
        case errorMessage = "error_message"
        case dateCreated = "date_created"
    }

    /// `date_created` (RFC 2822, e.g. `Thu, 30 Jul 2015 20:12:31 +0000`).
    public var created: Date? {
        guard let dateCreated else { return nil }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss Z"
        return formatter.date(from: dateCreated)
    }
}

struct MessagePage: Decodable {
    var messages: [MessageResource]
    var nextPageURI: String?
    enum CodingKeys: String, CodingKey {
        case messages
        case nextPageURI = "next_page_uri"
    }
}

/// An account resource.
public struct AccountResource: Decodable, Sendable, Equatable {
    public var sid: String
    public var status: String?
    public var friendlyName: String?
    enum CodingKeys: String, CodingKey {
        case sid, status
        case friendlyName = "friendly_name"
    }
}

/// A Messaging Service and where it sends the texts its numbers receive.
public struct MessagingService: Decodable, Sendable, Equatable {
    public var sid: String
    public var friendlyName: String?
    /// `nil`: incoming texts are dropped (unless the numbers' own webhooks are used).
    public var inboundRequestURL: String?
    public var inboundMethod: String?
    /// Each number's own webhook answers its texts, not the service's.
    public var useInboundWebhookOnNumber: Bool?
    enum CodingKeys: String, CodingKey {
        case sid
        case friendlyName = "friendly_name"
        case inboundRequestURL = "inbound_request_url"
        case inboundMethod = "inbound_method"
        case useInboundWebhookOnNumber = "use_inbound_webhook_on_number"
    }
}

/// An incoming phone number with its messaging webhook.
public struct IncomingNumber: Decodable, Sendable, Equatable {
    public var sid: String
    public var phoneNumber: String
    public var smsUrl: String?
    public var smsMethod: String?
    enum CodingKeys: String, CodingKey {
        case sid
        case phoneNumber = "phone_number"
        case smsUrl = "sms_url"
        case smsMethod = "sms_method"
    }
}

struct IncomingNumberPage: Decodable {
    var incomingPhoneNumbers: [IncomingNumber]
    enum CodingKeys: String, CodingKey { case incomingPhoneNumbers = "incoming_phone_numbers" }
}

/// Twilio's error JSON: `{"code":21211,"message":"…","more_info":"…","status":400}`.
struct APIError: Decodable {
    var code: Int?
    var message: String?
    var moreInfo: String?
    enum CodingKeys: String, CodingKey {
        case code, message
        case moreInfo = "more_info"
    }
}

/// Internals exposed for tests.
public enum TwilioRESTClientTestHooks {
    public static func retryAfter(_ value: String?) -> TimeInterval? { TwilioRESTClient.retryAfter(value) }
}

/// The credentials never show: `serve` at debug level logs each service as `"\(service)"`, and the worker holds
/// this client, whose `authorization` header is the account SID and auth token in base64.
extension TwilioRESTClient: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String { "TwilioRESTClient(baseURL: \(URLPassword.masked(baseURL)), accountSid: \(accountSid), sender: \(sender))" }
    public var debugDescription: String { description }
    public var customMirror: Mirror {
        Mirror(self, children: ["baseURL": URLPassword.masked(baseURL), "accountSid": accountSid, "sender": sender])
    }
}
