// SPDX-License-Identifier: Apache-2.0
import Foundation
import TwilioKit

/// A scripted conversation (`fixtures/conversations/*.json`, SPEC §7), used by the tests and by `replay`.
public struct ConversationFixture: Codable, Sendable {
    public var name: String
    /// The organisation's number the texts go to: Twilio's test number `+15005550006` when the fixture names none.
    public var to: String
    public var steps: [Step]

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        to = try c.decodeIfPresent(String.self, forKey: .to) ?? "+15005550006"
        steps = try c.decode([Step].self, forKey: .steps)
    }

    public struct Step: Codable, Sendable {
        /// The sender; empty when the step has none (a webhook without `From`, which the server answers 400).
        public var from: String
        /// The text; empty when the step has none (a picture alone, say, with `NumMedia` in `params`).
        public var body: String
        /// Extra webhook fields (e.g. `NumMedia`, `MediaUrl0`), added to or replacing the defaults. A number or a
        /// boolean (`"NumMedia": 1`) is taken as the text JSON writes for it.
        public var params: [String: String]?
        /// The `MessageSid`; a fresh one is made when absent.
        public var messageSid: String?
        /// Seconds that pass before this step (an extension of SPEC §7, for expiry and lockout scripts).
        public var wait: Double?
        public var expect: Expectation?

        enum CodingKeys: String, CodingKey, CaseIterable { case from, body, params, messageSid, wait, expect }

        public init(from decoder: any Decoder) throws {
            try FixtureKeys.refuseOthers(than: CodingKeys.self, in: decoder, what: "a step")
            let c = try decoder.container(keyedBy: CodingKeys.self)
            from = try c.decodeIfPresent(String.self, forKey: .from) ?? ""
            body = try c.decodeIfPresent(String.self, forKey: .body) ?? ""
            params = try c.decodeIfPresent([String: FieldValue].self, forKey: .params)?.mapValues(\.text)
            messageSid = try c.decodeIfPresent(String.self, forKey: .messageSid)
            wait = try c.decodeIfPresent(Double.self, forKey: .wait)
            expect = try c.decodeIfPresent(Expectation.self, forKey: .expect)
        }
    }

    /// A webhook field's value as a fixture may write it: a string, a number or a boolean.
    struct FieldValue: Decodable {
        var text: String

        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let string = try? c.decode(String.self) {
                text = string
            } else if let integer = try? c.decode(Int.self) {
                text = String(integer)
            } else if let number = try? c.decode(Double.self) {
                text = String(number)
            } else if let flag = try? c.decode(Bool.self) {
                text = String(flag)
            } else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "a webhook field is a string, a number or a boolean")
            }
        }
    }

    /// What a step's reply must look like. Substrings are matched case-insensitively against the whole
    /// reply (all `<Message>` texts joined by newlines).
    public struct Expectation: Codable, Sendable {
        public var contains: [String]?
        public var notContains: [String]?
        public var matches: String?
        public var empty: Bool?
        public var status: Int?

        enum CodingKeys: String, CodingKey, CaseIterable { case contains, notContains, matches, empty, status }

        /// No check but the status, 200: what a step without `expect` is held to.
        public init() {}

        public init(from decoder: any Decoder) throws {
            try FixtureKeys.refuseOthers(than: CodingKeys.self, in: decoder, what: "expect")
            let c = try decoder.container(keyedBy: CodingKeys.self)
            contains = try c.decodeIfPresent([String].self, forKey: .contains)
            notContains = try c.decodeIfPresent([String].self, forKey: .notContains)
            matches = try c.decodeIfPresent(String.self, forKey: .matches)
            empty = try c.decodeIfPresent(Bool.self, forKey: .empty)
            status = try c.decodeIfPresent(Int.self, forKey: .status)
        }

        /// What differs from the expectation; empty when the reply is as expected.
        public func mismatches(status: Int, messages: [String]) -> [String] {
            var problems: [String] = []
            let expectedStatus = self.status ?? 200
            if status != expectedStatus { problems.append("status: expected \(expectedStatus), got \(status)") }
            let reply = messages.joined(separator: "\n")
            let lower = reply.lowercased()
            for s in contains ?? [] where !lower.contains(s.lowercased()) {
                problems.append("expected the reply to contain \"\(s)\", got \"\(reply)\"")
            }
            for s in notContains ?? [] where lower.contains(s.lowercased()) {
                problems.append("expected the reply not to contain \"\(s)\", got \"\(reply)\"")
            }
            if let pattern = matches {
                do {
                    if try Regex(pattern).firstMatch(in: reply) == nil {
                        problems.append("expected the reply to match /\(pattern)/, got \"\(reply)\"")
                    }
                } catch {
                    problems.append("invalid regular expression /\(pattern)/: \(error)")
                }
            }
            if let empty {
                if empty && !messages.isEmpty { problems.append("expected no reply, got \"\(reply)\"") }
                if !empty && messages.isEmpty { problems.append("expected a reply, got none") }
            }
            return problems
        }
    }

    public static func load(_ path: String) throws -> ConversationFixture {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let fixture: ConversationFixture
        do {
            fixture = try JSONDecoder().decode(ConversationFixture.self, from: data)
        } catch {
            throw FixtureError("\(path): not a conversation fixture: \(error)")
        }
        for (i, step) in fixture.steps.enumerated() {
            if let wait = step.wait, !(0...31_536_000).contains(wait) {
                throw FixtureError("\(path): step \(i + 1) waits \(wait) s; a wait is 0 to 31536000 seconds")
            }
        }
        return fixture
    }
}

/// A key a fixture's object does not have is refused, naming the ones it has: a misspelled `expect` or `contains`
/// would otherwise drop its check unread, and the script pass without it.
public enum FixtureKeys {
    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public static func refuseOthers<Keys: CodingKey & CaseIterable>(than keys: Keys.Type, in decoder: any Decoder, what: String) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        let known = Keys.allCases.map(\.stringValue)
        if let unknown = c.allKeys.first(where: { !known.contains($0.stringValue) }) {
            throw DecodingError.dataCorruptedError(
                forKey: unknown,
                in: c,
                debugDescription: "\(what) has no key \"\(unknown.stringValue)\"; its keys are \(known.joined(separator: ", "))"
            )
        }
    }
}

/// A fixture that cannot be read.
public struct FixtureError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The fields of an inbound-SMS webhook as Twilio sends them, for replay, `chat` and tests.
public enum WebhookFields {
    /// Every field a real inbound SMS webhook carries; `extra` adds or replaces fields.
    public static func inboundSMS(
        from: String,
        to: String,
        body: String,
        messageSid: String = newMessageSid(),
        accountSid: String = localAccountSid,
        extra: [String: String] = [:]
    ) -> [FormField] {
        var fields: [FormField] = [
            .init("ToCountry", "US"), .init("ToState", ""), .init("SmsMessageSid", messageSid), .init("NumMedia", "0"),
            .init("ToCity", ""), .init("FromZip", ""), .init("SmsSid", messageSid), .init("FromState", ""),
            .init("SmsStatus", "received"), .init("FromCity", ""), .init("Body", body), .init("FromCountry", "US"),
            .init("To", to), .init("ToZip", ""), .init("NumSegments", String(Segments.count(body).segments)),
            .init("ReferralNumMedia", "0"), .init("MessageSid", messageSid), .init("AccountSid", accountSid),
            .init("From", from), .init("ApiVersion", "2010-04-01"),
        ]
        for (name, value) in extra.sorted(by: { $0.key < $1.key }) {
            if let i = fields.firstIndex(where: { $0.name == name }) {
                fields[i].value = value
            } else {
                fields.append(.init(name, value))
            }
        }
        return fields
    }

    /// The account SID used in local mode, where any account is accepted.
    public static let localAccountSid = "AC" + String(repeating: "0", count: 32)

    /// A fresh `SM` + 32 hex digits.
    public static func newMessageSid() -> String {
        "SM" + Crypto.hex(Crypto.randomBytes(16))
    }
}
