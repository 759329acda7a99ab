import Action2PhoneCore
import Action2PhoneServer
import Foundation
import Testing
import TwilioKit

@Suite("Per-phone ordering")
struct OrderingTests {
    @Test func oneKeyRunsOneAtATimeInArrivalOrder() async throws {
        let locks = PhoneLocks()
        let log = Locked<[String]>([])
        let inside = Locked(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<20 {
                group.addTask {
                    try await locks.withLock("+14155550100") {
                        let n = inside.withLock {
                            $0 += 1
                            return $0
                        }
                        #expect(n == 1, "two holders of one phone's lock at once")
                        try await Task.sleep(for: .milliseconds(2))
                        log.withLock { $0.append("\(i)") }
                        inside.withLock { $0 -= 1 }
                    }
                }
                try await Task.sleep(for: .milliseconds(1))  // arrive in order
            }
            try await group.waitForAll()
        }
        #expect(log.current == (0..<20).map(String.init))
        #expect(await locks.heldCount == 0)
    }

    @Test func differentKeysRunInParallel() async throws {
        let locks = PhoneLocks()
        let inside = Locked(0)
        let peak = Locked(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<10 {
                group.addTask {
                    try await locks.withLock("+1415555010\(i)") {
                        let n = inside.withLock {
                            $0 += 1
                            return $0
                        }
                        peak.withLock { $0 = max($0, n) }
                        try await Task.sleep(for: .milliseconds(50))
                        inside.withLock { $0 -= 1 }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(peak.current > 1)
    }

    @Test func twoTextsFromOnePhoneAtOnceAreBothApplied() async throws {
        try await TestServer.run { server in
            _ = try await server.post(fields: smsFields(body: "JOIN"))
            async let a = server.post(fields: smsFields(body: "Ivan"))
            async let b = server.post(fields: smsFields(body: "Petrov"))
            let replies = try await [a, b].map { TwiML.messages(in: $0.body).joined() }
            // Whichever came first was the first name; the other was the last name. Neither was lost.
            #expect(replies.contains { $0.contains("last name") })
            #expect(replies.contains { $0.contains("email") })
            let state: String = try server.rows("SELECT state FROM conversations")[0]["state"]
            #expect(state.contains("askedEmail"))
        }
    }

    @Test func aTextRightBehindAPasscodeWaitsForItsCheck() async throws {
        // A passcode text leaves the database while it is hashed (slow on purpose), then runs again: without the
        // per-phone lock, the next text from that phone would be applied first
        let config = TestServer.makeConfig { $0.passcodeIterations = 300_000 }
        let (entered, handled) = AsyncStream.makeStream(of: String.self)
        let handler: (SQLiteStore, ServerConfig) -> any InboundHandler = {
            SignallingHandler(inner: ConversationService(config: $1, store: $0), entered: handled)
        }
        try await TestServer.run(config, handler: handler) { server in
            for body in ["JOIN", "Ivan", "Petrov", "ivan@example.org", "red-square-1917", "red-square-1917", "LOGOUT"] {
                #expect(try await server.post(fields: smsFields(body: body)).status == 200)
            }
            // When LOGIN with the passcode reaches its handler, and MESSAGES follows while it is being hashed
            async let login = server.post(fields: smsFields(body: "LOGIN red-square-1917"))
            for await body in entered where body.hasPrefix("LOGIN") { break }
            async let messages = server.post(fields: smsFields(body: "MESSAGES"))
            let (first, second) = try await (login, messages)
            // Then they are applied in arrival order, as one after the other would be
            #expect(first.body.contains("Welcome back"), "\(first.body)")
            #expect(second.body.contains("No unread messages"), "\(second.body)")
            let bodies: [String] = try server.rows("SELECT body FROM inbound ORDER BY rowid DESC LIMIT 2").map { $0["body"] }
            #expect(bodies == ["MESSAGES", "[redacted]"])
        }
    }

    @Test func manyPhonesRegisterInParallel() async throws {
        try await TestServer.run { server in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<30 {
                    group.addTask {
                        let phone = "+1415555\(String(format: "%04d", 2000 + i))"
                        for body in ["JOIN", "Ivan", "Petrov", "ivan\(i)@example.org", "secret-\(i)-pass", "secret-\(i)-pass"] {
                            let reply = try await server.post(fields: smsFields(from: phone, body: body))
                            #expect(reply.status == 200)
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(try server.count("users") == 30)
            #expect(try server.count("inbound") == 180)
        }
    }
}

/// Tells which text its handler has started on (inside the phone's lock), then handles it.
struct SignallingHandler: InboundHandler {
    let inner: any InboundHandler
    let entered: AsyncStream<String>.Continuation

    func handle(_ record: InboundRecord, now: Date) async throws -> InboundOutcome {
        entered.yield(record.body)
        return try await inner.handle(record, now: now)
    }
}
