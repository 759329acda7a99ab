// SPDX-License-Identifier: Apache-2.0
import Foundation
import TwilioKit

/// PBKDF2-HMAC-SHA256 for passcodes, run on a dispatch queue so that neither the event loops nor Swift's
/// cooperative pool ever block on it. Salts are 16 random bytes; comparison is constant-time.
///
/// At most `slots` hashes run at once (all cores but one), the rest wait their turn: a burst of logins
/// takes longer, but the other webhooks keep a core.
public struct PasscodeHasher: Sendable {
    public let iterations: Int
    private static let queue = DispatchQueue(label: "action2phone.pbkdf2", qos: .userInitiated, attributes: .concurrent)
    static let slots = Slots(max(1, ProcessInfo.processInfo.activeProcessorCount - 1))

    public init(iterations: Int = PasscodePolicy.productionIterations) {
        precondition(iterations >= 1)
        self.iterations = iterations
    }

    /// Carries out the work `ConversationEngine.passcodeWork` asked for.
    public func perform(_ work: PasscodeWork) async -> PasscodeEvidence {
        switch work {
        case .hash(let passcode):
            return .hashed(await hash(passcode))
        case .verify(let passcode, let stored):
            return .verified(await verify(passcode, against: stored), against: stored)
        }
    }

    public func hash(_ passcode: String) async -> PasscodeHash {
        let iterations = self.iterations
        return await Self.offload {
            let salt = Crypto.randomBytes(16)
            let key = Crypto.pbkdf2SHA256(password: Array(passcode.utf8), salt: salt, iterations: iterations)
            return PasscodeHash(hash: key, salt: salt, iterations: iterations)
        }
    }

    public func verify(_ passcode: String, against stored: PasscodeHash) async -> Bool {
        await Self.offload {
            let key = Crypto.pbkdf2SHA256(password: Array(passcode.utf8), salt: stored.salt, iterations: stored.iterations, length: stored.hash.count)
            return Crypto.constantTimeEqual(key, stored.hash)
        }
    }

    private static func offload<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await slots.acquire()
        return await withCheckedContinuation { continuation in
            queue.async {
                let result = work()
                slots.release()
                continuation.resume(returning: result)
            }
        }
    }

    /// A counting semaphore for tasks: waiters suspend (they never block a thread) and go first come, first served.
    final class Slots: Sendable {
        private struct State {
            var free: Int
            var waiting: [CheckedContinuation<Void, Never>] = []
        }
        private let state: Locked<State>

        init(_ count: Int) { state = Locked(State(free: count)) }

        func acquire() async {
            await withCheckedContinuation { waiter in
                let acquired = state.withLock { state -> Bool in
                    guard state.free > 0 else {
                        state.waiting.append(waiter)
                        return false
                    }
                    state.free -= 1
                    return true
                }
                if acquired { waiter.resume() }
            }
        }

        /// Gives the slot to the next waiter, or frees it.
        func release() {
            let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
                guard !state.waiting.isEmpty else {
                    state.free += 1
                    return nil
                }
                return state.waiting.removeFirst()
            }
            next?.resume()
        }
    }
}
