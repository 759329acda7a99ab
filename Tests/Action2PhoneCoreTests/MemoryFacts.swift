import Foundation

@testable import Action2PhoneCore

/// `ConversationFacts` from plain values, for testing the engine without a database.
struct MemoryFacts: ConversationFacts {
    var phone: String
    var accounts: [Account] = []
    var consents: [String: Consent] = [:]
    var inbox: [Int64: [InboxItem]] = [:]
    var counts = UserCounts(registered: 0, optedOut: 0, admins: 0, loggedIn: 0)
    var audience = BroadcastAudience(registered: 0, textable: 0)

    func consent(of phone: String) throws -> Consent { consents[phone] ?? Consent() }
    func account() throws -> Account? { accounts.first { $0.phone == phone } }
    func account(phoneOrEmail key: String) throws -> Account? { accounts.first { $0.phone == key || $0.email == key.lowercased() } }
    func isEmailRegistered(_ email: String) throws -> Bool { accounts.contains { $0.email == email.lowercased() } }
    func unreadMessages(userId: Int64, limit: Int) throws -> [InboxItem] { Array((inbox[userId] ?? []).prefix(limit)) }
    func unreadCount(userId: Int64) throws -> Int { inbox[userId]?.count ?? 0 }
    func userCounts(activeSince: Date) throws -> UserCounts { counts }
    func findUsers(matching text: String, limit: Int) throws -> [Account] {
        Array(
            accounts.filter {
                $0.fullName.lowercased().contains(text.lowercased()) || $0.email.contains(text.lowercased()) || $0.phone.contains(text)
            }.prefix(limit)
        )
    }
    func broadcastAudience() throws -> BroadcastAudience { audience }
}

let t0 = Date(timeIntervalSince1970: 1_795_597_200)  // 2026-11-25 09:00 UTC
let storedHash = PasscodeHash(hash: Array(repeating: 7, count: 32), salt: Array(repeating: 1, count: 16), iterations: 1000)
let pendingHash = PasscodeHash(hash: Array(repeating: 9, count: 32), salt: Array(repeating: 2, count: 16), iterations: 1000)
let userPhone = "+14155550100"
let adminPhone = "+14155550199"

func account(
    _ id: Int64,
    _ phone: String,
    role: Role = .user,
    first: String = "Ivan",
    last: String = "Petrov",
    email: String = "ivan@example.org"
) -> Account {
    Account(id: id, phone: phone, firstName: first, lastName: last, email: email, role: role, createdAt: t0, passcode: storedHash)
}

let ivan = account(1, userPhone)
let vera = account(2, adminPhone, role: .admin, first: "Vera", last: "Commissar", email: "vera@example.org")

func facts(_ phone: String = userPhone, registered: Bool = true, optedOut: Bool = false) -> MemoryFacts {
    var f = MemoryFacts(phone: phone, accounts: registered ? [ivan, vera] : [vera])
    if optedOut { f.consents[phone] = Consent(optedOut: true) }
    f.counts = UserCounts(registered: 2, optedOut: 0, admins: 1, loggedIn: 1)
    f.audience = BroadcastAudience(registered: 2, textable: 2)
    return f
}

let engine = ConversationEngine(settings: .init(sessionTTL: 1800, adminPhones: [adminPhone]))
