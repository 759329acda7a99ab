// SPDX-License-Identifier: Apache-2.0
import Action2PhoneCore
import Logging
import ServiceLifecycle

/// Runs `WALCheckpointer` while the server runs: every `busyInterval` while anything is being written
/// (small, frequent checkpoints: one big one made the disk stall the writer), every `idleInterval` once
/// nothing is. After `quietBeforeTruncating` with nothing written, it also empties the WAL file, once per quiet
/// spell (not sooner: two passes a few milliseconds apart often see no commit under load, and emptying the file
/// there would make the writer wait for a sync and grow the file again).
public struct CheckpointService: Service {
    let checkpointer: WALCheckpointer
    let busyInterval: Duration
    let idleInterval: Duration
    let quietBeforeTruncating: Duration
    let logger: Logger

    public init(
        checkpointer: WALCheckpointer,
        busyInterval: Duration = .milliseconds(2),
        idleInterval: Duration = .milliseconds(100),
        quietBeforeTruncating: Duration = .seconds(1),
        logger: Logger
    ) {
        self.checkpointer = checkpointer
        self.busyInterval = busyInterval
        self.idleInterval = idleInterval
        self.quietBeforeTruncating = quietBeforeTruncating
        self.logger = logger
    }

    public func run() async throws {
        do {
            try await checkpointer.handOver()
        } catch is CancellationError {
            return  // the server is stopping before it started (its port was taken, say): nothing to report
        } catch {
            // The writer keeps checkpointing itself every 1,000 pages; the passes below still help it.
            logger.warning("WAL checkpoints stay on the writer: could not raise its threshold", metadata: ["error": "\(error)"])
        }
        var lastFailure: String? = nil
        var previous = (walPages: -1, copiedPages: -1)
        var quietSince: ContinuousClock.Instant? = nil
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            var pause = busyInterval
            do {
                let progress = try await checkpointer.checkpoint()
                // Idle: everything copied, and nothing committed since the last pass.
                if progress.copiedPages == progress.walPages && progress == previous {
                    pause = idleInterval
                    let since = quietSince ?? .now
                    quietSince = since
                    if progress.walPages > 0 && since.duration(to: .now) >= quietBeforeTruncating { try await checkpointer.truncate() }
                } else {
                    quietSince = nil
                }
                previous = progress
                lastFailure = nil
            } catch is CancellationError {
                break
            } catch {
                // Not fatal: the writer's own checkpoint bounds the WAL. Logged once per run of failures, and
                // retried at the idle pace.
                if lastFailure != "\(error)" {
                    logger.warning("WAL checkpoint failed; the writer checkpoints itself past its threshold", metadata: ["error": "\(error)"])
                }
                lastFailure = "\(error)"
                pause = idleInterval
            }
            let wait = pause
            try? await cancelWhenGracefulShutdown {
                try await Task.sleep(for: wait)
            }
        }
        // Whatever still writes during shutdown (the outbox's last outcomes) checkpoints as SQLite does by default.
        try? await checkpointer.handBack()
    }
}
