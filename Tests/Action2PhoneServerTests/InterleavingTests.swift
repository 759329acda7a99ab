import Action2PhoneCore
import Foundation
import GRDB
import Testing
import TwilioKit

@Suite("Interleaved conversations")
struct InterleavingTests {
    /// One person's script: registration, a look at the inbox, then two texts sent at the same instant
    /// (PROFILE and LOGOUT: either order ends logged out), then a stray word.
    static func script(_ i: Int) -> [[String]] {
        let pass = "pass-\(i)-word"
        return [
            ["JOIN"], ["Ivan"], ["Number\(String(repeating: "x", count: i % 7))"], ["c\(i)@example.org"], [pass], [pass], ["MESSAGES"],
            ["PROFILE", "LOGOUT"], ["MESAGES"],
        ]
    }

    static func phone(_ i: Int) -> String { "+1415555\(String(format: "%04d", 9000 + i))" }

    /// The outcome that must not depend on interleaving: who is registered, each phone's conversation
    /// step and login, and how many texts were recorded.
    static func outcome(_ server: TestServer) throws -> [String] {
        let users = try server.rows("SELECT phone, firstName, lastName, email, role FROM users ORDER BY phone").map {
            "\($0["phone"] as String) \($0["firstName"] as String) \($0["lastName"] as String) \($0["email"] as String) \($0["role"] as String)"
        }
        let conversations = try server.rows("SELECT phone, state FROM conversations ORDER BY phone").map { row -> String in
            let state = try JSONDecoder.stateDates.decode(ConversationState.self, from: Data((row["state"] as String).utf8))
            return "\(row["phone"] as String) \(state.step) loggedIn=\(state.isLoggedIn)"
        }
        return users + conversations + ["inbound \(try server.count("inbound"))"]
    }

    @Test func twoHundredConcurrentConversationsEndAsASequentialRunDoes() async throws {
        let people = 200
        var sequential: [String] = []
        try await TestServer.run { server in
            for i in 0..<people {
                for texts in Self.script(i) {
                    for text in texts { _ = try await server.post(fields: smsFields(from: Self.phone(i), body: text)) }
                }
            }
            sequential = try Self.outcome(server)
        }
        var concurrent: [String] = []
        try await TestServer.run { server in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<people {
                    group.addTask {
                        for texts in Self.script(i) {
                            // Texts in one group are sent at the same instant; groups follow each other.
                            try await withThrowingTaskGroup(of: Int.self) { same in
                                for text in texts {
                                    same.addTask { try await server.post(fields: smsFields(from: Self.phone(i), body: text)).status }
                                }
                                for try await status in same { #expect(status == 200) }
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            concurrent = try Self.outcome(server)
        }
        #expect(sequential.count == people * 2 + 1)
        #expect(concurrent == sequential)
    }
}

extension JSONDecoder {
    static var stateDates: JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .secondsSince1970
        return d
    }
}
