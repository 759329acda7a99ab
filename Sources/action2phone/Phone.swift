// SPDX-License-Identifier: Apache-2.0
import Action2PhoneCore
import Action2PhoneServer
import Foundation
import TwilioKit

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Something that delivers a text to the bot the way Twilio would, and returns the bot's answer.
protocol SimulatedPhone {
    /// Lets `seconds` pass before the next text (in-process: the clock moves; over HTTP: a real wait).
    mutating func wait(_ seconds: Double) async throws
    mutating func text(_ fields: [FormField]) async throws -> (status: Int, messages: [String])
}

/// The bot in this process, on the database: the same conversation service `serve` runs, answering in TwiML.
struct InProcessPhone: SimulatedPhone {
    let store: SQLiteStore
    let service: ConversationService
    /// Replay's clock: starts now and moves only by the fixture's waits and one second per text, so a script
    /// answers the same however fast the machine is. `nil` (chat): the real clock.
    private var virtualNow: Date?

    init(config: ServerConfig, store: SQLiteStore, virtualClock: Bool) {
        self.virtualNow = virtualClock ? Date() : nil
        var config = config
        config.replyMode = .twiml  // a simulated phone reads the answer in the response
        self.store = store
        // (A passcode hash's upgrade before the reply: the process may end right after its last text.)
        self.service = ConversationService(config: config, store: store, upgradesInBackground: false)
    }

    mutating func wait(_ seconds: Double) async throws {
        guard let now = virtualNow else { return try await Task.sleep(for: .seconds(seconds)) }
        virtualNow = now.addingTimeInterval(seconds)
    }

    mutating func text(_ fields: [FormField]) async throws -> (status: Int, messages: [String]) {
        // What the server answers a body over its limit (413) and a webhook without From, To or MessageSid (400), as a
        // fixture may expect: nothing stored. (A 20 MB text took a minute and more than a gigabyte in-process.)
        guard FormCodec.encode(fields).utf8.count <= AppRequestContext.bodyLimit else { return (413, []) }
        guard let message = try? IncomingMessage(fields: fields) else { return (400, []) }
        let record = InboundRecord(message, idempotencyToken: nil)
        let now = virtualNow ?? Date()
        virtualNow = virtualNow?.addingTimeInterval(1)
        let outcome = try await service.handle(record, now: now)
        // What the text left for after its transaction (a broadcast's fan-out, a deletion's erasure of the admins'
        // rows) is finished before the answer too, as the process may end right after its last text. When it cannot
        // be, the text was handled all the same: the answer comes, with a note of what is left for `serve`.
        do {
            try await store.fanOutBroadcasts()
        } catch {
            printError("note: a broadcast is recorded but not yet in every inbox (\(error)); action2phone serve finishes it on this database")
        }
        do {
            try await store.finishErasures()
        } catch {
            printError(
                "note: the admins' commands and replies that name a deleted person are not all erased yet (\(error)); action2phone serve finishes it on this database"
            )
        }
        return (200, TwiML.messages(in: outcome.twiml))
    }
}

/// A running server, over HTTP, with requests signed like Twilio's.
struct HTTPPhone: SimulatedPhone {
    let postURL: String
    let signingURL: String
    let token: Secret
    /// Whether the hint for a refused signature was printed (once is enough).
    var explainedForbidden = false
    /// Over HTTP the server's clock cannot be moved: waits longer than this are refused.
    static let longestWait: Double = 10

    /// `url` may be the server's base URL or its `/sms` URL.
    init(url: String, publicURL: String?, token: Secret) throws {
        for candidate in [url, publicURL].compactMap({ $0 }) {
            guard let parsed = URL(string: candidate), ["http", "https"].contains(parsed.scheme?.lowercased() ?? ""), parsed.host != nil else {
                throw CLIError("'\(candidate)' is not an http(s) URL")
            }
        }
        var base = url
        while base.hasSuffix("/") { base.removeLast() }
        postURL = base.hasSuffix("/sms") ? base : base + "/sms"
        var signing = publicURL ?? postURL
        while signing.hasSuffix("/") { signing.removeLast() }
        signingURL = signing.hasSuffix("/sms") ? signing : signing + "/sms"
        self.token = token
    }

    mutating func wait(_ seconds: Double) async throws {
        guard seconds <= Self.longestWait else {
            throw NeedsMovedClock(wait: seconds)
        }
        try await Task.sleep(for: .seconds(seconds))
    }

    mutating func text(_ fields: [FormField]) async throws -> (status: Int, messages: [String]) {
        guard let url = URL(string: postURL) else { throw CLIError("'\(postURL)' is not a URL") }
        var request = URLRequest(url: url)
        request.httpMethod = "POST"
        request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
        request.setValue(
            TwilioSignature.compute(authToken: token.reveal(), url: signingURL, params: fields),
            forHTTPHeaderField: "X-Twilio-Signature"
        )
        request.httpBody = Data(FormCodec.encode(fields).utf8)
        let (data, response) = try await httpData(request)
        let body = String(decoding: data, as: UTF8.self)
        if response.statusCode == 403 && !explainedForbidden {
            explainedForbidden = true
            printError(
                "the server refused the signature (403): sign with its token (TWILIO_AUTH_TOKEN, or in local mode the same --db as the server's, "
                    + "whose .dev-token it uses), as its account (TWILIO_ACCOUNT_SID), for its public URL (\(ServerConfig.displayed(signingURL)); ACTION2PHONE_PUBLIC_URL or --public-url)"
            )
        }
        return (response.statusCode, response.statusCode == 200 ? TwiML.messages(in: body) : [])
    }
}

/// One HTTP exchange, with connection failures as readable errors.
func httpData(_ request: URLRequest) async throws -> (Data, HTTPURLResponse) {
    do {
        let (data, response) = try await URLSession.shared.data(for: request)
        guard let http = response as? HTTPURLResponse else { throw CLIError("\(request.url!): not an HTTP response") }
        return (data, http)
    } catch let error as URLError {
        throw CLIError(
            "cannot reach \(request.url!.absoluteString): \(error.code == .cannotConnectToHost ? "connection refused (is action2phone serve running?)" : "URLError \(error.code.rawValue)")"
        )
    }
}
