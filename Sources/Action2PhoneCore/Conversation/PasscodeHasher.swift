// SPDX-License-Identifier: Apache-2.0
import Foundation
import TwilioKit

/// PBKDF2-HMAC-SHA256 for passcodes, run on a dispatch queue so that neither the event loops nor Swift's
/// cooperative pool ever block on it. Salts are 16 random bytes; comparison is constant-time.
///
/// At most `slots` hashes run at once (all cores but one), the rest wait their turn: a burst of logins
/// takes longer, but the other webhooks keep a core. A wait can be bounded (`perform(_:waitingAtMost:)`), so
/// that a webhook still answers within Twilio's 15 s when a burst is too long to get through in time.
public struct PasscodeHasher: Sendable {
    public let iterations: Int
    let slots: Slots
    private static let queue = DispatchQueue(label: "action2phone.pbkdf2", qos: .userInitiated, attributes: .concurrent)
    /// Shared by every hasher of the process.
    static let sharedSlots = Slots(max(1, ProcessInfo.processInfo.activeProcessorCount - 1))

    public init(iterations: Int = PasscodePolicy.productionIterations) {
        self.init(iterations: iterations, slots: Self.sharedSlots)
    }

    init(iterations: Int, slots: Slots) {
        precondition(iterations >= 1)
        self.iterations = iterations
        self.slots = slots
    }

    /// Carries out the work `ConversationEngine.passcodeWork` asked for; `.busy` when no slot came free
    /// within `limit`.
    public func perform(_ work: PasscodeWork, waitingAtMost limit: Duration? = nil) async -> PasscodeEvidence {
        switch work {
        case .hash(let passcode, let current):
            let iterations = self.iterations
            // One slot for both: a burst of logins between the check and the hash would otherwise lose the check.
            return await offload(waitingAtMost: limit) { () -> PasscodeEvidence in
                if let current, Self.matches(passcode, current) { return .reused(current) }
                return .hashed(Self.newHash(passcode, iterations: iterations))
            } ?? .busy
        case .verify(let passcode, let stored):
            return await verify(passcode, against: stored, waitingAtMost: limit).map { .verified($0, against: stored) } ?? .busy
        }
    }

    public func hash(_ passcode: String) async -> PasscodeHash {
        await hash(passcode, waitingAtMost: nil)!
    }

    public func verify(_ passcode: String, against stored: PasscodeHash) async -> Bool {
        await verify(passcode, against: stored, waitingAtMost: nil)!
    }

    func hash(_ passcode: String, waitingAtMost limit: Duration?) async -> PasscodeHash? {
        let iterations = self.iterations
        return await offload(waitingAtMost: limit) { Self.newHash(passcode, iterations: iterations) }
    }

    private func verify(_ passcode: String, against stored: PasscodeHash, waitingAtMost limit: Duration?) async -> Bool? {
        // A damaged stored record matches nothing (`matches` says so too): no slot is taken for it.
        guard stored.isUsable else { return false }
        return await offload(waitingAtMost: limit) { Self.matches(passcode, stored) }
    }

    private static func newHash(_ passcode: String, iterations: Int) -> PasscodeHash {
        let salt = Crypto.randomBytes(16)
        let key = Crypto.pbkdf2SHA256(password: Array(passcode.utf8), salt: salt, iterations: iterations)
        return PasscodeHash(hash: key, salt: salt, iterations: iterations)
    }

    /// Whether `passcode` is the one `stored` was made from; a damaged record matches nothing (checking it would trap
    /// the process).
    private static func matches(_ passcode: String, _ stored: PasscodeHash) -> Bool {
        guard stored.isUsable else { return false }
        let key = Crypto.pbkdf2SHA256(password: Array(passcode.utf8), salt: stored.salt, iterations: stored.iterations, length: stored.hash.count)
        return Crypto.constantTimeEqual(key, stored.hash)
    }

    /// Runs `work` on the hashing queue once a slot is free; `nil` when none came free within `limit`.
    private func offload<T: Sendable>(waitingAtMost limit: Duration?, _ work: @escaping @Sendable () -> T) async -> T? {
        guard await slots.acquire(waitingAtMost: limit) else { return nil }
        let slots = self.slots
        return await withCheckedContinuation { continuation in
            Self.queue.async {
                let result = work()
                slots.release()
                continuation.resume(returning: result)
            }
        }
    }

    /// A counting semaphore for tasks: waiters suspend (they never block a thread) and go first come, first
    /// served; a waiter may give up after a time.
    final class Slots: Sendable {
        private struct Waiter {
            var id: UInt64
            var continuation: CheckedContinuation<Bool, Never>
        }
        private struct State {
            var free: Int
            var waiting: [Waiter] = []
            var nextID: UInt64 = 0
        }
        private let state: Locked<State>

        init(_ count: Int) { state = Locked(State(free: count)) }

        /// Takes a slot, waiting at most `limit` (forever when `nil`); false when the wait ran out.
        @discardableResult
        func acquire(waitingAtMost limit: Duration? = nil) async -> Bool {
            await withCheckedContinuation { continuation in
                let queued = state.withLock { state -> UInt64? in
                    guard state.free > 0 else {
                        state.nextID += 1
                        state.waiting.append(Waiter(id: state.nextID, continuation: continuation))
                        return state.nextID
                    }
                    state.free -= 1
                    return nil
                }
                guard let id = queued else { return continuation.resume(returning: true) }
                if let limit {
                    Task {
                        try? await Task.sleep(for: limit)
                        self.giveUp(id)
                    }
                }
            }
        }

        /// Ends the wait of waiter `id`, if it is still waiting.
        private func giveUp(_ id: UInt64) {
            let waiter = state.withLock { state -> Waiter? in
                guard let index = state.waiting.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiting.remove(at: index)
            }
            waiter?.continuation.resume(returning: false)
        }

        /// Gives the slot to the next waiter, or frees it.
        func release() {
            let next = state.withLock { state -> Waiter? in
                guard !state.waiting.isEmpty else {
                    state.free += 1
                    return nil
                }
                return state.waiting.removeFirst()
            }
            next?.continuation.resume(returning: true)
        }
    }
}
