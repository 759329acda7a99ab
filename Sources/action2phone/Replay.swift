// SPDX-License-Identifier: Apache-2.0
import Action2PhoneCore
import Action2PhoneServer
import ArgumentParser
import Foundation
import Logging
import TwilioKit

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `action2phone replay FIXTURE… [--url URL] [--check] [--raw] [--fresh]`
struct Replay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Play recorded conversations (fixtures/conversations/*.json) and print the transcript.",
        discussion: """
            In-process (the default) the texts go straight to the conversation on --db; with --url they go over HTTP to \
            a running server, signed like Twilio with TWILIO_AUTH_TOKEN or the local-mode token next to --db. \
            --check compares each reply with the fixture's expectations and exits 1 naming every mismatch. \
            --raw sends fixtures/webhooks/*.json requests byte for byte, without re-signing: to --url, or without it to \
            the server serve runs, started on a loopback port for each request, on --db, and checking signatures \
            against ACTION2PHONE_PUBLIC_URL or else the recorded URL (the fixtures were signed with the credentials \
            fixtures/README.md gives).
            """
    )

    @OptionGroup var store: StoreOptions
    @Argument(help: "Fixture files.") var fixtures: [String]
    @Option(help: "A running server's base or /sms URL, e.g. http://127.0.0.1:8080.") var url: String?
    @Option(help: "With --url: the URL to sign for, as the server's ACTION2PHONE_PUBLIC_URL (env: ACTION2PHONE_PUBLIC_URL).") var publicURL: String?
    @Flag(help: "Compare replies with the fixtures' expectations; exit 1 on any mismatch.") var check = false
    @Flag(help: "Send recorded webhooks (fixtures/webhooks/*.json) byte for byte.") var raw = false
    @Flag(help: "Without --url: give each fixture its own empty temporary database instead of --db.") var fresh = false

    func validate() throws {
        if fixtures.isEmpty { throw ValidationError("name at least one fixture file") }
        if fresh && url != nil { throw ValidationError("--fresh is for replay without --url; a running server keeps its own database") }
    }

    func run() async throws {
        var mismatches = 0
        var refused: [String] = []
        for path in fixtures {
            do {
                mismatches += raw ? try await replayRaw(path) : try await replayConversation(path)
            } catch let error as NeedsMovedClock {
                // Refused before its first text; the other fixtures still play.
                printError("Error: \(path): \(error)")
                refused.append(path)
            }
        }
        if check {
            let played = fixtures.count - refused.count
            print(
                mismatches > 0
                    ? "check: \(mismatches) mismatch(es)."
                    : played == 0
                        ? "check: nothing was played, so nothing was checked."
                        : refused.isEmpty
                            ? "check: all replies as expected."
                            : "check: the replies of the \(played) fixture\(played == 1 ? "" : "s") played were as expected."
            )
        }
        if !refused.isEmpty {
            print("not played (they move the clock; replay them in-process): \(refused.joined(separator: ", "))")
        }
        if (check && mismatches > 0) || !refused.isEmpty { throw ExitCode.failure }
    }

    // MARK: - Conversations

    func replayConversation(_ path: String) async throws -> Int {
        let fixture = try loadFixture(path)
        var phone: any SimulatedPhone
        let config: ServerConfig
        var scratch: URL? = nil
        defer { if let scratch { try? FileManager.default.removeItem(at: scratch) } }
        if let url {
            _ = try store.open()  // every subcommand opens and migrates --db
            config = try store.config()
            // Refused before the first text: a server left halfway through a script is worse than none run.
            if let wait = fixture.steps.compactMap(\.wait).max(), wait > HTTPPhone.longestWait {
                throw NeedsMovedClock(wait: wait)
            }
            phone = try HTTPPhone(url: url, publicURL: publicURL ?? config.publicURL, token: config.authToken)
        } else {
            let options: StoreOptions
            (options, scratch) = database()
            config = try options.config()
            phone = InProcessPhone(config: config, store: try options.open(announcingNew: !fresh), virtualClock: true)
        }
        // The account the texts come from: a server with Twilio credentials refuses any other (403).
        let accountSid = config.accountSid ?? WebhookFields.localAccountSid
        print("== \(fixture.name) (\(path))")
        var mismatches = 0
        for (i, step) in fixture.steps.enumerated() {
            if let wait = step.wait {
                try await phone.wait(wait)
                print("   ... \(Int(wait)) s later")
            }
            let fields = WebhookFields.inboundSMS(
                from: step.from,
                to: fixture.to,
                body: step.body,
                messageSid: step.messageSid ?? WebhookFields.newMessageSid(),
                accountSid: accountSid,
                extra: step.params ?? [:]
            )
            let (status, messages) = try await phone.text(fields)
            print("\(step.from) > \(step.body)")
            if status != 200 { print("   [HTTP \(status)]") }
            if messages.isEmpty { print("   (no reply)") }
            for m in messages { print("bot > " + m.replacing("\n", with: "\n      ")) }
            if check {
                // A step without `expect` is still held to its status, 200.
                for problem in (step.expect ?? .init()).mismatches(status: status, messages: messages) {
                    mismatches += 1
                    printError("MISMATCH \(path) step \(i + 1) (\(step.body.prefix(40))): \(problem)")
                }
            }
        }
        return mismatches
    }

    /// The database replay without --url plays on: --db, or with --fresh one of its own in a scratch folder that the
    /// caller removes afterwards (with the local-mode token made beside it).
    func database() -> (options: StoreOptions, scratch: URL?) {
        guard fresh else { return (store, nil) }
        var options = store
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("a2p-replay-\(UUID().uuidString)")
        options.db = directory.appendingPathComponent("replay.sqlite").path
        return (options, directory)
    }

    func loadFixture(_ path: String) throws -> ConversationFixture {
        do {
            return try ConversationFixture.load(path)
        } catch let error as FixtureError {
            throw CLIError(error.description)
        } catch {
            throw CLIError("cannot read \(path): \(error.localizedDescription)")
        }
    }

    // MARK: - Raw webhooks

    func replayRaw(_ path: String) async throws -> Int {
        let recorded: RecordedWebhook
        do {
            recorded = try JSONDecoder().decode(RecordedWebhook.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw CLIError("\(path): not a recorded webhook (url, headers, params or body, status): \(error)")
        }
        guard let url else { return try await replayRawOnLoopback(recorded, path: path) }
        return try await send(recorded, path: path, to: url).mismatches
    }

    /// Without --url: the server `serve` runs (the webhook, without the outbox worker) on a loopback port, on the
    /// database, for this one request. Its public URL is the configured one, or else the URL the request was recorded
    /// for: the server Twilio called.
    func replayRawOnLoopback(_ recorded: RecordedWebhook, path: String) async throws -> Int {
        let (options, scratch) = database()
        defer { if let scratch { try? FileManager.default.removeItem(at: scratch) } }
        var config = try options.config()
        if config.publicURL == nil { config.publicURL = recorded.publicURL }
        config.replyMode = .twiml  // the answer is read in the response
        let db = try options.open(announcingNew: !fresh)
        var logger = Logger(label: "action2phone")
        logger.logLevel = .error  // the transcript says what each request got
        let (mismatches, status) = try await withLoopbackServer(
            config: config,
            store: db,
            handler: ConversationService(config: config, store: db, logger: logger),
            logger: logger
        ) { port in try await send(recorded, path: path, to: "http://127.0.0.1:\(port)") }
        if status == 403 && recorded.status != 403, config.isLocalMode {
            printError(
                "(in local mode the server checks signatures with its development token; the fixtures were signed with the credentials fixtures/README.md gives)"
            )
        }
        return mismatches
    }

    /// Sends `recorded` to the server at `url` and prints what it answered; with --check, 1 when the status is not the
    /// one recorded.
    func send(_ recorded: RecordedWebhook, path: String, to url: String) async throws -> (mismatches: Int, status: Int) {
        // The recorded path and query go to the server at `url`, with the recorded headers and bytes.
        var base = url
        while base.hasSuffix("/") { base.removeLast() }
        if base.hasSuffix("/sms") { base.removeLast(4) }
        guard let target = URL(string: base + recorded.pathAndQuery) else {
            throw CLIError("\(path): cannot make a URL of \(base) and \(recorded.url)")
        }
        var request = URLRequest(url: target)
        request.httpMethod = recorded.method ?? "POST"
        for (name, value) in recorded.headers ?? [:] { request.setValue(value, forHTTPHeaderField: name) }
        request.httpBody = recorded.bodyBytes
        let (data, response) = try await httpData(request)
        let expected = recorded.status ?? 200
        print("== \(recorded.name ?? path): HTTP \(response.statusCode) (expected \(expected))")
        let messages = TwiML.messages(in: String(decoding: data, as: UTF8.self))
        for m in messages { print("bot > " + m) }
        guard check, response.statusCode != expected else { return (0, response.statusCode) }
        printError("MISMATCH \(path): status: expected \(expected), got \(response.statusCode)")
        return (1, response.statusCode)
    }
}

/// A recorded HTTP request (`fixtures/webhooks/*.json`): replayed exactly, never re-signed.
struct RecordedWebhook: Decodable {
    var name: String?
    var url: String
    var method: String?
    var headers: [String: String]?
    /// Form fields in order, as `[name, value]` pairs, encoded exactly as recorded; or an object of names and values
    /// (sorted by name: a signature does not depend on their order).
    var params: [[String]]?
    /// A raw body, for requests that are not forms.
    var body: String?
    /// Repeat `body` this many times (for oversized bodies without a huge file).
    var bodyRepeat: Int?
    var status: Int?

    enum CodingKeys: String, CodingKey, CaseIterable { case name, url, method, headers, params, body, bodyRepeat, status }

    init(from decoder: any Decoder) throws {
        try FixtureKeys.refuseOthers(than: CodingKeys.self, in: decoder, what: "a recorded webhook")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        url = try c.decode(String.self, forKey: .url)
        // The URL Twilio called, whose path and query go to the server replayed to: anything else (`@host:port/sms`)
        // would have made the request go elsewhere.
        guard let called = URLComponents(string: url), ["http", "https"].contains(called.scheme?.lowercased() ?? ""), called.host?.isEmpty == false
        else {
            throw DecodingError.dataCorruptedError(
                forKey: .url,
                in: c,
                debugDescription: "url is the http(s) URL the request was sent to, such as https://bot.example.org/sms"
            )
        }
        method = try c.decodeIfPresent(String.self, forKey: .method)
        headers = try c.decodeIfPresent([String: String].self, forKey: .headers)
        if let pairs = try? c.decodeIfPresent([[String]].self, forKey: .params) {
            guard pairs.allSatisfy({ $0.count == 2 }) else {
                throw DecodingError.dataCorruptedError(forKey: .params, in: c, debugDescription: "each field is a [name, value] pair")
            }
            params = pairs
        } else if let fields = try c.decodeIfPresent([String: String].self, forKey: .params) {
            params = fields.sorted { $0.key < $1.key }.map { [$0.key, $0.value] }
        }
        body = try c.decodeIfPresent(String.self, forKey: .body)
        bodyRepeat = try c.decodeIfPresent(Int.self, forKey: .bodyRepeat)
        // (Enough for any oversized body the server must refuse; a number too large would take all the memory there is.)
        if let bodyRepeat, !(1...Self.largestBody).contains(bodyRepeat) || (body?.utf8.count ?? 0) > Self.largestBody / bodyRepeat {
            throw DecodingError.dataCorruptedError(
                forKey: .bodyRepeat,
                in: c,
                debugDescription: "bodyRepeat is 1 or more, and the body repeated is at most \(Self.largestBody) bytes"
            )
        }
        status = try c.decodeIfPresent(Int.self, forKey: .status)
    }

    /// The largest body a recorded request may make (`body` × `bodyRepeat`): 16 MiB.
    static let largestBody = 16 << 20

    /// The base URL the request was sent to, as a server's public URL: without `/sms` (or `/sms/status`) and the query.
    var publicURL: String {
        var base = String(url.prefix { $0 != "?" })
        for suffix in ["/sms/status", "/sms"] where base.hasSuffix(suffix) {
            base.removeLast(suffix.count)
            break
        }
        while base.hasSuffix("/") { base.removeLast() }
        return base
    }

    var pathAndQuery: String {
        guard let scheme = url.firstRange(of: "://") else { return url }
        let rest = url[scheme.upperBound...]
        guard let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) else { return "/" }
        return String(rest[slash...])
    }

    var bodyBytes: Data {
        if let params {
            return Data(FormCodec.encode(params.map { FormField($0[0], $0[1]) }).utf8)
        }
        return Data(String(repeating: body ?? "", count: max(1, bodyRepeat ?? 1)).utf8)
    }
}

/// A fixture whose waits a running server's clock cannot follow: refused before its first text.
struct NeedsMovedClock: Error, CustomStringConvertible {
    let wait: Double
    var description: String {
        "a step waits \(Int(wait)) s, and a running server's clock cannot be moved: replay this fixture in-process (without --url)"
    }
}
