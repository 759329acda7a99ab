// SPDX-License-Identifier: Apache-2.0
import Foundation
import GRDB

/// Group commit for inbound webhooks: steps that arrive while a transaction is running wait, and then run
/// together in the next one, each inside its own savepoint. One commit (one WAL write) serves many
/// webhooks, and a step's caller is answered only once its transaction has committed, so an
/// acknowledged webhook is always on disk.
///
/// A step that throws rolls back its own savepoint and nothing else (that is how `PasscodeWorkNeeded`
/// asks for hashing). When SQLite aborts the whole transaction (a full disk, an I/O error) or the commit
/// fails, every step in it fails with that error: none of them was stored, and each webhook answers 5xx
/// (Twilio logs the failure; it does not retry by default).
///
/// Steps run in the order they were submitted; the caller keeps one phone's steps in order by submitting
/// the next only after the previous one is answered (`PhoneLocks`).
///
/// A broadcast confirmed by a step is fanned out here too, after its transaction and never inside it: one chunk
/// of people (`SQLiteStore.fanOutChunkSize`) in a transaction of its own before that batch is answered (so a
/// broadcast to a small organisation is complete when its YES is answered), then one chunk after each later batch
/// has been answered, or one after another while no webhook waits. (`OutboxWorker` finishes one left unfinished.)
/// A DELETE's erasure of the admins' rows that name the person goes the same way, a chunk in a transaction of its
/// own (`SQLiteStore.eraseMentionsChunk`).
final class InboundBatcher: Sendable {
    /// One step: runs inside the batch's transaction and returns what its caller gets.
    typealias Step = @Sendable (Database) throws -> InboundOutcome

    private struct Job: Sendable {
        var step: Step
        var done: CheckedContinuation<InboundOutcome, any Error>
    }

    private struct Queue {
        var jobs: [Job] = []
        var draining = false
        /// A broadcast has people left to reach, or a deletion rows left to erase.
        var backgroundPending = false
        /// Whose turn the next background chunk is: a deletion's erasure, or else a broadcast's fan-out.
        var erasureTurn = false
        /// Transactions run so far (tests check that steps share them).
        var transactions = 0
    }

    /// Enough to amortise the commit, few enough that the first caller in a batch does not wait long.
    static let maxBatch = 128

    private let writer: any DatabaseWriter
    private let queue = Locked(Queue())
    /// Told the outcome of each transaction (`/healthz` reports failing writes).
    private let health: WriteHealth

    init(writer: any DatabaseWriter, health: WriteHealth) {
        self.writer = writer
        self.health = health
    }

    /// Runs `step` in the next batch and returns its result once that batch has committed.
    func run(_ step: @escaping Step) async throws -> InboundOutcome {
        try await withCheckedThrowingContinuation { done in
            let startDraining = queue.withLock { queue -> Bool in
                queue.jobs.append(Job(step: step, done: done))
                guard !queue.draining else { return false }
                queue.draining = true
                return true
            }
            if startDraining {
                Task { await self.drain() }
            }
        }
    }

    /// Whether the drain loop is fanning a broadcast out or erasing a deletion's mentions (a chunk after each batch,
    /// or one after another while idle).
    var hasBackgroundWork: Bool { queue.withLock { $0.backgroundPending } }

    /// How many transactions have run the steps so far.
    var transactions: Int { queue.withLock { $0.transactions } }

    /// Runs batches until the queue is empty.
    private func drain() async {
        while true {
            let batch = queue.withLock { queue -> [Job]? in
                guard !queue.jobs.isEmpty else {
                    if queue.backgroundPending { return [] }
                    queue.draining = false
                    return nil
                }
                let batch = Array(queue.jobs.prefix(Self.maxBatch))
                queue.jobs.removeFirst(batch.count)
                queue.transactions += 1
                return batch
            }
            guard let batch else { return }
            guard !batch.isEmpty else {
                await backgroundChunk()
                continue
            }
            let alreadyWorking = queue.withLock { $0.backgroundPending }
            let (results, background) = await commit(batch)
            if background && !alreadyWorking { await backgroundChunk() }
            for (job, result) in zip(batch, results) {
                job.done.resume(with: result)
            }
            if background && alreadyWorking { await backgroundChunk() }
        }
    }

    /// Writes the next chunk of a broadcast's fan-out or of a deletion's erasure (taking turns), if any is left. A
    /// failure stops them until the next batch, which looks again.
    private func backgroundChunk() async {
        let more: Bool
        do {
            let erasureFirst = queue.withLock { queue in
                queue.erasureTurn.toggle()
                return queue.erasureTurn
            }
            more = try await writer.write { db in try SQLiteStore.backgroundChunk(db, now: Date(), erasureFirst: erasureFirst) }
            health.succeeded(.background)
        } catch {
            if let error = error as? DatabaseError, Self.cannotWrite(error.resultCode) {
                health.failed("\(error.resultCode) at \(Date())", .background)
            }
            more = false
        }
        queue.withLock { $0.backgroundPending = more }
    }

    /// Runs `batch` in one transaction and says what each step's caller gets, and whether a broadcast has people
    /// left to reach or a deletion rows left to erase (one of the steps confirmed it, or an earlier chunk was cut short).
    private func commit(_ batch: [Job]) async -> (results: [Result<InboundOutcome, any Error>], background: Bool) {
        do {
            let (results, background) = try await writer.writeWithoutTransaction { db -> ([Result<InboundOutcome, any Error>], Bool) in
                var results: [Result<InboundOutcome, any Error>] = []
                var background = false
                results.reserveCapacity(batch.count)
                // GRDB's transaction block: once SQLite has rolled the transaction back, any further statement
                // throws (a step that swallowed an error cannot go on writing outside the transaction), and a
                // COMMIT that fails is rolled back and thrown.
                try db.inTransaction(.immediate) {
                    for job in batch {
                        results.append(try Self.runInSavepoint(job.step, db))
                    }
                    background = try SQLiteStore.hasBackgroundWork(db)
                    return .commit
                }
                return (results, background)
            }
            // A step that could not write (a full disk, an I/O error, a lock held too long) counts as a failing write
            // even when the others committed; one that met a damaged row or a constraint is that step's trouble only.
            if let failure = results.lazy.compactMap({ $0.databaseError }).first(where: { Self.cannotWrite($0.resultCode) }) {
                health.failed("\(failure.resultCode) at \(Date())")
            } else {
                health.succeeded()
            }
            return (results, background)
        } catch {
            if let error = error as? DatabaseError { health.failed("\(error.resultCode) at \(Date())") }
            return (Array(repeating: .failure(error), count: batch.count), false)
        }
    }

    /// Whether `code` says the database cannot take writes at all, as opposed to refusing one statement.
    static func cannotWrite(_ code: ResultCode) -> Bool {
        [
            .SQLITE_FULL, .SQLITE_IOERR, .SQLITE_BUSY, .SQLITE_LOCKED, .SQLITE_READONLY, .SQLITE_CANTOPEN, .SQLITE_NOMEM, .SQLITE_PERM,
            .SQLITE_CORRUPT, .SQLITE_NOTADB,
        ]
        .contains(code.primaryResultCode)
    }

    /// The step's own result, or throws when its failure aborted the whole transaction.
    private static func runInSavepoint(_ step: Step, _ db: Database) throws -> Result<InboundOutcome, any Error> {
        try FastStatement.savepoint(db, "SAVEPOINT step")
        do {
            let outcome = try step(db)
            try FastStatement.savepoint(db, "RELEASE step")
            return .success(outcome)
        } catch {
            // SQLite rolls back the whole transaction on some errors (SQLITE_FULL, SQLITE_IOERR, …):
            // the steps before this one are gone too.
            guard db.isInsideTransaction else { throw error }
            try db.execute(sql: "ROLLBACK TO step")
            try db.execute(sql: "RELEASE step")
            return .failure(error)
        }
    }
}

extension Result where Failure == any Error {
    fileprivate var databaseError: DatabaseError? {
        if case .failure(let error as DatabaseError) = self { error } else { nil }
    }
}
