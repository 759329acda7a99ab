// SPDX-License-Identifier: Apache-2.0
import Action2PhoneCore
import Logging
import ServiceLifecycle

/// Runs `WALCheckpointer` while the server runs: every `busyInterval` while anything is being written
/// (small, frequent checkpoints: one big one made the disk stall the writer), every `idleInterval` once
/// nothing is.
public struct CheckpointService: Service {
    let checkpointer: WALCheckpointer
    let busyInterval: Duration
    let idleInterval: Duration
    let logger: Logger

    public init(checkpointer: WALCheckpointer, busyInterval: Duration = .milliseconds(5), idleInterval: Duration = .milliseconds(100), logger: Logger) {
        self.checkpointer = checkpointer
        self.busyInterval = busyInterval
        self.idleInterval = idleInterval
        self.logger = logger
    }

    public func run() async throws {
        try await checkpointer.handOver()
        var lastFailure: String? = nil
        var previous = (walPages: -1, copiedPages: -1)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            var idle = false
            do {
                let progress = try await checkpointer.checkpoint()
                // Idle: everything copied, and nothing committed since the last pass.
                idle = progress.copiedPages == progress.walPages && progress == previous
                previous = progress
                lastFailure = nil
            } catch {
                // The writer's own checkpoint still bounds the WAL: logged once per run of failures, not fatal.
                if lastFailure != "\(error)" { logger.warning("WAL checkpoint failed; the writer will checkpoint itself", metadata: ["error": "\(error)"]) }
                lastFailure = "\(error)"
            }
            let pause = idle ? idleInterval : busyInterval
            try? await cancelWhenGracefulShutdown {
                try await Task.sleep(for: pause)
            }
        }
    }
}
