import Action2PhoneServer
import Foundation
import GRDB
import Logging
import ServiceLifecycle
import Testing

@testable import Action2PhoneCore

@Suite("Housekeeping service")
struct HousekeepingServiceTests {
    @Test func endsAQuestionLeftUnansweredWhenTheServerRunsAndStopsOnShutdown() async throws {
        // Given a registration left at its email question, long enough ago
        let path = testScratch.appendingPathComponent("a2p-house-\(UUID().uuidString)/a.sqlite").path
        let store = try SQLiteStore.open(path: path)
        let left = Date().addingTimeInterval(-120)
        let record = InboundRecord(messageSid: "SM1", from: "+14155550101", to: "+15005550006", body: "Ivanova")
        _ = try await store.processInbound(record, replyMode: .twiml, now: left) { state, _ in
            state.step = .askedEmail(first: "Olga", last: "Ivanova")
            state.lastActivity = left
            return Decision(replies: ["Reply with your email address."])
        }
        // When the service runs (questions older than a minute count as abandoned here)
        let service = HousekeepingService(store: store, interval: .seconds(3600), abandonedAfter: 60, logger: Logger(label: "test"))
        let group = ServiceGroup(configuration: .init(services: [service], logger: Logger(label: "test")))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            // Then the drafts leave the stored state soon
            let deadline = ContinuousClock.now.advanced(by: .seconds(30))
            func state() throws -> String {
                try DatabaseQueue(path: path).read { try String.fetchOne($0, sql: "SELECT state FROM conversations") ?? "" }
            }
            while try state().contains("Olga") && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            let after = try state()
            #expect(!after.contains("Olga") && after.contains("idle"), "\(after)")
            // And it stops on shutdown in the middle of its hour's pause, not at its end (30 s: the whole suite running
            // beside this test has held a shutdown up for 6)
            let stopping = ContinuousClock.now
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            #expect(ContinuousClock.now - stopping < .seconds(30))
        }
    }
}
