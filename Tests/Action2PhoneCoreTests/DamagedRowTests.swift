import Foundation
import GRDB
import Testing

@testable import Action2PhoneCore

/// A row damaged by hand or by a failing disk must cost at most the request that reads it, never the process:
/// a trap in the server drops every webhook in flight, and the damage stays to trap it again.
@Suite("Damaged rows")
struct DamagedRowTests {
    func service(_ store: SQLiteStore) -> ConversationService {
        ConversationService(
            store: store,
            engine: ConversationEngine(settings: .init(adminPhones: ["+14155550199"])),
            hasher: PasscodeHasher(iterations: 1000),
            replyMode: .twiml
        )
    }

    func text(_ service: ConversationService, _ from: String, _ body: String) async throws -> String {
        try await service.handle(InboundRecord(messageSid: WebhookFields.newMessageSid(), from: from, to: "+15005550006", body: body), now: Date())
            .twiml
    }

    func register(_ service: ConversationService, _ phone: String, _ first: String) async throws {
        for body in ["JOIN", first, "Ivanova", "\(first.lowercased())@example.org", "tractor-2026", "tractor-2026"] {
            _ = try await text(service, phone, body)
        }
    }

    @Test func aDamagedDateInAUserRowFailsTheReadInsteadOfTrapping() async throws {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        let bot = service(store)
        try await register(bot, "+14155550199", "Anna")
        try await register(bot, "+14155550101", "Nadia")
        // Given Nadia's row damaged
        try executeSQL(path, "UPDATE users SET createdAt = 'garbage' WHERE phone = '+14155550101'")
        // When an admin looks her up (FIND, SEND) and an operator does (users show, users list)
        await #expect(throws: RowDecodingError.self) { try await text(bot, "+14155550199", "FIND nadia") }
        await #expect(throws: RowDecodingError.self) { try await text(bot, "+14155550199", "SEND nadia@example.org Hello") }
        await #expect(throws: RowDecodingError.self) { try await store.user("+14155550101") }
        await #expect(throws: RowDecodingError.self) { try await store.listUsers(UserFilter()) }
        // Then each of those fails alone, and everyone else goes on
        #expect(try await text(bot, "+14155550199", "PROFILE").contains("Anna"))
    }

    @Test func aDamagedOutboxRowFailsTheReadInsteadOfTrapping() async throws {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        try executeSQL(
            path,
            "INSERT INTO outbox (\"to\", body, purpose, status, createdAt, updatedAt) VALUES ('+14155550101', 'Harvest report', 'direct', 'queued', 'garbage', 'garbage')"
        )
        await #expect(throws: RowDecodingError.self) { try await store.outboxMessages(status: nil, limit: 10) }
        await #expect(throws: RowDecodingError.self) { try await store.claimOutbox(now: Date(), limit: 1) }
    }

    @Test func aDamagedFailedLoginCountIsReadAsNoFailures() async throws {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        let bot = service(store)
        try await register(bot, "+14155550101", "Nadia")
        _ = try await text(bot, "+14155550101", "LOGOUT")
        // Given a row from before failedLoginTimes existed, with a count no one could have written
        for count in [-1, Int64.max] {
            try executeSQL(path, "UPDATE users SET failedLoginTimes = NULL, failedLogins = \(count), firstFailedLoginAt = '2026-12-01 12:00:00.000'")
            #expect(try await text(bot, "+14155550101", "HELP").contains("LOGIN"))
        }
        #expect(try await text(bot, "+14155550101", "LOGIN tractor-2026").contains("Welcome back"))
    }

    @Test func aStateNestedThousandsDeepStartsAfresh() async throws {
        let path = makeTestDatabasePath()
        let store = try SQLiteStore.open(path: path)
        let bot = service(store)
        _ = try await text(bot, "+14155550101", "JOIN")
        // Given a conversation state nested far deeper than any the server writes (the parser recurses)
        let nested = "{\"step\":" + String(repeating: "[", count: 100_000)
        // (and others no parser step expects: a bare word, a value of the wrong kind, nothing, a cut document)
        for damaged in [nested, "garbage", "true", "x", "", "]", "}", "{\"step\":{\"idle\":{}}}}", "{\"step\":[[[[]]]]}", "{\"step\":"] {
            try executeSQL(path, "UPDATE conversations SET state = '\(damaged)'")
            #expect(StoredState.decode(damaged) == nil, "\(damaged.prefix(20))")
            // Then the next text is handled as a fresh one
            #expect(try await text(bot, "+14155550101", "HELP").contains("JOIN"))
        }
    }
}
