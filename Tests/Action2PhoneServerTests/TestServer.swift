import Action2PhoneCore
import Action2PhoneServer
import Foundation
import GRDB
import Hummingbird
import Logging
import ServiceLifecycle
import TwilioKit

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Every test's files go under one folder per test process, removed when the process exits: the suite writes
/// hundreds of SQLite files, and leaving them would fill a CI machine's temporary folder run after run.
let testScratch: URL = {
    atexit { try? FileManager.default.removeItem(at: scratchRoot) }
    return scratchRoot
}()

private let scratchRoot = FileManager.default.temporaryDirectory.appendingPathComponent("a2p-tests-\(getpid())-\(UUID().uuidString)")

/// A real server on a loopback port with a fresh SQLite file, for HTTP-level tests.
struct TestServer {
    static let token = "test-auth-token-0123456789abcdef"
    static let publicURL = "https://bot.example.org"

    let base: String
    let store: SQLiteStore
    let databasePath: String
    let config: ServerConfig

    /// A local-mode configuration signed with `token`, on a temporary database.
    static func makeConfig(_ customize: (inout ServerConfig) -> Void = { _ in }) -> ServerConfig {
        let dir = testScratch.appendingPathComponent("a2p-\(UUID().uuidString)")
        var config = ServerConfig(
            authToken: Secret(token),
            databasePath: dir.appendingPathComponent("test.sqlite").path,
            publicURL: publicURL,
            port: 0,
            passcodeIterations: 1000
        )
        customize(&config)
        return config
    }

    /// Starts the server, runs `body` against it, then shuts it down gracefully.
    static func run(
        _ config: ServerConfig = makeConfig(),
        logger: Logger = Logger(label: "test"),
        clock: @escaping @Sendable () -> Date = { Date() },
        handler makeHandler: (SQLiteStore, ServerConfig) -> any InboundHandler = { ConversationService(config: $1, store: $0) },
        services makeServices: (SQLiteStore) -> [any Service] = { _ in [] },
        _ body: (TestServer) async throws -> Void
    ) async throws {
        let store = try SQLiteStore.open(path: config.databasePath)
        try await withLoopbackServer(
            config: config,
            store: store,
            handler: makeHandler(store, config),
            services: makeServices(store),
            logger: logger,
            clock: clock
        ) { port in
            try await body(TestServer(base: "http://127.0.0.1:\(port)", store: store, databasePath: config.databasePath, config: config))
        }
    }

    // MARK: - Requests

    struct Reply {
        var status: Int
        var contentType: String?
        var body: String
        var allow: String? = nil
        var contentLength: String? = nil
    }

    /// POSTs `fields` to `path`, signed for the public URL unless `signature` says otherwise.
    func post(
        _ path: String = "/sms",
        fields: [FormField],
        signature: Signature = .valid,
        contentType: String = "application/x-www-form-urlencoded",
        headers: [String: String] = [:]
    ) async throws -> Reply {
        let body = FormCodec.encode(fields)
        var allHeaders = headers
        switch signature {
        case .valid: allHeaders["X-Twilio-Signature"] = TwilioSignature.compute(authToken: Self.token, url: Self.publicURL + path, params: fields)
        case .signedWith(let token, let url):
            allHeaders["X-Twilio-Signature"] = TwilioSignature.compute(authToken: token, url: url ?? Self.publicURL + path, params: fields)
        case .raw(let value): allHeaders["X-Twilio-Signature"] = value
        case .none: break
        }
        return try await send("POST", path, body: Data(body.utf8), contentType: contentType, headers: allHeaders)
    }

    enum Signature {
        case valid
        case signedWith(token: String, url: String? = nil)
        case raw(String)
        case none
    }

    func send(_ method: String, _ path: String, body: Data? = nil, contentType: String? = nil, headers: [String: String] = [:]) async throws -> Reply
    {
        var request = URLRequest(url: URL(string: base + path)!)
        request.httpMethod = method
        request.httpBody = body
        if let contentType { request.setValue(contentType, forHTTPHeaderField: "Content-Type") }
        for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as! HTTPURLResponse
        return Reply(
            status: http.statusCode,
            contentType: http.value(forHTTPHeaderField: "Content-Type"),
            body: String(decoding: data, as: UTF8.self),
            allow: http.value(forHTTPHeaderField: "Allow"),
            contentLength: http.value(forHTTPHeaderField: "Content-Length")
        )
    }

    // MARK: - Looking at the database

    func count(_ table: String) throws -> Int {
        let queue = try DatabaseQueue(path: databasePath)
        return try queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM \(table)") ?? -1 }
    }

    func rows(_ sql: String, _ arguments: StatementArguments = []) throws -> [Row] {
        let queue = try DatabaseQueue(path: databasePath)
        return try queue.read { try Row.fetchAll($0, sql: sql, arguments: arguments) }
    }

    func execute(_ sql: String, _ arguments: StatementArguments = []) throws {
        let queue = try DatabaseQueue(path: databasePath)
        try queue.write { try $0.execute(sql: sql, arguments: arguments) }
    }
}

struct TestError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A webhook like Twilio sends for an inbound SMS.
func smsFields(
    from: String = "+14155550100",
    body: String,
    sid: String = "SM" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased(),
    account: String = "AC00000000000000000000000000000001",
    extra: [FormField] = []
) -> [FormField] {
    [
        .init("ToCountry", "US"), .init("ToState", "CA"), .init("SmsMessageSid", sid), .init("NumMedia", "0"),
        .init("ToCity", ""), .init("FromZip", "02134"), .init("SmsSid", sid), .init("FromState", "MA"), .init("SmsStatus", "received"),
        .init("FromCity", "BOSTON"), .init("Body", body), .init("FromCountry", "US"), .init("To", "+15005550006"), .init("ToZip", ""),
        .init("NumSegments", "1"), .init("ReferralNumMedia", "0"), .init("MessageSid", sid), .init("AccountSid", account),
        .init("From", from), .init("ApiVersion", "2010-04-01"),
    ] + extra
}

/// Runs blocking work (socket calls, a sleep) on a thread of its own and waits for it without blocking.
///
/// Not on `DispatchQueue.global()`: on Linux its threads are the default-QoS pool that Swift's tasks run on
/// too. Sixteen exchanges blocked in `recv` there filled that pool, so no task ran, the server under test
/// included, until they timed out 5 s later; every test running meanwhile stalled with them (a thread dump
/// of the test process during a stall showed exactly that, and three outbox tests failed their deadlines).
func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: work()) }.start()
    }
}
