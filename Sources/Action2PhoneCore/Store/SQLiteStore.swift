// SPDX-License-Identifier: Apache-2.0
import Foundation
import GRDB
import TwilioKit

/// A database a newer version of action2phone has migrated: this version refuses to open it.
public struct NewerDatabaseError: Error, CustomStringConvertible {
    public let unknownMigrations: [String]
    public var description: String {
        "the database was migrated by a newer version of action2phone (migrations this version does not know: "
            + unknownMigrations.map { "'\($0)'" }.joined(separator: ", ") + "); run that version, or restore a backup"
    }
}

/// A database file this process may not write (or its folder, where WAL mode keeps two files beside it).
public struct DatabaseNotWritable: Error, CustomStringConvertible {
    public let reason: String
    public var description: String {
        "it cannot be written here (\(reason)): check the permissions of the file, of its -wal and -shm beside it, and of its folder"
    }
}

/// A database whose write lock another process held past the busy timeout while it was being opened (and migrated).
public struct DatabaseLocked: Error, CustomStringConvertible {
    public var description: String {
        "another process held its write lock for more than 5 s (an sqlite3 shell with a transaction open?): end that transaction and try again"
    }
}

/// A file that is not an Action2Phone database: a folder, no SQLite at all, or another application's database. It is
/// left as it was: opening it as ours would migrate it into one, and switch it to WAL.
public struct NotOurDatabase: Error, CustomStringConvertible {
    public let description: String
}

/// A folder for the database (or its development token) that could not be made, and why.
public struct FolderNotMade: Error, CustomStringConvertible {
    public let folder: String
    public let reason: String
    public var description: String { "cannot create its folder \(folder): \(reason)" }
}

/// A database path that is a link to a file in a folder that does not exist, or one of a loop of links.
public struct DatabaseLinkBroken: Error, CustomStringConvertible {
    public let target: String
    public let isLoop: Bool
    public init(target: String, isLoop: Bool = false) {
        self.target = target
        self.isLoop = isLoop
    }
    public var description: String {
        isLoop ? "its links lead round in a loop (through \(target))" : "it is a link to \(target), in a folder that does not exist"
    }
}

/// The SQLite implementation of `Store`: a WAL-mode `DatabasePool` with a busy timeout, migrated on open.
public struct SQLiteStore: Store {
    let writer: any DatabaseWriter
    /// `/healthz` reports the disk full below this many bytes free.
    let minimumFreeDisk: Int
    /// The server's writes that failed, until one of their kind succeeds: `/healthz` reports them.
    let health: WriteHealth
    /// The database checks behind `ping`, one at a time and reused for a second (a failure less, once writes work).
    let probe: SharedProbe
    /// Status callbacks that could not be stored, to try again.
    let heldCallbacks = HeldStatusCallbacks()
    /// Runs the webhooks' steps in shared transactions (group commit).
    let inbound: InboundBatcher

    /// Opens (creating the file and its folder if needed) and migrates the database at `path`.
    public static func open(path: String) throws -> SQLiteStore {
        if path.hasSuffix("/") { throw NotOurDatabase(description: "it ends in /, which names a folder: give the database file's path") }
        // (The folder as the kernel finds it: `a/../b` through a linked folder `a` is not `b` here.)
        try makeFolder(folderPath(of: path))
        // A new database is private to its owner (it holds passcode hashes and people's details); SQLite gives its
        // -wal and -shm the same permissions. O_EXCL: an existing file (one another process has just created too)
        // is never replaced, and keeps the permissions it has. A link to a file not yet there has that file created.
        let target = linkTarget(path)
        guard realFolder(of: target) != nil else { throw DatabaseLinkBroken(target: target) }
        let descriptor = Foundation.open(target, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        if descriptor >= 0 { close(descriptor) }
        // (From here on the file's real path, links and `..` resolved: the checks below look at the file itself.)
        let real = realPath(target)
        if real == nil && errno == ELOOP { throw DatabaseLinkBroken(target: target, isLoop: true) }
        let file = real ?? target
        if descriptor < 0 && isEmptyFile(file) {
            chmod(file, 0o600)  // an empty file (`: > db.sqlite`) becomes the database: private, as a new one is
        } else if descriptor < 0 {
            try refuseSomeoneElsesEmptyFile(file)
        }
        try refuseForeign(file)
        do {
            let lockWait = LockWait()
            return try SQLiteStore(DatabasePool(path: path, configuration: makeConfiguration(lockWait: lockWait)), lockWait: lockWait)
        } catch let error as DatabaseError where [.SQLITE_READONLY, .SQLITE_CANTOPEN, .SQLITE_PERM].contains(error.resultCode.primaryResultCode) {
            // Opening applies the migrations the file lacks, and SQLite in WAL mode writes beside the file even to read.
            throw DatabaseNotWritable(reason: error.message ?? "\(error.resultCode)")
        } catch let error as DatabaseError where error.resultCode.primaryResultCode == .SQLITE_BUSY {
            throw DatabaseLocked()
        }
    }

    /// The file a database path names: `path` itself or, when it is a symbolic link, the file its links lead to
    /// (where a new database is made), followed as the kernel does: a link to a link too, each relative target from
    /// its link's own folder, and `..` left for the kernel to take from the real folder.
    public static func linkTarget(_ path: String) -> String {
        var file = path
        for _ in 0..<40 {  // Linux's limit: a loop of links ends here, and opening it fails as the kernel says
            guard let link = try? FileManager.default.destinationOfSymbolicLink(atPath: file) else { break }
            file = link.hasPrefix("/") ? link : (file.lastIndex(of: "/").map { String(file[...$0]) } ?? "") + link
        }
        return file
    }

    /// The file `path` names, every link followed and in its folder's real path: for a file not made yet, where
    /// `open(path:)` makes it. Throws `DatabaseLinkBroken` when the links loop or the folder is not there.
    public static func databaseFile(_ path: String) throws -> String {
        if let real = realPath(path) { return real }
        let failure = errno
        let target = linkTarget(path)
        if failure == ELOOP { throw DatabaseLinkBroken(target: target, isLoop: true) }
        guard let folder = realFolder(of: target) else { throw DatabaseLinkBroken(target: target) }
        return URL(fileURLWithPath: folder).appendingPathComponent(URL(fileURLWithPath: target).lastPathComponent).path
    }

    /// Makes `folder`, and the folders above it that are missing; says why it cannot in words (Foundation's error
    /// says "You don’t have permission." and a page of its domain and codes).
    public static func makeFolder(_ folder: String) throws(FolderNotMade) {
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            // The nearest folder above it that is there: where the first one would have been made.
            var existing = folder
            var isFolder: ObjCBool = false
            while !FileManager.default.fileExists(atPath: existing, isDirectory: &isFolder), existing != "/", existing != "." {
                existing = folderPath(of: existing)
            }
            let reason =
                !isFolder.boolValue
                ? "\(existing) is a file, not a folder"
                : access(existing, W_OK | X_OK) != 0
                    ? "this user cannot write in \(existing): create the folder for the user that runs action2phone, or choose another path"
                    : "\(error.localizedDescription)"
            throw FolderNotMade(folder: folder, reason: reason)
        }
    }

    /// The folder `path` names its file in, as written (`..` kept for the kernel to take from the real folder).
    public static func folderPath(of path: String) -> String {
        path.lastIndex(of: "/").map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
    }

    /// The real path (links and `..` resolved) of the folder `path` names its file in, or nil when it does not exist.
    public static func realFolder(of path: String) -> String? {
        realPath(folderPath(of: path))
    }

    /// `realpath(3)`: nil when `path` does not exist.
    public static func realPath(_ path: String) -> String? {
        guard let real = realpath(path, nil) else { return nil }
        defer { free(real) }
        return String(cString: real)
    }

    /// Whether `path` is a file with nothing in it (a database about to be made there is new).
    /// (A regular file of this process's user only: never a device such as /dev/null, a pipe or a link, which the chmod
    /// in `open(path:)` would follow.)
    public static func isEmptyFile(_ path: String) -> Bool {
        emptyFileOwner(path) == geteuid()
    }

    /// The owner of `path` when it is a regular file with nothing in it.
    static func emptyFileOwner(_ path: String) -> UInt32? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
            attributes[.type] as? FileAttributeType == .typeRegular, attributes[.size] as? Int == 0
        else { return nil }
        return (attributes[.ownerAccountID] as? NSNumber)?.uint32Value
    }

    /// What `open` refuses as no Action2Phone database (a folder, a file that is not SQLite, another application's),
    /// checked without making or changing anything: `serve` asks before it makes its lock and its development token
    /// beside the file.
    /// (A path ending in / is left to `open`, or to the configuration, which names the flag or variable that gave it.)
    /// Someone else's empty file and a newer version's database are refused here too.
    public static func refuseIfForeign(path: String) throws {
        guard !path.hasSuffix("/") else { return }
        let target = linkTarget(path)
        let file = realPath(target) ?? target
        try refuseSomeoneElsesEmptyFile(file)
        try refuseForeign(file, newerToo: true)
    }

    /// Someone else's empty file (made in a shared folder before the first start) would become the database with
    /// their permissions: they could read every member's details and passcode hash.
    static func refuseSomeoneElsesEmptyFile(_ file: String) throws {
        guard let owner = emptyFileOwner(file), owner != geteuid() else { return }
        throw NotOurDatabase(
            description:
                "it is an empty file another user (uid \(owner)) made, which would keep their owner and permissions: remove it, or make it this user's"
        )
    }

    /// Throws `NotOurDatabase` for a folder, a file that is not SQLite, and a database with tables but not
    /// the migration record every Action2Phone database has. An empty file (one just created) is a new database.
    /// `newerToo`: a database a newer version migrated is refused as well (`NewerDatabaseError`), as opening it would.
    static func refuseForeign(_ file: String, newerToo: Bool = false) throws {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: file, isDirectory: &isFolder) else { return }
        if isFolder.boolValue { throw NotOurDatabase(description: "it is a folder, not a database file") }
        guard let size = (try? FileManager.default.attributesOfItem(atPath: file))?[.size] as? Int, size > 0 else { return }
        var probing = Configuration()
        probing.busyMode = .timeout(5)
        let (tables, ours, unknown): ([String], Bool, [String])
        do {
            // A queue, not a pool: it reads without changing the journal mode. Every Action2Phone database records its
            // first migration; another GRDB application's records its own.
            (tables, ours, unknown) = try DatabaseQueue(path: file, configuration: probing).read { db in
                let tables = try String.fetchAll(
                    db,
                    sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
                )
                let first = "SELECT 1 FROM grdb_migrations WHERE identifier = ?"
                let ours = try tables.contains("grdb_migrations") && Bool.fetchOne(db, sql: first, arguments: [Schema.firstMigration]) == true
                let unknown = ours && newerToo ? try Schema.migrator.appliedIdentifiers(db).subtracting(Schema.migrator.migrations).sorted() : []
                return (tables, ours, unknown)
            }
        } catch let error as DatabaseError where error.resultCode.primaryResultCode == .SQLITE_NOTADB {
            throw NotOurDatabase(description: "it is not an SQLite database (\(size) bytes of something else); it was left as it was")
        } catch let error as DatabaseError where [.SQLITE_READONLY, .SQLITE_CANTOPEN, .SQLITE_PERM].contains(error.resultCode.primaryResultCode) {
            throw DatabaseNotWritable(reason: error.message ?? "\(error.resultCode)")
        }
        if tables.contains(where: { $0 != "grdb_migrations" }) && !ours {
            let shown = tables.prefix(3).joined(separator: ", ") + (tables.count > 3 ? ", …" : "")
            throw NotOurDatabase(description: "it is another application's database (tables \(shown)), not Action2Phone's; it was left as it was")
        }
        guard unknown.isEmpty else { throw NewerDatabaseError(unknownMigrations: unknown) }
    }

    /// Wraps an opened database and applies the migrations it lacks. `lockWait`: the busy handler in its
    /// configuration (`makeConfiguration(lockWait:)`), told when writes work. `/healthz` reports the disk holding it
    /// full below `minimumFreeDisk` bytes free.
    init(_ writer: any DatabaseWriter, lockWait: LockWait? = nil, minimumFreeDisk: Int = 1 << 20) throws {
        self.writer = writer
        self.minimumFreeDisk = minimumFreeDisk
        // GRDB sets its pool's writer to `synchronous = NORMAL` after `prepareDatabase` has run (`setUpWALMode`), so
        // the writer's own connection, the one that commits, is set to FULL here, once it is open.
        try writer.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        let health = WriteHealth(lockWait: lockWait)
        self.health = health
        self.probe = SharedProbe()
        self.inbound = InboundBatcher(writer: writer, health: health)
        // A newer version's schema is not this version's to write to: its rows may mean what this code cannot know.
        let unknown = try writer.read { db in
            try Schema.migrator.appliedIdentifiers(db).subtracting(Schema.migrator.migrations).sorted()
        }
        guard unknown.isEmpty else { throw NewerDatabaseError(unknownMigrations: unknown) }
        try Schema.migrator.migrate(writer)
    }

    /// The configuration shared by the server, the CLI and the tests; `lockWait` is its writer's busy handler.
    static func makeConfiguration(lockWait: LockWait = LockWait()) -> Configuration {
        var config = Configuration()
        config.busyMode = .callback { tries in lockWait.keepWaiting(afterTries: tries) }
        config.foreignKeysEnabled = true
        config.prepareDatabase { db in
            // FULL: each commit is on disk before it returns, so an acknowledged webhook survives a power loss too
            // (NORMAL, in WAL mode, survives only a crash of this process). Webhooks share commits, so the sync is
            // paid once per batch. (A pool's writer is set again in `init(_:)`: GRDB turns it to NORMAL after this.)
            try db.execute(sql: "PRAGMA synchronous = FULL")
            // Deleted rows (DELETE's erasures) are overwritten with zeros, not left in free pages. Debian's SQLite does
            // this by default; others do not.
            try db.execute(sql: "PRAGMA secure_delete = ON")
        }
        return config
    }

    public var webhooksHaveBackgroundWork: Bool { inbound.hasBackgroundWork }

    /// The names of the migrations applied, in order.
    public func appliedMigrations() throws -> [String] {
        try writer.read { try Schema.migrator.appliedMigrations($0) }
    }

    // MARK: - Store

    /// Throws for 5 s after one of the server's writes failed (a webhook's, the outbox's, a status callback's, a
    /// background chunk's), and for up to 30 s while the database check fails too: the database cannot be read, cannot
    /// be written (another process holds the write lock past `LockWait`'s patience) or is full, or the disk holding it
    /// is. `/healthz` needs no signature: its checks of the database are shared (`SharedProbe`), so a flood of them
    /// takes the writer about once a second (four times, just after writes have worked again), never once per request.
    public func ping() async throws {
        let check: @Sendable () async throws -> Void = { [writer, minimumFreeDisk] in
            try await Self.checkDatabase(writer, minimumFreeDisk: minimumFreeDisk)
        }
        // A write's failure counts for `WriteHealth.memory`, but after `WriteHealth.quietMemory` only while the check
        // fails too: a quiet server whose check passes (the lock taken, room on the disk) is not reported out of
        // service for half a minute after its trouble ended, with nothing coming to clear it (a load balancer sends no
        // webhook to a 503).
        if let failure = health.lastFailure(within: WriteHealth.quietMemory) { throw StoreUnavailable("writes are failing: \(failure)") }
        if let trouble = await probe.run(writesWorkedAt: health.lastSuccess, check) {
            throw StoreUnavailable(health.lastFailure().map { "writes are failing: \($0)" } ?? trouble)
        }
    }

    /// One of the server's writes other than a webhook's step (the outbox's, a status callback's): a failure that
    /// says the database cannot take writes counts for `/healthz` as a webhook's does, until one of the same kind works.
    func writeCountingFailures<T: Sendable>(_ source: WriteHealth.Source, _ updates: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            let result = try await writer.write(updates)
            health.succeeded(source)
            return result
        } catch let error as DatabaseError where InboundBatcher.cannotWrite(error.resultCode) {
            health.failed("\(error.resultCode) at \(Date())", source)
            throw error
        }
    }

    private static func checkDatabase(_ writer: any DatabaseWriter, minimumFreeDisk: Int) async throws {
        _ = try await writer.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM grdb_migrations") }
        let full = try await writer.writeWithoutTransaction { db -> Bool in
            // The write lock, taken as a webhook's step takes it (and let go at once, nothing written): another
            // process holding it past the busy timeout makes this throw, before any webhook has failed.
            try db.inTransaction(.immediate) { .rollback }
            let pages = try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0
            let limit = try Int.fetchOne(db, sql: "PRAGMA max_page_count") ?? Int.max
            let free = try Int.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0
            return pages >= limit && free == 0
        }
        if full { throw StoreUnavailable("the database is full (max_page_count reached)") }
        // A full disk: SQLite finds out only when a write needs room, which the lock taken above does not. (1 MiB is
        // when writes are about to fail, not a warning: a server that is still writing is not reported out of service.)
        if let free = freeBytes(onDiskOf: writer.path), free < minimumFreeDisk {
            throw StoreUnavailable("the disk holding the database is full (\(free) bytes free)")
        }
    }

    /// The bytes a write may still use on the file system holding `path`: those free to anyone (root's reserve is not
    /// counted, as root in a container may not use it).
    static func freeBytes(onDiskOf path: String) -> Int? {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return nil }
        return Int(info.f_bavail) * Int(info.f_frsize)
    }

    public func previousReply(messageSid: String, idempotencyToken: String?) async throws -> String? {
        try await writer.read { db in try Self.previousReply(db, messageSid: messageSid, idempotencyToken: idempotencyToken) }
    }

    public func processInbound(
        _ record: InboundRecord,
        replyMode: ReplyMode,
        now: Date,
        decide: @escaping @Sendable (inout ConversationState, any ConversationFacts) throws -> Decision
    ) async throws -> InboundOutcome {
        // The inbound log's JSON is built here, on the request's task, not on the single writer; the step
        // rebuilds it only when it logs another body (a redacted passcode).
        let params = Self.paramsJSON(record.fields, body: record.body)
        return try await inbound.run { db in
            try Self.processInbound(db, record, params: params, replyMode: replyMode, now: now, decide: decide)
        }
    }

    /// One webhook's step, inside the batch's transaction.
    private static func processInbound(
        _ db: Database,
        _ record: InboundRecord,
        params: String,
        replyMode: ReplyMode,
        now: Date,
        decide: (inout ConversationState, any ConversationFacts) throws -> Decision
    ) throws -> InboundOutcome {
        // One statement reads what every step needs: an earlier reply to this MessageSid, the conversation,
        // the phone's consent and account.
        let facts = SQLiteFacts(db: db, phone: record.from)
        let opening = try facts.openStep(messageSid: record.messageSid)
        if let twiml = opening.previousReply {
            return .duplicate(twiml: try replyGivenAgain(db, twiml, inboundWhere: "messageSid", record.messageSid))
        }
        var record = record
        switch try tokenUse(db, token: record.idempotencyToken, from: record.from) {
        case .repeated(let twiml):
            return .duplicate(twiml: try replyGivenAgain(db, twiml, inboundWhere: "idempotencyToken", record.idempotencyToken ?? ""))
        case .takenByAnotherSender:
            // Twilio never reuses a token across messages: another phone's text carrying one (a proxy's or a replay's
            // mistake) is that phone's own text, never answered with someone else's reply. Its token is not kept.
            record.idempotencyToken = nil
        case .unused:
            break
        }
        var state = conversationState(stored: opening.state)
        let decision = try decide(&state, facts)
        for effect in decision.effects {
            try apply(effect, db: db, phone: record.from, now: now)
        }
        try saveConversation(db, phone: record.from, state: state, now: now)
        let twiml: String
        switch replyMode {
        case .twiml:
            twiml = TwiML.messagingResponse(decision.replies)
        case .rest:
            twiml = TwiML.empty
            for text in decision.replies {
                for part in TwiML.split(text) where !TwiML.isBlank(part) {
                    try enqueue(db, to: record.from, body: part, purpose: "reply", inReplyTo: record.messageSid, now: now)
                }
            }
        }
        // A person registered by this step was stored with `lastSeenAt`; nobody else to update without an account.
        if try facts.account() != nil {
            try FastStatement.execute(db, "UPDATE users SET lastSeenAt = ? WHERE phone = ?", [.text(StoredDate.text(now)), .text(record.from)])
        }
        // The YES that deletes an account is logged as the rows before it were left: no text, no fields (FromCity,
        // FromZip, …).
        let erasing = decision.effects.contains { if case .deleteAccount = $0 { true } else { false } }
        let loggedBody = erasing ? deletedBody : decision.loggedBody ?? record.body
        try insertInbound(
            db,
            record: record,
            loggedBody: loggedBody,
            params: erasing ? "[]" : loggedBody == record.body ? params : paramsJSON(record.fields, body: loggedBody),
            reply: twiml,
            now: now
        )
        return .processed(twiml: twiml)
    }

    public func conversationSnapshot(phone: String) async throws -> (ConversationState, Account?) {
        try await writer.read { db in
            (try Self.loadConversation(db, phone: phone), try SQLiteFacts(db: db, phone: phone).account())
        }
    }

    public func applyStatusCallback(_ callback: StatusCallback, now: Date) async throws -> Bool {
        do {
            return try await writeCountingFailures(.statusCallbacks) { db in try Self.applyCallback(db, callback, now: now) }
        } catch let error as DatabaseError where InboundBatcher.cannotWrite(error.resultCode) {
            // Twilio does not send it again: kept here, and tried again once writing works (`retryHeldStatusCallbacks`).
            heldCallbacks.hold(callback, receivedAt: now)
            throw StatusCallbackHeld(cause: error)
        }
    }

    public func retryHeldStatusCallbacks() async throws -> (stored: Int, dropped: Int) {
        var total = (stored: 0, dropped: 0)
        // (A few hundred per transaction, as the other background work goes: the webhooks wait for none for long.)
        while case let held = heldCallbacks.take(HeldStatusCallbacks.chunk), !held.isEmpty {
            let done = try await storeHeld(held)
            total = (total.stored + done.stored, total.dropped + done.dropped)
        }
        return total
    }

    private func storeHeld(_ held: [(StatusCallback, Date)]) async throws -> (stored: Int, dropped: Int) {
        do {
            return try await writeCountingFailures(.statusCallbacks) { db in
                var dropped = 0
                for (callback, receivedAt) in held {
                    // Each in a savepoint: one the database refuses for itself (a damaged row) is dropped, not kept to
                    // hold the others back for good.
                    do {
                        try db.inSavepoint {
                            _ = try Self.applyCallback(db, callback, now: receivedAt)
                            return .commit
                        }
                    } catch let error as DatabaseError where InboundBatcher.cannotWrite(error.resultCode) {
                        throw error
                    } catch {
                        dropped += 1
                    }
                }
                return (held.count - dropped, dropped)
            }
        } catch {
            heldCallbacks.putBack(held)
            throw error
        }
    }

    /// A status callback's step, in the open transaction: `false` when no outbox row has its message (yet).
    private static func applyCallback(_ db: Database, _ callback: StatusCallback, now: Date) throws -> Bool {
        if try Self.applyStatus(
            db,
            sid: callback.messageSid,
            twilioStatus: callback.messageStatus,
            errorCode: callback.errorCode,
            errorMessage: callback.errorMessage,
            now: now
        ) {
            return true
        }
        // About a message a row sent before an operator retried it: the row has moved on, nothing changes.
        if try Bool.fetchOne(db, sql: "SELECT 1 FROM outboxEarlierSids WHERE sid = ?", arguments: [callback.messageSid]) == true {
            return true
        }
        // Not recorded yet: kept, and applied when the send's SID is written.
        try db.execute(sql: "DELETE FROM pendingCallbacks WHERE receivedAt < ?", arguments: [now.addingTimeInterval(-86_400)])
        try db.execute(
            sql: "INSERT INTO pendingCallbacks (messageSid, status, errorCode, errorMessage, receivedAt) VALUES (?, ?, ?, ?, ?)",
            arguments: [callback.messageSid, callback.messageStatus, callback.errorCode, callback.errorMessage, now]
        )
        return false
    }

    /// Moves the row with Twilio SID `sid` forward to Twilio's status (never backwards), keeps the error, and
    /// suppresses numbers Twilio says cannot receive texts. `false` when no row has that SID.
    static func applyStatus(_ db: Database, sid: String, twilioStatus: String, errorCode: Int?, errorMessage: String?, now: Date) throws -> Bool {
        guard let row = try Row.fetchOne(db, sql: "SELECT id, status, \"to\", errorCode FROM outbox WHERE twilioSid = ?", arguments: [sid]) else {
            return false
        }
        let id: Int64 = try row.decode(forColumn: "id")
        let current = try OutboxStatus(rawValue: row.decode(forColumn: "status")) ?? .queued
        let target: OutboxStatus? =
            switch twilioStatus.lowercased() {
            case "sent": .sent
            case "delivered", "read": .delivered
            case "undelivered": .undelivered
            case "failed", "canceled": .failed
            default: nil  // queued, accepted, sending, scheduled: never a step forward for a row we sent
            }
        let moved = target.map { $0.rank > current.rank } ?? false
        // A status behind the row's, or a final one other than the row's own (undelivered after delivered), is late or
        // contradicts what Twilio already said: it changes nothing, neither the row nor what is known of the number.
        if let target, !moved, target != current { return true }
        if let target, moved {
            try db.execute(
                sql:
                    "UPDATE outbox SET status = ?, errorCode = COALESCE(?, errorCode), errorMessage = COALESCE(?, errorMessage), updatedAt = ? WHERE id = ?",
                arguments: [target.rawValue, errorCode, errorMessage, now, id]
            )
        } else if errorCode != nil {
            try db.execute(
                sql: "UPDATE outbox SET errorCode = COALESCE(errorCode, ?), errorMessage = COALESCE(errorMessage, ?), updatedAt = ? WHERE id = ?",
                arguments: [errorCode, errorMessage, now, id]
            )
        }
        // Only news about the row says anything about the number: callbacks repeat, and a repeat arriving after the
        // person opted back in (or an operator unsuppressed them) must not undo that.
        let news = try moved || row.decode(Int?.self, forColumn: "errorCode") == nil
        if let errorCode, news { try Self.recordRecipientError(db, phone: row.decode(forColumn: "to"), code: errorCode, now: now) }
        return true
    }

    /// What a Twilio error about the recipient says about the number, from a send's answer or a status callback:
    /// 21610, it opted out (as a STOP keyword does, its login and any question end); an unreachable code, it is
    /// suppressed.
    static func recordRecipientError(_ db: Database, phone: String, code: Int, now: Date) throws {
        if code == 21610 {
            // Once in the consent log, however many texts (or callbacks) report it.
            guard try Bool.fetchOne(db, sql: "SELECT optedOut FROM phones WHERE phone = ?", arguments: [phone]) != true else { return }
            try setOptedOut(db, phone: phone, optedOut: true, source: "twilio", text: "Twilio error 21610: the recipient replied STOP", now: now)
            try resetConversation(db, phone: phone, now: now)
        } else if unreachableCodes.contains(code) {
            try setSuppressed(db, phone: phone, reason: "Twilio error \(code)", now: now)
        }
    }

    /// Applies, then forgets, the callbacks that arrived for `sid` before it was recorded.
    static func applyPendingCallbacks(_ db: Database, sid: String, now: Date) throws {
        let pending = try Row.fetchAll(
            db,
            sql: "SELECT status, errorCode, errorMessage FROM pendingCallbacks WHERE messageSid = ? ORDER BY id",
            arguments: [sid]
        )
        for p in pending {
            _ = try applyStatus(db, sid: sid, twilioStatus: p["status"], errorCode: p["errorCode"], errorMessage: p["errorMessage"], now: now)
        }
        if !pending.isEmpty { try db.execute(sql: "DELETE FROM pendingCallbacks WHERE messageSid = ?", arguments: [sid]) }
    }

    /// Twilio errors meaning the number cannot receive texts: the person is suppressed from broadcasts.
    static let unreachableCodes: Set<Int> = [30003, 30005, 30006, 21614]
}

// MARK: - Helpers run inside a transaction

extension SQLiteStore {
    static func previousReply(_ db: Database, messageSid: String, idempotencyToken: String?) throws -> String? {
        if let reply = try FastStatement.first(db, "SELECT reply FROM inbound WHERE messageSid = ?", [.text(messageSid)], { $0.text(0) }) ?? nil {
            return reply
        }
        guard let idempotencyToken, !idempotencyToken.isEmpty else { return nil }
        return try FastStatement.first(db, "SELECT reply FROM inbound WHERE idempotencyToken = ?", [.text(idempotencyToken)]) { $0.text(0) } ?? nil
    }

    enum TokenUse: Equatable {
        case unused
        /// A retry: the reply first given.
        case repeated(String)
        case takenByAnotherSender
    }

    /// Whether a webhook from `from` carrying `token` (Twilio's `I-Twilio-Idempotency-Token`) was seen before.
    static func tokenUse(_ db: Database, token: String?, from: String) throws -> TokenUse {
        guard let token, !token.isEmpty else { return .unused }
        let earlier = try FastStatement.first(db, "SELECT reply, \"from\" FROM inbound WHERE idempotencyToken = ?", [.text(token)]) {
            (reply: $0.text(0) ?? "", from: $0.text(1))
        }
        guard let earlier else { return .unused }
        return earlier.from == from ? .repeated(earlier.reply) : .takenByAnotherSender
    }

    /// Every field Twilio sent, in order, as [{"name":"value"}, …], with `body` as the `Body` field's value.
    static func paramsJSON(_ fields: [FormField], body: String) -> String {
        var json: [UInt8] = [UInt8(ascii: "[")]
        json.reserveCapacity(1024)
        for (i, field) in fields.enumerated() {
            if i > 0 { json.append(UInt8(ascii: ",")) }
            json.append(UInt8(ascii: "{"))
            JSONText.append(field.name, to: &json)
            json.append(UInt8(ascii: ":"))
            JSONText.append(field.name == "Body" ? body : field.value, to: &json)
            json.append(UInt8(ascii: "}"))
        }
        json.append(UInt8(ascii: "]"))
        return String(decoding: json, as: UTF8.self)
    }

    /// Logs one inbound message: `loggedBody` is the body as it may be logged, `params` the fields with it.
    static func insertInbound(_ db: Database, record: InboundRecord, loggedBody: String, params: String, reply: String, now: Date) throws {
        let token = record.idempotencyToken.flatMap { $0.isEmpty ? nil : $0 }
        try FastStatement.execute(
            db,
            """
            INSERT INTO inbound (messageSid, idempotencyToken, "from", "to", body, numMedia, params, reply, receivedAt)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                .text(record.messageSid), .text(token), .text(record.from), .text(record.to), .text(loggedBody), .int(Int64(record.numMedia)),
                .text(params), .text(reply), .text(StoredDate.text(now)),
            ]
        )
    }

    static func loadConversation(_ db: Database, phone: String) throws -> ConversationState {
        conversationState(
            stored: try FastStatement.first(db, "SELECT state FROM conversations WHERE phone = ?", [.text(phone)]) { $0.text(0) } ?? nil
        )
    }

    /// The state stored as `text`; a new conversation when there is none. A state written by an older
    /// version that no longer decodes starts afresh rather than failing every text.
    static func conversationState(stored text: String?) -> ConversationState {
        text.flatMap(StoredState.decode) ?? ConversationState()
    }

    static func saveConversation(_ db: Database, phone: String, state: ConversationState, now: Date) throws {
        try FastStatement.execute(
            db,
            "INSERT INTO conversations (phone, state, updatedAt) VALUES (?, ?, ?) ON CONFLICT(phone) DO UPDATE SET state = excluded.state, updatedAt = excluded.updatedAt",
            [.text(phone), .text(StoredState.encode(state)), .text(StoredDate.text(now))]
        )
    }

    static func enqueue(_ db: Database, to: String, body: String, purpose: String, inReplyTo: String?, now: Date) throws {
        try db.execute(
            sql: "INSERT INTO outbox (\"to\", body, purpose, status, inReplyTo, createdAt, updatedAt) VALUES (?, ?, ?, 'queued', ?, ?, ?)",
            arguments: [to, body, purpose, inReplyTo, now, now]
        )
    }

    static func setOptedOut(_ db: Database, phone: String, optedOut: Bool, source: String, text: String?, now: Date) throws {
        try db.execute(
            sql:
                "INSERT INTO phones (phone, optedOut, updatedAt) VALUES (?, ?, ?) ON CONFLICT(phone) DO UPDATE SET optedOut = excluded.optedOut, updatedAt = excluded.updatedAt",
            arguments: [phone, optedOut, now]
        )
        try db.execute(
            sql: "INSERT INTO consentLog (phone, action, source, text, createdAt) VALUES (?, ?, ?, ?, ?)",
            arguments: [phone, optedOut ? "optOut" : "optIn", source, text, now]
        )
    }

    static func setSuppressed(_ db: Database, phone: String, reason: String, now: Date) throws {
        let already = try Bool.fetchOne(db, sql: "SELECT suppressed FROM phones WHERE phone = ?", arguments: [phone]) ?? false
        guard !already else { return }
        try db.execute(
            sql:
                "INSERT INTO phones (phone, suppressed, suppressedReason, updatedAt) VALUES (?, 1, ?, ?) ON CONFLICT(phone) DO UPDATE SET suppressed = 1, suppressedReason = excluded.suppressedReason, updatedAt = excluded.updatedAt",
            arguments: [phone, reason, now]
        )
        try db.execute(
            sql: "INSERT INTO consentLog (phone, action, source, text, createdAt) VALUES (?, 'suppress', 'twilio', ?, ?)",
            arguments: [phone, reason, now]
        )
    }
}

/// How long a statement waits for a lock another process holds (SQLite's busy handler): up to `patience`, trying
/// again every 5 ms; but after a wait gave up, until a write works (`writesWorked`) or for `memory`, only
/// `shortPatience`. The lock is then known to be held for
/// long, and the writes queued on the single writer (webhook batches, the health check, the outbox's claims and
/// outcomes, status callbacks) each waiting the whole 5 s in turn kept webhooks 10–20 s without an answer, past the
/// 15 s Twilio waits.
final class LockWait: Sendable {
    static let patience = Duration.seconds(5)
    static let shortPatience = Duration.milliseconds(250)
    static let memory = Duration.seconds(5)
    static let poll: TimeInterval = 0.005

    private struct State {
        /// When the current wait began. (Only the pool's single writer waits here: GRDB gives readers a busy timeout
        /// of their own, `readonlyBusyMode`.)
        var waitBegan: ContinuousClock.Instant?
        var gaveUpAt: ContinuousClock.Instant?
    }
    private let state = Locked(State())

    /// Writes have worked since the last wait gave up: the lock is no longer known to be held.
    func writesWorked() {
        state.withLock { if $0.gaveUpAt != nil { $0.gaveUpAt = nil } }
    }

    /// SQLite's busy callback: `true` to try again after a pause, `false` to give up (`SQLITE_BUSY`).
    func keepWaiting(afterTries tries: Int) -> Bool {
        let now = ContinuousClock.now
        let keepWaiting = state.withLock { state -> Bool in
            let began = tries == 0 ? now : state.waitBegan ?? now
            state.waitBegan = began
            let recent = state.gaveUpAt.map { now - $0 < Self.memory } ?? false
            guard now - began < (recent ? Self.shortPatience : Self.patience) else {
                state.gaveUpAt = now
                state.waitBegan = nil
                return false
            }
            return true
        }
        if keepWaiting { Thread.sleep(forTimeInterval: Self.poll) }
        return keepWaiting
    }
}

/// Whether the server's writes are failing (a full disk, a lock held past the busy timeout), per kind of write
/// (`Source`). A failure is kept until a later write of the same kind succeeds (an outbox claim that works says
/// nothing of a webhook's bigger write), or for `memory`; `SQLiteStore.ping` reports it for `quietMemory`, and
/// after that only while its own check fails too.
final class WriteHealth: Sendable {
    enum Source: Hashable { case webhooks, outbox, statusCallbacks, background }

    private struct State {
        var failures: [Source: (description: String, at: ContinuousClock.Instant)] = [:]
        var lastSuccess: ContinuousClock.Instant?
    }
    private let state = Locked(State())
    /// The database's busy handler, told when writes work again (`LockWait.writesWorked`).
    private let lockWait: LockWait?
    static let memory = Duration.seconds(30)

    init(lockWait: LockWait? = nil) { self.lockWait = lockWait }

    /// How long a failure counts once the health check's own probe passes: a write still failing fails again within it.
    static let quietMemory = Duration.seconds(5)

    /// The latest failure within `window`.
    func lastFailure(within window: Duration = memory) -> String? {
        state.withLock { state in
            state.failures.values.filter { ContinuousClock.now - $0.at < window }.max { $0.at < $1.at }?.description
        }
    }

    /// When a write last worked.
    var lastSuccess: ContinuousClock.Instant? { state.withLock { $0.lastSuccess } }

    func failed(_ description: String, _ source: Source = .webhooks) { state.withLock { $0.failures[source] = (description, .now) } }
    func succeeded(_ source: Source = .webhooks) {
        state.withLock { state in
            if !state.failures.isEmpty { state.failures[source] = nil }
            state.lastSuccess = .now
        }
        lockWait?.writesWorked()
    }
}

/// Status callbacks the database could not store while it could not write, in arrival order: Twilio does not send
/// them again, and a lost one can be a delivery failure that should suppress a number. Kept in memory (a stop loses
/// them, as it would have anyway), at most `capacity`, the oldest dropped first.
final class HeldStatusCallbacks: Sendable {
    static let capacity = 10_000
    /// Stored per transaction when writing works again.
    static let chunk = 500
    private let held = Locked<[(StatusCallback, Date)]>([])

    func hold(_ callback: StatusCallback, receivedAt: Date) {
        held.withLock { held in
            held.append((callback, receivedAt))
            if held.count > Self.capacity { held.removeFirst(held.count - Self.capacity) }
        }
    }

    /// The oldest `count`, taken out.
    func take(_ count: Int) -> [(StatusCallback, Date)] {
        held.withLock { held in
            defer { held.removeFirst(min(count, held.count)) }
            return Array(held.prefix(count))
        }
    }

    /// Back in front of any held since they were taken.
    func putBack(_ callbacks: [(StatusCallback, Date)]) {
        held.withLock { held in
            held = Array((callbacks + held).suffix(Self.capacity))
        }
    }

    var count: Int { held.withLock { $0.count } }
}

/// A check that many callers share: while one runs, every caller waits for its answer, and an answer is reused for
/// `reuse` after it came (a health check at most a second old is news enough), a failure only for `staleReuse` once a
/// write has worked since it.
final class SharedProbe: Sendable {
    private struct Current {
        var generation: Int
        var task: Task<String?, Never>
        var answeredAt: ContinuousClock.Instant?
        var failed = false
    }
    private let current = Locked<Current?>(nil)
    let reuse: Duration

    /// How long a failure is reused once a write has worked since it.
    let staleReuse: Duration

    init(reuse: Duration = .seconds(1), staleReuse: Duration = .milliseconds(250)) {
        self.reuse = reuse
        self.staleReuse = staleReuse
    }

    /// How many checks have been started.
    var checksStarted: Int { current.withLock { $0?.generation ?? 0 } }

    /// nil when `check` passed, else what it threw, described. A failure answered before `writesWorkedAt` is reused
    /// only for `staleReuse`: writing has worked since.
    func run(writesWorkedAt: ContinuousClock.Instant? = nil, _ check: @escaping @Sendable () async throws -> Void) async -> String? {
        let task = current.withLock { current -> Task<String?, Never> in
            if let running = current {
                guard let answeredAt = running.answeredAt else { return running.task }
                // (Still a quarter second at least: writes that work need not disprove every failure, a nearly full
                // disk's, and a flood of checks must not probe after every webhook batch.)
                let staleFailure = running.failed && writesWorkedAt.map { answeredAt < $0 } ?? false
                if ContinuousClock.now - answeredAt < (staleFailure ? staleReuse : reuse) { return running.task }
            }
            let generation = (current?.generation ?? 0) + 1
            let task = Task { [weak self] () -> String? in
                var trouble: String? = nil
                do { try await check() } catch { trouble = "\(error)" }
                self?.current.withLock {
                    guard $0?.generation == generation else { return }
                    $0?.answeredAt = .now
                    $0?.failed = trouble != nil
                }
                return trouble
            }
            current = Current(generation: generation, task: task, answeredAt: nil)
            return task
        }
        return await task.value
    }
}

/// A status callback the database could not store, kept in memory to try again (`retryHeldStatusCallbacks`).
public struct StatusCallbackHeld: Error, CustomStringConvertible {
    public let cause: any Error
    public var description: String { "\(cause)" }
}

/// The store cannot take writes.
public struct StoreUnavailable: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// JSON string literals, written by hand (Foundation's coders are slow on the webhook's hot path), escaped
/// exactly as `JSONEncoder` escapes them, `/` included.
enum JSONText {
    static func append(_ string: String, to out: inout String) {
        // Most strings need no escaping: appended as they are.
        guard needsEscaping(string) else {
            out += "\""
            out += string
            out += "\""
            return
        }
        var bytes: [UInt8] = []
        append(string, to: &bytes)
        out += String(decoding: bytes, as: UTF8.self)
    }

    static func append(_ string: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        guard needsEscaping(string) else {
            out += string.utf8
            out.append(UInt8(ascii: "\""))
            return
        }
        let hex = Array("0123456789abcdef".utf8)
        for b in string.utf8 {
            switch b {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case UInt8(ascii: "/"): out += [UInt8(ascii: "\\"), UInt8(ascii: "/")]
            case 0x08: out += [UInt8(ascii: "\\"), UInt8(ascii: "b")]
            case 0x0C: out += [UInt8(ascii: "\\"), UInt8(ascii: "f")]
            case UInt8(ascii: "\n"): out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case UInt8(ascii: "\r"): out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case UInt8(ascii: "\t"): out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20: out += [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(b >> 4)], hex[Int(b & 0xF)]]
            default: out.append(b)  // UTF-8 passes through unchanged
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    private static func needsEscaping(_ string: String) -> Bool {
        var string = string
        return string.withUTF8 { bytes in
            bytes.contains { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") || $0 == UInt8(ascii: "/") }
        }
    }
}

extension JSONEncoder {
    static var store: JSONEncoder {
        let e = JSONEncoder()
        // Full precision: ISO 8601 drops fractions of a second, which made sessions expire up to a second early.
        e.dateEncodingStrategy = .secondsSince1970
        e.outputFormatting = [.sortedKeys]
        return e
    }
}

extension JSONDecoder {
    static var store: JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .secondsSince1970
        return d
    }
}
