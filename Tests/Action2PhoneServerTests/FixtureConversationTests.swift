import Action2PhoneCore
import Action2PhoneServer
import Foundation
import GRDB
import Synchronization
import Testing
import TwilioKit

/// A clock the test moves forward by hand.
final class TestClock: Sendable {
    private let current: Mutex<Date>
    init(_ start: Date = Date(timeIntervalSince1970: 1_795_597_200)) { current = Mutex(start) }  // 2026-11-25 09:00 UTC
    func now() -> Date { current.withLock { $0 } }
    func advance(_ seconds: TimeInterval) { current.withLock { $0 = $0.addingTimeInterval(seconds) } }
}

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

func conversationFixtureFiles() -> [String] {
    let dir = repositoryRoot.appendingPathComponent("fixtures/conversations")
    let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
    return names.filter { $0.hasSuffix(".json") }.sorted()
}

/// Every passcode the fixtures use: none may ever appear in the database in clear.
let fixturePasscodes = [
    "red-square-1917", "tractor-2024", "tractor-2025", "tractor-2026", "five-year-plan", "wrong-one", "wrong-two", "wrong-three",
    "wrong-four", "wrong-five", "people-first-1", "war-and-peace", "libraries-4all", "far-far-away", "poyekhali-61", "mathematics-1",
    "given-by-bureau", "not-my-passcode", "my-own-choice", "my-own-choise",
]

@Suite("Scripted conversations over signed HTTP")
struct FixtureConversationTests {
    static let admin = "+14155550199"

    @Test func everyFixtureIsFound() {
        #expect(conversationFixtureFiles().count >= 10)
    }

    @Test(arguments: conversationFixtureFiles())
    func fixturePassesOverHTTP(_ file: String) async throws {
        let fixture = try ConversationFixture.load(repositoryRoot.appendingPathComponent("fixtures/conversations/\(file)").path)
        let clock = TestClock()
        let config = TestServer.makeConfig { $0.adminPhones = [Self.admin] }
        try await TestServer.run(config, clock: clock.now) { server in
            for (i, step) in fixture.steps.enumerated() {
                if let wait = step.wait { clock.advance(wait) }
                let fields = WebhookFields.inboundSMS(
                    from: step.from,
                    to: fixture.to,
                    body: step.body,
                    messageSid: step.messageSid ?? WebhookFields.newMessageSid(),
                    extra: step.params ?? [:]
                )
                let reply = try await server.post(fields: fields)
                let problems = step.expect?.mismatches(status: reply.status, messages: TwiML.messages(in: reply.body)) ?? []
                #expect(problems.isEmpty, "\(fixture.name), step \(i + 1) (\(step.body.prefix(40))): \(problems.joined(separator: "; "))")
                if reply.status == 200 {
                    #expect(reply.contentType == "text/xml")
                }
                clock.advance(1)
            }
            // Passcodes are stored only hashed: never in the inbound log, the conversation state, or anywhere else.
            let dump = try server.rows("SELECT body || ' ' || params AS text FROM inbound UNION ALL SELECT state FROM conversations")
                .map { $0["text"] as String }.joined(separator: "\n")
            for passcode in fixturePasscodes {
                #expect(!dump.contains(passcode), "\(fixture.name): passcode \(passcode) stored in clear")
            }
        }
    }
}
