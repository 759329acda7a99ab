// SPDX-License-Identifier: Apache-2.0
import Action2PhoneCore
import Foundation
import Logging
import ServiceLifecycle

/// While the server runs, every `interval`: ends the questions left unanswered for `abandonedAfter` (a registration
/// begun and left keeps a name, an email and a passcode's hash), so that their drafts leave the database.
public struct HousekeepingService: Service {
    let store: SQLiteStore
    let interval: Duration
    let abandonedAfter: TimeInterval
    let logger: Logger

    public init(store: SQLiteStore, interval: Duration = .seconds(3600), abandonedAfter: TimeInterval = 86_400, logger: Logger) {
        self.store = store
        self.interval = interval
        self.abandonedAfter = abandonedAfter
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let ended = try await store.forgetAbandonedQuestions(before: Date().addingTimeInterval(-abandonedAfter))
                if ended > 0 { logger.info("ended questions left unanswered", metadata: ["a2p.count": "\(ended)"]) }
            } catch is CancellationError {
                break
            } catch {
                logger.warning("could not end questions left unanswered; trying again later", metadata: ["error": "\(error)"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.interval) }
        }
    }
}
