// SPDX-License-Identifier: Apache-2.0
import Action2PhoneCore

/// One FIFO lock per key (a phone number): work for the same phone runs one at a time, in arrival
/// order, while different phones proceed in parallel. Idle keys take no memory.
///
/// A plain lock around a dictionary rather than an actor: the common case (nobody else holds the key)
/// takes and gives back the lock without suspending, where an actor cost two hops per webhook.
public final class PhoneLocks: Sendable {
    /// The keys held, each with the tasks waiting for it, first come first served.
    private let held = Locked<[String: [CheckedContinuation<Void, Never>]]>([:])

    public init() {}

    /// Runs `body` holding the lock for `key`.
    public func withLock<T: Sendable>(_ key: String, _ body: @Sendable () async throws -> T) async throws -> T {
        if !held.withLock({ Self.take(key, &$0) }) {
            await withCheckedContinuation { waiter in
                // Tried again under the lock: the holder may have let go since the first try.
                let acquired = held.withLock { held -> Bool in
                    if Self.take(key, &held) { return true }
                    held[key]!.append(waiter)
                    return false
                }
                if acquired { waiter.resume() }
            }
        }
        defer { release(key) }
        return try await body()
    }

    /// Takes `key` if nobody holds it.
    private static func take(_ key: String, _ held: inout [String: [CheckedContinuation<Void, Never>]]) -> Bool {
        guard held[key] == nil else { return false }
        held[key] = []
        return true
    }

    /// Hands the key to the next waiter (who then holds it), or frees it.
    private func release(_ key: String) {
        let next = held.withLock { held -> CheckedContinuation<Void, Never>? in
            guard let waiting = held[key], !waiting.isEmpty else {
                held[key] = nil
                return nil
            }
            held[key]!.removeFirst()
            return waiting[0]
        }
        next?.resume()
    }

    /// How many keys are held now (for tests).
    public var heldCount: Int { held.withLock { $0.count } }
}
