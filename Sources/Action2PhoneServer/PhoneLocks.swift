// SPDX-License-Identifier: Apache-2.0

/// One FIFO lock per key (a phone number): work for the same phone runs one at a time, in arrival
/// order, while different phones proceed in parallel. Idle keys take no memory.
public actor PhoneLocks {
    private var queues: [String: [CheckedContinuation<Void, Never>]] = [:]

    public init() {}

    /// Runs `body` holding the lock for `key`.
    public nonisolated func withLock<T: Sendable>(_ key: String, _ body: @Sendable () async throws -> T) async throws -> T {
        await acquire(key)
        do {
            let result = try await body()
            await release(key)
            return result
        } catch {
            await release(key)
            throw error
        }
    }

    private func acquire(_ key: String) async {
        if queues[key] == nil {
            queues[key] = []
            return
        }
        await withCheckedContinuation { queues[key]!.append($0) }
    }

    private func release(_ key: String) {
        guard var waiting = queues[key], !waiting.isEmpty else {
            queues[key] = nil
            return
        }
        let next = waiting.removeFirst()
        queues[key] = waiting
        next.resume()
    }

    /// How many keys are held now (for tests).
    public var heldCount: Int { queues.count }
}
