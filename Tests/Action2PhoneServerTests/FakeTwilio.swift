import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import TwilioKit

/// A local stand-in for Twilio's REST API (Messages, Accounts, IncomingPhoneNumbers), driven by the `To`
/// number like Twilio's magic test numbers:
///
/// | To | behaviour |
/// | --- | --- |
/// | +15005550001 | 400, code 21211 |
/// | +15005550004 | 400, code 21610 (opted out) |
/// | +15005550009 | 400, code 21614 (not a mobile) |
/// | +15005550008 | 400, code 21611 (the sender's queue is full) twice, then 201 |
/// | +15005550429 | 429 code 20429 with `Retry-After: 1` twice, then 201 |
/// | +15005550430 | 429 without `Retry-After` once, then 201 |
/// | +15005550408 | 408 Request Timeout without creating once, then 201 |
/// | +15005550500 | creates the message but answers 500 the first time |
/// | +15005550501 | 500 without creating the first time, then 201 |
/// | +15005550502 | 500 without creating the second time, else 201 |
/// | +15005550503 | creates the message, then answers after `slowDelay` (longer than the client waits) the first time |
/// | +15005550504 | same as 502 (a number of its own) |
/// | +15005550505 | creates the message, then answers a byte every `slowDelay / 10` the first time |
/// | +15005550777 | answers 201 after 400 ms |
/// | anything else | 201 (`queued`; `accepted` with `from` null through a Messaging Service, as Twilio answers) |
///
/// While `refuseCredentials(true)` holds, every request answers 401 (code 20003), as after a rotated token.
///
/// The message list answers in pages of `PageSize` (50 by default) with Twilio's `next_page_uri`.
///
/// During an outage (`outage(for:)`, from the next Messages request until both its time has passed and it has
/// answered `atLeast` requests) every Messages request, create or list (or only creates), answers 503 (code
/// 20503) and creates nothing.
final class FakeTwilio: Sendable {
    static let accountSid = "AC" + String(repeating: "f", count: 32)

    /// A REST client of the fake's account, sending from its number, to the API at `base`.
    static func client(_ base: String, timeout: TimeInterval = 5, statusCallback: String? = nil) -> TwilioRESTClient {
        TwilioRESTClient(
            baseURL: base,
            accountSid: accountSid,
            authToken: authToken,
            sender: .number(from),
            statusCallback: statusCallback,
            timeout: timeout
        )
    }
    static let authToken = "fake-twilio-auth-token"
    static let from = "+15005550006"

    struct Created: Sendable {
        var sid: String
        var to: String
        var from: String?
        var messagingServiceSid: String? = nil
        var body: String
        var statusCallback: String?
        var at: ContinuousClock.Instant
        var date: Date
    }

    struct State: Sendable {
        var created: [Created] = []
        var postsByTo: [String: [ContinuousClock.Instant]] = [:]
        var lists = 0
        var smsURL = ""
        var outageLength: Duration?
        var outageUntil: ContinuousClock.Instant?
        var outageSparesLookups = false
        var outageMinimum = 0
        /// Requests answered 503 because of the outage.
        var outageAnswers = 0
        var credentialsRefused = false
        var accountFetches = 0
        var accountStatus = "active"
        /// How far Twilio's clock is from this machine's: added to each message's `date_created`.
        var clockSkew: TimeInterval = 0
        /// The account's one Messaging Service, as `GET /v1/Services/{sid}` answers it (JSON), by its SID.
        var messagingService: (sid: String, json: String)?
        /// Where every request is redirected (307), when set.
        var redirect: String?
        /// Every Messages create request, refused ones included.
        var createRequests = 0
    }

    let state = Mutex(State())
    let slowDelay: Duration

    init(slowDelay: Duration = .seconds(3)) {
        self.slowDelay = slowDelay
    }

    var created: [Created] { state.withLock { $0.created } }
    func posts(to: String) -> [ContinuousClock.Instant] { state.withLock { $0.postsByTo[to] ?? [] } }
    func created(to: String) -> [Created] { created.filter { $0.to == to } }
    func setSMSURL(_ url: String) { state.withLock { $0.smsURL = url } }
    func outage(for duration: Duration, atLeast requests: Int = 0, sparingLookups: Bool = false) {
        state.withLock {
            $0.outageLength = duration
            $0.outageMinimum = requests
            $0.outageSparesLookups = sparingLookups
        }
    }
    var outageAnswers: Int { state.withLock { $0.outageAnswers } }
    func refuseCredentials(_ refused: Bool) { state.withLock { $0.credentialsRefused = refused } }
    func setAccountStatus(_ status: String) { state.withLock { $0.accountStatus = status } }
    /// Answers every request `307 Temporary Redirect` to `location` (the same path on it) from now on.
    func redirect(to location: String) { state.withLock { $0.redirect = location } }
    /// Gives the account a Messaging Service whose incoming texts go to `inboundURL` (`nil`: none; `numbersOwn`:
    /// each number's own webhook instead).
    func setMessagingService(_ sid: String, inboundURL: String?, method: String = "POST", numbersOwn: Bool = false) {
        let url = inboundURL.map { #""\#($0)""# } ?? "null"
        let json =
            #"{"sid":"\#(sid)","account_sid":"\#(Self.accountSid)","friendly_name":"Comrades","inbound_request_url":\#(url),"inbound_method":"\#(method)","use_inbound_webhook_on_number":\#(numbersOwn)}"#
        state.withLock { $0.messagingService = (sid, json) }
    }
    var accountFetches: Int { state.withLock { $0.accountFetches } }
    var createRequests: Int { state.withLock { $0.createRequests } }

    /// Counts the request and answers it 503 while an outage lasts.
    private func outageAnswer(lookup: Bool = false) -> Response? {
        let down = state.withLock { s -> Bool in
            if let length = s.outageLength {
                s.outageUntil = .now.advanced(by: length)
                s.outageLength = nil
            }
            guard let until = s.outageUntil, ContinuousClock.now < until || s.outageAnswers < s.outageMinimum, !(lookup && s.outageSparesLookups)
            else { return false }
            s.outageAnswers += 1
            return true
        }
        return down ? Self.json(503, #"{"code":20503,"message":"Service Unavailable","status":503}"#) : nil
    }

    /// Runs the fake on a loopback port while `body` runs.
    func run(_ body: (String) async throws -> Void) async throws {
        let router = Router()
        let messages = "/2010-04-01/Accounts/\(Self.accountSid)/Messages.json"
        router.post(RouterPath(messages)) { request, context in try await self.create(request, context) }
        router.get(RouterPath(messages)) { request, context in try self.list(request) }
        router.get(RouterPath("/2010-04-01/Accounts/\(Self.accountSid).json")) { request, _ in
            self.state.withLock { $0.accountFetches += 1 }
            try self.authorize(request)
            let status = self.state.withLock { $0.accountStatus }
            return Self.json(200, #"{"sid":"\#(Self.accountSid)","status":"\#(status)","friendly_name":"Test account"}"#)
        }
        router.get(RouterPath("/2010-04-01/Accounts/\(Self.accountSid)/IncomingPhoneNumbers.json")) { request, _ in
            try self.authorize(request)
            let wanted = request.uri.queryParameters["PhoneNumber"].map(String.init) ?? ""
            guard wanted == Self.from else { return Self.json(200, #"{"incoming_phone_numbers":[]}"#) }
            let url = self.state.withLock { $0.smsURL }
            return Self.json(
                200,
                #"{"incoming_phone_numbers":[{"sid":"PN1","phone_number":"\#(Self.from)","sms_url":"\#(url)","sms_method":"POST"}]}"#
            )
        }
        router.get("/v1/Services/:sid") { request, context in
            try self.authorize(request)
            let service = self.state.withLock { $0.messagingService }
            guard let service, service.sid == context.parameters.get("sid") else {
                return Self.json(404, #"{"code":20404,"message":"The requested resource was not found","status":404}"#)
            }
            return Self.json(200, service.json)
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        var logger = Logger(label: "fake-twilio")
        logger.logLevel = .critical
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: {
                continuation.yield($0.localAddress?.port ?? 0)
                continuation.finish()
            },
            logger: logger
        )
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var it = ports.makeAsyncIterator()
            let port = await it.next() ?? 0
            do {
                try await body("http://127.0.0.1:\(port)")
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    private func authorize(_ request: Request) throws {
        if let location = state.withLock({ $0.redirect }) { throw Redirect(location: location + request.uri.description) }
        let expected = "Basic " + Crypto.base64(Array("\(Self.accountSid):\(Self.authToken)".utf8))
        guard request.headers[.authorization] == expected, !state.withLock({ $0.credentialsRefused }) else {
            throw FakeError(401, #"{"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}"#)
        }
    }

    private func create(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        state.withLock { $0.createRequests += 1 }
        try authorize(request)
        let buffer = try await request.body.collect(upTo: 64 * 1024)
        // (Twilio reads a form only: a body of another type has no To, no From, no Body.)
        guard request.headers[.contentType] == "application/x-www-form-urlencoded" else {
            return Self.json(400, #"{"code":21604,"message":"A 'To' phone number is required.","status":400}"#)
        }
        guard let fields = FormCodec.decode(Array(buffer.readableBytesView)) else { return Self.json(400, "{}") }
        func field(_ name: String) -> String? { fields.first { $0.name == name }?.value }
        guard field("From") != nil || field("MessagingServiceSid") != nil else {
            return Self.json(400, #"{"code":21603,"message":"A 'From' or 'MessagingServiceSid' parameter is required","status":400}"#)
        }
        let to = field("To") ?? ""
        let body = field("Body") ?? ""
        let attempt = state.withLock { s -> Int in
            s.postsByTo[to, default: []].append(.now)
            return s.postsByTo[to]!.count
        }
        if let down = outageAnswer() { return down }
        func error(_ status: Int, _ code: Int, _ message: String) -> Response {
            Self.json(
                status,
                #"{"code":\#(code),"message":"\#(message)","more_info":"https://www.twilio.com/docs/errors/\#(code)","status":\#(status)}"#
            )
        }
        switch to {
        case "+15005550001": return error(400, 21211, "The 'To' number +15005550001 is not a valid phone number.")
        case "+15005550004": return error(400, 21610, "Attempt to send to unsubscribed recipient")
        case "+15005550009": return error(400, 21614, "'To' number is not a valid mobile number")
        case "+15005550008" where attempt <= 2:
            return error(400, 21611, "This 'From' number has exceeded the maximum number of queued messages")
        case "+15005550429" where attempt <= 2:
            var response = error(429, 20429, "Too Many Requests")
            response.headers[.retryAfter] = "1"
            return response
        case "+15005550430" where attempt == 1: return error(429, 20429, "Too Many Requests")
        case "+15005550408" where attempt == 1: return Response(status: .requestTimeout, headers: [.connection: "close"])
        case "+15005550500" where attempt == 1:
            _ = record(to: to, from: field("From"), body: body, callback: field("StatusCallback"))
            return Self.json(500, "Internal Server Error")
        case "+15005550501" where attempt == 1, "+15005550502" where attempt == 2, "+15005550504" where attempt == 2:
            return Self.json(500, #"{"code":20500,"message":"Internal Server Error","status":500}"#)
        case "+15005550503" where attempt == 1:
            _ = record(to: to, from: field("From"), body: body, callback: field("StatusCallback"))
            try await Task.sleep(for: slowDelay)
            return Self.json(500, "too late")
        case "+15005550777":
            try await Task.sleep(for: .milliseconds(400))
        case "+15005550505" where attempt == 1:
            // Creates the message, then answers a byte at a time, each sooner than any idle timeout
            let message = record(to: to, from: field("From"), body: body, callback: field("StatusCallback"))
            let bytes = Array(Self.resource(message).utf8)
            let pause = slowDelay / 10
            return Response(
                status: .created,
                headers: [.contentType: "application/json"],
                body: ResponseBody(contentLength: bytes.count) { writer in
                    for byte in bytes {
                        try await writer.write(ByteBuffer(bytes: [byte]))
                        try await Task.sleep(for: pause)
                    }
                    try await writer.finish(nil)
                }
            )
        default: break
        }
        let message = record(
            to: to,
            from: field("From"),
            messagingServiceSid: field("MessagingServiceSid"),
            body: body,
            callback: field("StatusCallback")
        )
        return Self.json(201, Self.resource(message))
    }

    private func list(_ request: Request) throws -> Response {
        try authorize(request)
        if let down = outageAnswer(lookup: true) { return down }
        let to = request.uri.queryParameters["To"].map(String.init)
        let from = request.uri.queryParameters["From"].map(String.init)
        let found = state.withLock { s -> [Created] in
            s.lists += 1
            return s.created.filter { (to == nil || $0.to == to) && (from == nil || $0.from == from) }.reversed()
        }
        // Pages of PageSize (50 by default), newest first, each naming the next as Twilio does.
        let size = request.uri.queryParameters["PageSize"].flatMap { Int($0) } ?? 50
        let page = request.uri.queryParameters["Page"].flatMap { Int($0) } ?? 0
        let shown = found.dropFirst(page * size).prefix(size)
        var next = "null"
        if found.count > (page + 1) * size {
            let query = FormCodec.encode([.init("To", to ?? ""), .init("PageSize", String(size)), .init("Page", String(page + 1))])
            next = #""/2010-04-01/Accounts/\#(Self.accountSid)/Messages.json?\#(query)""#
        }
        return Self.json(
            200,
            #"{"messages":[\#(shown.map(Self.resource).joined(separator: ","))],"page":\#(page),"page_size":\#(size),"next_page_uri":\#(next)}"#
        )
    }

    private func record(to: String, from: String?, messagingServiceSid: String? = nil, body: String, callback: String?) -> Created {
        let created = Created(
            sid: "SM" + Crypto.hex(Crypto.randomBytes(16)),
            to: to,
            from: from,
            messagingServiceSid: messagingServiceSid,
            body: body,
            statusCallback: callback,
            at: .now,
            date: Date().addingTimeInterval(state.withLock { $0.clockSkew })
        )
        state.withLock { $0.created.append(created) }
        return created
    }

    static func resource(_ m: Created) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss Z"
        let body = String(decoding: try! JSONEncoder().encode(m.body), as: UTF8.self)
        return
            #"{"sid":"\#(m.sid)","status":"\#(m.messagingServiceSid == nil ? "queued" : "accepted")","to":"\#(m.to)","from":\#(m.from.map { #""\#($0)""# } ?? "null"),"messaging_service_sid":\#(m.messagingServiceSid.map { #""\#($0)""# } ?? "null"),"body":\#(body),"num_segments":"1","num_media":"0","price":null,"error_code":null,"error_message":null,"date_created":"\#(formatter.string(from: m.date))","direction":"outbound-api","api_version":"2010-04-01"}"#
    }

    static func json(_ status: Int, _ body: String) -> Response {
        Response(status: .init(code: status), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

struct Redirect: HTTPResponseError {
    let location: String
    var status: HTTPResponse.Status { .temporaryRedirect }
    func response(from request: Request, context: some RequestContext) throws -> Response {
        Response(status: status, headers: [.location: location])
    }
}

struct FakeError: HTTPResponseError {
    let code: Int
    let body: String
    init(_ code: Int, _ body: String) {
        self.code = code
        self.body = body
    }
    var status: HTTPResponse.Status { .init(code: code) }
    func response(from request: Request, context: some RequestContext) throws -> Response { FakeTwilio.json(code, body) }
}

/// An API that answers the first request on each connection, keeping it open, and then ends the connection as
/// `ending` says. It counts the POSTs it read.
enum KeptConnectionServer {
    enum Ending {
        /// A POST that comes on a connection already answered on is dropped without a word once it has been read: a
        /// kept connection dying under a request Twilio may have received.
        case diesUnderTheNextPOST
        /// 0.2 s after the answer, with nothing asked, it writes `408 Request Timeout` and closes (RFC 9110 lets a
        /// server end an idle connection so); libcurl's check of a kept connection takes the bytes for life.
        case saysRequestTimeoutWhenIdle
    }

    static func run(_ ending: Ending, _ body: (_ base: String, _ posts: @escaping @Sendable () -> Int) async throws -> Void) async throws {
        final class Handler: ChannelInboundHandler {
            typealias InboundIn = ByteBuffer
            typealias OutboundOut = ByteBuffer
            let counter: PostsBox
            let ending: Ending
            var received: [UInt8] = []
            var answered = 0
            init(counter: PostsBox, ending: Ending) {
                self.counter = counter
                self.ending = ending
            }

            func channelRead(context: ChannelHandlerContext, data: NIOAny) {
                received += Array(buffer: unwrapInboundIn(data))
                let text = String(decoding: received, as: UTF8.self)
                guard let end = text.range(of: "\r\n\r\n") else { return }
                let head = text[..<end.lowerBound]
                let length =
                    head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                    .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
                guard text[end.upperBound...].utf8.count >= length else { return }
                received = []
                let isPost = head.hasPrefix("POST")
                if isPost { counter.posts.withLock { $0 += 1 } }
                if isPost && answered > 0 {
                    context.close(promise: nil)
                    return
                }
                answered += 1
                let json =
                    isPost
                    ? #"{"sid":"SM00000000000000000000000000000001","status":"queued"}"# : #"{"sid":"\#(FakeTwilio.accountSid)","status":"active"}"#
                let response =
                    "HTTP/1.1 \(isPost ? "201 Created" : "200 OK")\r\nContent-Type: application/json\r\nContent-Length: \(json.utf8.count)\r\n\r\n\(json)"
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: response)), promise: nil)
                if case .saysRequestTimeoutWhenIdle = ending {
                    let timeout = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
                    let channel = context.channel
                    context.eventLoop.scheduleTask(in: .milliseconds(200)) {
                        channel.writeAndFlush(ByteBuffer(string: timeout)).whenComplete { _ in channel.close(promise: nil) }
                    }
                }
            }
        }
        let counter = PostsBox()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Handler(counter: counter, ending: ending)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        do {
            try await body("http://127.0.0.1:\(channel.localAddress!.port!)", { counter.posts.withLock { $0 } })
        } catch {
            try? await channel.close()
            throw error
        }
        try await channel.close()
    }

    /// The POSTs read, shared by every connection's handler.
    final class PostsBox: Sendable {
        let posts = Mutex(0)
    }
}

/// A loopback port nothing listens on: bound by a socket that never listens, then closed.
func unusedLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EMFILE) }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw POSIXError(.EADDRINUSE) }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A TCP server that accepts connections and closes them at once: a dropped connection.
enum DroppingServer {
    static func run(_ body: (String) async throws -> Void) async throws {
        final class CloseOnRead: ChannelInboundHandler, Sendable {
            typealias InboundIn = ByteBuffer
            func channelRead(context: ChannelHandlerContext, data: NIOAny) { context.close(promise: nil) }
        }
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { $0.pipeline.addHandler(CloseOnRead()) }
            .bind(host: "127.0.0.1", port: 0).get()
        do {
            try await body("http://127.0.0.1:\(channel.localAddress!.port!)")
        } catch {
            try? await channel.close()
            throw error
        }
        try await channel.close()
    }
}
