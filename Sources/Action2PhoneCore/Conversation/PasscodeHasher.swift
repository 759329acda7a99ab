// SPDX-License-Identifier: Apache-2.0
import Dispatch
import TwilioKit

/// PBKDF2-HMAC-SHA256 for passcodes, run on a dispatch queue so that neither the event loops nor Swift's
/// cooperative pool ever block on it. Salts are 16 random bytes; comparison is constant-time.
public struct PasscodeHasher: Sendable {
    public let iterations: Int
    private static let queue = DispatchQueue(label: "action2phone.pbkdf2", qos: .userInitiated, attributes: .concurrent)

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
        await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: work()) }
        }
    }
}
