import Action2PhoneCore
import Foundation
import GRDB
import Testing

/// The built `action2phone` executable, run as operators run it.
enum Executable {
    static var path: String { repositoryRoot.appendingPathComponent(".build/debug/action2phone").path }

    /// Starts `action2phone arguments…` with `environment` added; stdout and stderr go to files.
    static func start(_ arguments: [String], environment: [String: String], output: URL) throws -> Spawned {
        FileManager.default.createFile(atPath: output.path, contents: nil)
        let handle = try FileHandle(forWritingTo: output)
        // (The handle kept open until the child has its copy.)
        return try withExtendedLifetime(handle) {
            try Spawned(
                path,
                arguments,
                environment: childEnvironment(environment),
                stdin: nil,
                stdout: handle.fileDescriptor,
                stderr: handle.fileDescriptor
            )
        }
    }

    /// The test process's environment without its Twilio and Action2Phone settings, with `added`.
    static func childEnvironment(_ added: [String: String]) -> [String: String] {
        ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("TWILIO_") && !$0.key.hasPrefix("ACTION2PHONE_") }.merging(added) { $1 }
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `action2phone arguments…` to completion with `input` on standard input (its standard output to
    /// `outputPath` when given, `/dev/full` say; `stdout` is then empty).
    static func run(
        _ arguments: [String],
        environment: [String: String] = [:],
        input: String = "",
        outputPath: String? = nil,
        timeout: Duration = .seconds(60)
    ) async throws -> Result {
        let dir = testScratch.appendingPathComponent("a2p-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let files = ["in", "out", "err"].map { dir.appendingPathComponent($0) }
        FileManager.default.createFile(atPath: files[0].path, contents: Data(input.utf8))
        FileManager.default.createFile(atPath: files[1].path, contents: nil)
        FileManager.default.createFile(atPath: files[2].path, contents: nil)
        let input = try FileHandle(forReadingFrom: files[0])
        let output = try FileHandle(forWritingTo: outputPath.map { URL(fileURLWithPath: $0) } ?? files[1])
        let errors = try FileHandle(forWritingTo: files[2])
        let process = try withExtendedLifetime((input, output, errors)) {
            try Spawned(
                path,
                arguments,
                environment: childEnvironment(["ACTION2PHONE_PBKDF2_ITERATIONS": "1000"].merging(environment) { $1 }),
                stdin: input.fileDescriptor,
                stdout: output.fileDescriptor,
                stderr: errors.fileDescriptor
            )
        }
        guard let status = await waitForExit(process, timeout: timeout) else {
            process.terminate()
            throw TestError("action2phone \(arguments.joined(separator: " ")) did not finish in \(timeout)")
        }
        func read(_ url: URL) throws -> String { String(decoding: try Data(contentsOf: url), as: UTF8.self) }
        return Result(status: status, stdout: try read(files[1]), stderr: try read(files[2]))
    }

    static func waitForExit(_ process: Spawned, timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while process.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        return process.isRunning ? nil : process.terminationStatus
    }
}

/// A child process started with `posix_spawn`, its standard streams on the descriptors given. Not Foundation's
/// `Process`: on Linux its `run()` reads past a buffer while it lists /proc/self/fd (to close them in the child), and
/// crashed the test process now and then, which has many files open (swift-corelibs-foundation PR #5472, after Swift
/// 6.3.1). The child inherits our descriptors not marked close-on-exec: a pipe whose end the test waits for must be.
final class Spawned: Sendable {
    let processIdentifier: pid_t
    /// The exit status once it has been collected (a signal's number for a process a signal ended, as `Process` says).
    private let status = Locked<Int32?>(nil)

    init(_ path: String, _ arguments: [String], environment: [String: String], stdin: Int32?, stdout: Int32, stderr: Int32) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        let devNull = stdin == nil ? open("/dev/null", O_RDONLY | O_CLOEXEC) : -1
        defer { if devNull >= 0 { close(devNull) } }
        posix_spawn_file_actions_adddup2(&actions, stdin ?? devNull, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in argv + envp { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, path, &actions, nil, argv, envp)
        guard result == 0 else { throw TestError("posix_spawn \(path): \(String(cString: strerror(result)))") }
        processIdentifier = pid
    }

    var isRunning: Bool { collect() == nil }

    var terminationStatus: Int32 { collect() ?? -1 }

    func terminate() { kill(processIdentifier, SIGTERM) }
    func interrupt() { kill(processIdentifier, SIGINT) }

    /// The exit status, collected once, or nil while the process runs.
    private func collect() -> Int32? {
        status.withLock { status in
            if let status { return status }
            var raw: Int32 = 0
            let reaped = waitpid(processIdentifier, &raw, WNOHANG)
            if reaped == -1 && errno == ECHILD {
                status = -1  // (collected by someone else: it has ended)
                return status
            }
            guard reaped == processIdentifier else { return nil }
            // (WIFEXITED and WEXITSTATUS are C macros Swift does not import.)
            let signal = raw & 0x7f
            status = signal == 0 ? (raw >> 8) & 0xff : signal
            return status
        }
    }
}

@Suite("action2phone serve as a process")
struct ServeProcessTests {
    /// A database in `dir` with one operator text queued to `to`.
    func databaseWithAQueuedText(in dir: URL, to: String, body: String) async throws -> (path: String, store: DatabasePool) {
        let db = dir.appendingPathComponent("a.sqlite").path
        let store = try Action2PhoneCoreStore.open(db)
        try await store.write { db in
            try db.execute(
                sql: "INSERT INTO outbox (\"to\", body, purpose, status, createdAt, updatedAt) VALUES (?, ?, 'operator', 'queued', ?, ?)",
                arguments: [to, body, Date(), Date()]
            )
        }
        return (db, store)
    }

    /// `serve` on `db` in Twilio mode against the fake API at `base`, its output in `dir`'s out.log.
    func serveAgainstFakeTwilio(db: String, base: String, dir: URL) throws -> Spawned {
        try Executable.start(
            ["serve", "--port", "0", "--db", db],
            environment: [
                "TWILIO_ACCOUNT_SID": FakeTwilio.accountSid, "TWILIO_AUTH_TOKEN": FakeTwilio.authToken, "TWILIO_FROM_NUMBER": FakeTwilio.from,
                "TWILIO_API_BASE_URL": base,
            ],
            output: dir.appendingPathComponent("out.log")
        )
    }

    @Test func sigtermFinishesTheSendInFlightAndExitsZero() async throws {
        let dir = testScratch.appendingPathComponent("a2p-proc-\(UUID().uuidString)")
        // Given a text queued for a number whose send takes 400 ms at the fake Twilio
        let (db, store) = try await databaseWithAQueuedText(in: dir, to: "+15005550777", body: "slow but sure")
        let fake = FakeTwilio()
        try await fake.run { base in
            let process = try serveAgainstFakeTwilio(db: db, base: base, dir: dir)
            // When SIGTERM arrives while the send is in flight
            let deadline = ContinuousClock.now.advanced(by: .seconds(20))
            while fake.posts(to: "+15005550777").isEmpty && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
            #expect(
                !fake.posts(to: "+15005550777").isEmpty,
                "the server never sent: \(String(decoding: (try? Data(contentsOf: dir.appendingPathComponent("out.log"))) ?? Data(), as: UTF8.self))"
            )
            process.terminate()
            // Then it exits 0 after the send finished, and the row is sent, not uncertain
            let status = await Executable.waitForExit(process, timeout: .seconds(10))
            if status == nil { process.interrupt() }
            #expect(status == 0)
        }
        let row = try await store.read { try Row.fetchOne($0, sql: "SELECT status, twilioSid FROM outbox") }
        #expect(row?["status"] as String? == "sent")
        #expect(fake.created.count == 1)
        let log = String(decoding: try Data(contentsOf: dir.appendingPathComponent("out.log")), as: UTF8.self)
        #expect(log.contains("mode:      TWILIO"))
        #expect(!log.contains(FakeTwilio.authToken))
    }

    @Test func aSendWaitingForASlowTwilioCostsNoCPU() async throws {
        let dir = testScratch.appendingPathComponent("a2p-proc-\(UUID().uuidString)")
        // Given a text queued for a number the fake Twilio answers only after 6 s, on a connection of its own
        let (db, _) = try await databaseWithAQueuedText(in: dir, to: "+15005550503", body: "patience")
        let fake = FakeTwilio(slowDelay: .seconds(6))
        try await fake.run { base in
            let process = try serveAgainstFakeTwilio(db: db, base: base, dir: dir)
            defer { process.interrupt() }
            let deadline = ContinuousClock.now.advanced(by: .seconds(20))
            while fake.posts(to: "+15005550503").isEmpty && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
            #expect(!fake.posts(to: "+15005550503").isEmpty, "the server never sent")
            // When the server waits 4 s for the answer
            try await Task.sleep(for: .milliseconds(500))
            let before = try cpuSeconds(process.processIdentifier)
            try await Task.sleep(for: .seconds(4))
            let spent = try cpuSeconds(process.processIdentifier) - before
            // Then it spends next to no CPU meanwhile (URLSession's driver spun at a core or more until the answer came)
            #expect(spent < 0.5, "\(spent) s of CPU in 4 s of waiting")
        }
    }

    /// The CPU time `pid` has spent, user and system, from /proc.
    func cpuSeconds(_ pid: pid_t) throws -> Double {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        // (The fields after the command's closing parenthesis: utime and stime are the 12th and 13th.)
        let fields = stat[stat.index(after: stat.lastIndex(of: ")")!)...].split(separator: " ")
        return (Double(fields[11])! + Double(fields[12])!) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    @Test func aSecondServeOnTheSameDatabaseIsRefused() async throws {
        let dir = testScratch.appendingPathComponent("a2p-proc-\(UUID().uuidString)")
        let db = dir.appendingPathComponent("a.sqlite").path
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let log = dir.appendingPathComponent("first.log")
        // Given a server running on a database
        let first = try Executable.start(["serve", "--port", "0", "--db", db], environment: [:], output: log)
        defer { if first.isRunning { first.interrupt() } }
        let deadline = ContinuousClock.now.advanced(by: .seconds(20))
        func banner() -> String { String(decoding: (try? Data(contentsOf: log)) ?? Data(), as: UTF8.self) }
        while !banner().contains("listening") && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(banner().contains("listening"), "\(banner())")
        // (a database made on this first start is said to be new: a mistyped path would pass for members gone)
        #expect(banner().contains("(no database was at \(db): created a new, empty one)"), "\(banner())")
        // When a second one starts on it
        let second = try await Executable.run(["serve", "--port", "0", "--db", db])
        // Then it stops at once, saying why, and the first is unharmed
        #expect(second.status == 1)
        #expect(second.stderr.contains("another action2phone serve is running on \(db)"), "\(second.stderr)")
        // and so does one started through a link to the database, or to its folder (the lock is the file's, not the path's)
        let link = dir.appendingPathComponent("link.sqlite").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "a.sqlite")
        let linkedFolder = testScratch.appendingPathComponent("a2p-link-\(UUID().uuidString)").path
        try FileManager.default.createSymbolicLink(atPath: linkedFolder, withDestinationPath: dir.path)
        defer { try? FileManager.default.removeItem(atPath: linkedFolder) }
        for other in [link, linkedFolder + "/a.sqlite"] {
            let viaLink = try await Executable.run(["serve", "--port", "0", "--db", other])
            #expect(viaLink.status == 1, "\(other)")
            #expect(viaLink.stderr.contains("another action2phone serve is running on \(other)"), "\(viaLink.stderr)")
        }
        #expect(first.isRunning)
        first.interrupt()
        #expect(await Executable.waitForExit(first, timeout: .seconds(10)) == 0)
        // And once the first has stopped, a server starts there again
        let third = try Executable.start(["serve", "--port", "0", "--db", db], environment: [:], output: dir.appendingPathComponent("third.log"))
        defer { if third.isRunning { third.interrupt() } }
        func thirdLog() -> String { String(decoding: (try? Data(contentsOf: dir.appendingPathComponent("third.log"))) ?? Data(), as: UTF8.self) }
        while !thirdLog().contains("listening") && ContinuousClock.now < deadline.advanced(by: .seconds(20)) {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(thirdLog().contains("listening"), "\(thirdLog())")
        #expect(!thirdLog().contains("no database was at"), "\(thirdLog())")
    }

    @Test func aServerOnANewDatabaseThroughAChainOfLinksHoldsTheLockWhereTheDatabaseIsMade() async throws {
        // Given a.sqlite → b.sqlite → real/c.sqlite, with no database there yet, and a server started through a.sqlite
        let dir = testScratch.appendingPathComponent("a2p-proc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("real"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("a.sqlite").path, withDestinationPath: "b.sqlite")
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("b.sqlite").path, withDestinationPath: "real/c.sqlite")
        let log = dir.appendingPathComponent("first.log")
        let first = try Executable.start(
            ["serve", "--port", "0", "--db", dir.appendingPathComponent("a.sqlite").path],
            environment: [:],
            output: log
        )
        defer { if first.isRunning { first.interrupt() } }
        let deadline = ContinuousClock.now.advanced(by: .seconds(20))
        func banner() -> String { String(decoding: (try? Data(contentsOf: log)) ?? Data(), as: UTF8.self) }
        while !banner().contains("listening") && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(banner().contains("listening"), "\(banner())")
        // When a second starts on the database itself, now made
        let real = dir.appendingPathComponent("real/c.sqlite").path
        let second = try await Executable.run(["serve", "--port", "0", "--db", real])
        // Then it is refused: both found the same lock
        #expect(second.status == 1 && second.stderr.contains("another action2phone serve is running on \(real)"), "\(second.stderr)")
        // And a link into a folder that does not exist is said to be one
        let broken = dir.appendingPathComponent("broken.sqlite").path
        try FileManager.default.createSymbolicLink(atPath: broken, withDestinationPath: "nowhere/x.sqlite")
        let third = try await Executable.run(["serve", "--port", "0", "--db", broken])
        let said =
            "cannot open the database \(broken): it is a link to \(dir.appendingPathComponent("nowhere/x.sqlite").path), in a folder that does not exist"
        #expect(third.status == 1 && third.stderr.contains(said), "\(third.stderr)")
        // and a loop of links, with no lock file left beside it
        let loop = dir.appendingPathComponent("loop1.sqlite").path
        try FileManager.default.createSymbolicLink(atPath: loop, withDestinationPath: "loop2.sqlite")
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("loop2.sqlite").path, withDestinationPath: "loop1.sqlite")
        let fourth = try await Executable.run(["serve", "--port", "0", "--db", loop])
        #expect(fourth.status == 1 && fourth.stderr.contains("cannot open the database \(loop): its links lead round in a loop"), "\(fourth.stderr)")
        #expect(!FileManager.default.fileExists(atPath: loop + "-serve.lock"))
        #expect(first.isRunning)
    }

    @Test func aDevelopmentTokenThatCannotBeUsedIsSaidSoInItsOwnWords() async throws {
        // Given a folder where the development token file should be
        let db = testScratch.appendingPathComponent("a2p-proc-\(UUID().uuidString)/a.sqlite").path
        try FileManager.default.createDirectory(atPath: db + ".dev-token", withIntermediateDirectories: true)
        // Then serve says which file and what is wrong, not "error 0"
        let r = try await Executable.run(["serve", "--port", "0", "--db", db])
        #expect(r.status == 1 && r.stderr.contains("cannot write the development token file \(db).dev-token"), "\(r.stderr)")
        #expect(!r.stderr.contains("error 0") && !r.stderr.contains("error 1"), "\(r.stderr)")
    }

    @Test func aHostThatIsNoAddressOfThisMachineIsSaidSo() async throws {
        let db = testScratch.appendingPathComponent("a2p-proc-\(UUID().uuidString)/a.sqlite").path
        let r = try await Executable.run(["serve", "--host", "256.1.1.1", "--port", "0", "--db", db])
        #expect(r.status == 1 && r.stderr.contains("cannot listen on 256.1.1.1:0: no address of this machine; choose one with --host"), "\(r.stderr)")
    }

    @Test func whatIsNotAnAction2PhoneDatabaseIsRefusedAndLeftAsItWas() async throws {
        let dir = testScratch.appendingPathComponent("a2p-proc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("a-folder"), withIntermediateDirectories: true)
        let text = dir.appendingPathComponent("notes.sqlite").path
        try Data("not a database".utf8).write(to: URL(fileURLWithPath: text))
        // Another application's database, in its own journal mode
        let other = dir.appendingPathComponent("shop.sqlite").path
        try await DatabaseQueue(path: other).write { try $0.execute(sql: "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)") }
        // Another GRDB application's, with its own migrations
        let game = dir.appendingPathComponent("game.sqlite").path
        try await DatabaseQueue(path: game).write { db in
            try db.execute(
                sql: "CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY); INSERT INTO grdb_migrations VALUES ('createPlayers')"
            )
            try db.execute(sql: "CREATE TABLE player (id INTEGER PRIMARY KEY)")
        }
        let cases = [
            (game, "it is another application's database (tables grdb_migrations, player), not Action2Phone's; it was left as it was"),
            (dir.appendingPathComponent("a-folder").path, "it is a folder, not a database file"),
            (text, "it is not an SQLite database (14 bytes of something else); it was left as it was"),
            (other, "it is another application's database (tables customers), not Action2Phone's; it was left as it was"),
        ]
        for (path, why) in cases {
            for arguments in [["users", "list"], ["serve", "--port", "0"], ["chat", "--from", "4155550100"], ["replay", "--check"]] {
                let r = try await Executable.run(
                    arguments + ["--db", path]
                        + (arguments[0] == "replay"
                            ? [repositoryRoot.appendingPathComponent("fixtures/conversations/registration-happy-path.json").path] : []),
                    input: "HELP\n"
                )
                #expect(r.status == 1 && r.stderr.contains("cannot open the database \(path): \(why)"), "\(arguments): \(r.stderr)")
            }
            // (and serve, chat and replay made nothing beside it: no lock, no development token, a fresh secret)
            for made in [path + "-serve.lock", path + ".dev-token"] {
                #expect(!FileManager.default.fileExists(atPath: made), "\(made)")
            }
        }
        // A path ending in / is a misused flag (64), named as such
        let slash = try await Executable.run(["serve", "--port", "0", "--db", dir.path + "/"])
        #expect(slash.status == 64 && slash.stderr.contains("--db ends in /, which names a folder"), "\(slash.stderr)")
        #expect(try String(contentsOfFile: text, encoding: .utf8) == "not a database")
        let shop = try await DatabaseQueue(path: other).read { db in
            (try String.fetchOne(db, sql: "PRAGMA journal_mode"), try String.fetchAll(db, sql: "SELECT name FROM sqlite_master"))
        }
        #expect(shop.0 == "delete" && shop.1 == ["customers"])
        #expect(try await DatabaseQueue(path: game).read { try String.fetchOne($0, sql: "PRAGMA journal_mode") } == "delete")
        // An empty file is a new database: said so, and made private
        let empty = dir.appendingPathComponent("empty.sqlite").path
        FileManager.default.createFile(atPath: empty, contents: nil, attributes: [.posixPermissions: 0o644])
        let made = try await Executable.run(["users", "list", "--db", empty])
        #expect(made.status == 0 && made.stderr.contains("(no database was at \(empty): created a new, empty one)"), "\(made.stderr)")
        #expect((try FileManager.default.attributesOfItem(atPath: empty)[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        // And chat refuses a sender that looks like a number but is none
        let short = try await Executable.run(["chat", "--db", empty, "--from", "+1415555010"], input: "HELP\n")
        #expect(short.status == 1 && short.stderr.contains("--from '+1415555010' is not a phone number"), "\(short.stderr)")
    }

    @Test func aDatabaseFromANewerVersionIsRefused() async throws {
        let db = testScratch.appendingPathComponent("a2p-proc-\(UUID().uuidString)/a.sqlite").path
        let store = try Action2PhoneCoreStore.open(db)
        try await store.write { try $0.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99 from the future')") }
        for arguments in [["users", "list"], ["serve", "--port", "0"], ["chat", "--from", "4155550100"]] {
            let r = try await Executable.run(arguments + ["--db", db], input: "HELP\n")
            #expect(r.status == 1)
            #expect(
                r.stderr.contains("migrated by a newer version of action2phone (migrations this version does not know: 'v99 from the future')"),
                "\(arguments): \(r.stderr)"
            )
        }
        // (and serve and chat made nothing beside it)
        for made in [db + "-serve.lock", db + ".dev-token"] {
            #expect(!FileManager.default.fileExists(atPath: made), "\(made)")
        }
    }

    @Test func anEmptyFileAnotherUserMadeIsRefusedWithNothingMadeBesideIt() async throws {
        // Given an empty file that another user (nobody, uid 65534) made where the database should be (the tests run as
        // root, as CI does; as another user this cannot be set up)
        guard geteuid() == 0 else { return }
        let db = testScratch.appendingPathComponent("a2p-proc-\(UUID().uuidString)/a.sqlite").path
        try FileManager.default.createDirectory(atPath: (db as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: db, contents: nil, attributes: [.posixPermissions: 0o666])
        #expect(chown(db, 65534, 65534) == 0)
        for arguments in [["serve", "--port", "0"], ["chat", "--from", "4155550100"]] {
            let r = try await Executable.run(arguments + ["--db", db], input: "HELP\n")
            #expect(r.status == 1 && r.stderr.contains("it is an empty file another user (uid 65534) made"), "\(arguments): \(r.stderr)")
        }
        for made in [db + "-serve.lock", db + ".dev-token"] {
            #expect(!FileManager.default.fileExists(atPath: made), "\(made)")
        }
    }
}

/// A plain GRDB handle on a test database that the server also opens.
enum Action2PhoneCoreStore {
    static func open(_ path: String) throws -> DatabasePool {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        _ = try Action2PhoneCore.SQLiteStore.open(path: path)
        return try DatabasePool(path: path)
    }
}
