// SPDX-License-Identifier: Apache-2.0
import Action2PhoneCore
import Action2PhoneServer
import ArgumentParser
import Foundation
import Logging

/// `action2phone serve`: the webhook server and the outbox worker.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the webhook server (POST /sms, POST /sms/status, GET /healthz).",
        discussion: """
            Every option falls back to its environment variable, then to the default. The auth tokens are read \
            only from the environment (TWILIO_AUTH_TOKEN, TWILIO_AUTH_TOKEN_SECONDARY): command lines are visible \
            to every user of the machine. Without Twilio credentials the server runs in local mode.
            """
    )

    @Option(help: "SQLite database file (env: ACTION2PHONE_DB, default db/action2phone.sqlite).") var db: String?
    @Option(help: "Listen address (env: ACTION2PHONE_HOST, default 127.0.0.1).") var host: String?
    @Option(parsing: .unconditional, help: "Listen port (env: ACTION2PHONE_PORT, default 8080).") var port: String?
    @Option(help: "Public base URL Twilio calls, e.g. https://bot.example.org (env: ACTION2PHONE_PUBLIC_URL).") var publicURL: String?
    @Option(help: "Twilio account SID, AC… (env: TWILIO_ACCOUNT_SID).") var accountSid: String?
    @Option(help: "Sender number for REST sends (env: TWILIO_FROM_NUMBER).") var fromNumber: String?
    @Option(help: "Messaging Service SID for REST sends (env: TWILIO_MESSAGING_SERVICE_SID).") var messagingServiceSid: String?
    @Option(help: "Twilio REST API base URL (env: TWILIO_API_BASE_URL).") var apiBaseURL: String?
    @Option(help: "twiml or rest (env: ACTION2PHONE_REPLY_MODE, default twiml).") var replyMode: String?
    @Option(parsing: .unconditional, help: "Outbound messages per second (env: ACTION2PHONE_SEND_RATE, default 1).") var sendRate: String?
    @Option(parsing: .unconditional, help: "Seconds a login lasts without activity (env: ACTION2PHONE_SESSION_TTL, default 1800).") var sessionTTL:
        String?
    @Option(help: "Comma-separated numbers that register as admins (env: ACTION2PHONE_ADMIN_PHONES).") var adminPhones: String?
    @Option(help: "Time zone of the times and dates in texts, e.g. America/New_York (env: ACTION2PHONE_TIME_ZONE, default UTC).")
    var timeZone: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (env: LOG_LEVEL).") var logLevel: String?

    var flags: [ConfigKey: String] {
        var f: [ConfigKey: String] = [:]
        f[.database] = db
        f[.host] = host
        f[.port] = port
        f[.publicURL] = publicURL
        f[.accountSid] = accountSid
        f[.fromNumber] = fromNumber
        f[.messagingServiceSid] = messagingServiceSid
        f[.apiBaseURL] = apiBaseURL
        f[.replyMode] = replyMode
        f[.sendRate] = sendRate
        f[.sessionTTL] = sessionTTL
        f[.adminPhones] = adminPhones
        f[.timeZone] = timeZone
        return f
    }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        // A bad setting is a misused flag or variable (exit 64), with this command's usage, not the tool's.
        func refused(_ message: String) -> ExitCode {
            printError("Error: \(message)\nUsage: action2phone \(Serve.usageString())")
            return ExitCode(64)
        }
        let logger: Logger
        do {
            logger = makeLogger(level: try parseLogLevel(flag: logLevel, environment: environment["LOG_LEVEL"]))
        } catch let error as ValidationError {
            throw refused(error.message)
        }
        let config: ServerConfig
        let databasePath = ServerConfig.databasePath(flags: flags, environment: environment)
        try refuseForeignDatabase(databasePath)
        do {
            config = try ServerConfig.resolve(flags: flags, environment: environment)
        } catch let error as ConfigError {
            throw refused(error.description)
        } catch let error as DevTokenError {
            throw CLIError("\(error)")
        } catch let error as FolderNotMade {
            throw CLIError("cannot use the database \(databasePath): \(error)")
        } catch let error as PrivateFileError {
            // (Its own words: on Linux `localizedDescription` ignores `description`, and said only "error 1".)
            throw CLIError("cannot use the development token: \(error)")
        } catch {
            // Local mode keeps its development token beside the database: that folder could not be made or written.
            throw CLIError("cannot use the database \(databasePath): \(error.localizedDescription)")
        }
        // Locked before the database is opened: opening migrates it, which must not happen under a running server.
        let lock = try ServeLock(databasePath: config.databasePath)
        defer { lock.release() }
        // A new database is said, not refused: a first start makes it. A mistyped path, or another working directory
        // for the default db/action2phone.sqlite, would otherwise tell every member to JOIN again.
        let store = try openDatabase(config.databasePath)
        let handler = ConversationService(config: config, store: store, logger: logger)
        let worker = OutboxWorker(config: config, store: store, logger: logger)
        let checkpoints = CheckpointService(checkpointer: try store.makeCheckpointer(), logger: logger)
        let app = buildApplication(
            config: config,
            store: store,
            handler: handler,
            // (A question is abandoned after a day, or after the session's TTL when that is longer: never while it lasts.)
            services: [worker, checkpoints, HousekeepingService(store: store, abandonedAfter: max(86_400, config.sessionTTL), logger: logger)],
            logger: logger,
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? config.port
                FileHandle.standardOutput.write(Data((banner(config, port: port) + "\n").utf8))
            }
        )
        do {
            try await app.runService()
        } catch  where "\(error)".contains("Address already in use") {
            throw CLIError("cannot listen on \(config.host):\(config.port): the port is in use (another server?); choose one with --port")
        } catch  where "\(error)".contains("UnknownHost") || "\(error)".contains("Cannot assign requested address") {
            throw CLIError("cannot listen on \(config.host):\(config.port): no address of this machine; choose one with --host (127.0.0.1, 0.0.0.0)")
        }
    }
}

/// One `serve` per database: a second one's outbox worker would send at the configured rate too, doubling it.
/// An advisory lock (`flock`) on `<database>-serve.lock`, which the kernel drops when the process ends, however
/// it ends; the file itself stays. It sits beside the database file itself, links followed, so that a server
/// started through a symbolic link to the database (or to its folder) finds the same lock.
struct ServeLock {
    let descriptor: Int32

    init(databasePath: String) throws {
        let folder = SQLiteStore.folderPath(of: databasePath)
        do {
            try SQLiteStore.makeFolder(folder)
        } catch {
            throw CLIError("cannot open the database \(databasePath): \(error)")
        }
        let file: String
        do {
            file = try SQLiteStore.databaseFile(databasePath)
        } catch {
            throw CLIError("cannot open the database \(databasePath): \(error)")
        }
        let path = file + "-serve.lock"
        descriptor = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw CLIError("cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let busy = errno == EWOULDBLOCK
            let reason = String(cString: strerror(errno))
            close(descriptor)
            throw CLIError(
                busy
                    ? "another action2phone serve is running on \(databasePath) (it holds \(path)); stop it first: two outbox workers would together send at twice the configured rate"
                    : "cannot lock \(path): \(reason)"
            )
        }
    }

    func release() { close(descriptor) }
}

/// The start-up banner: mode, URL, database; never a secret.
func banner(_ config: ServerConfig, port: Int) -> String {
    let listen = "http://\(config.host):\(port)"
    var lines = ["action2phone is listening on \(listen)"]
    if config.isLocalMode {
        lines.append("mode:      LOCAL (no Twilio credentials): nothing is sent; outbound texts end 'simulated'")
        lines.append("dev token: webhooks are checked against the token in \(config.devTokenPath ?? "?")")
    } else {
        lines.append("mode:      TWILIO, account \(config.accountSid ?? "?")")
        lines.append("sender:    \(config.fromNumber ?? config.messagingServiceSid ?? "none")")
    }
    lines.append(
        "webhook:   \(config.publicURL.map { ServerConfig.displayed($0 + "/sms") } ?? "\(listen)/sms (no ACTION2PHONE_PUBLIC_URL: rebuilt from Host)")"
    )
    lines.append("database:  \(config.databasePath)")
    lines.append("replies:   \(config.replyMode.rawValue); outbox sends at most \(config.sendRate)/s; times in \(config.localTime.name)")
    if let warning = config.weakHashingWarning { lines.append("WARNING:   " + warning) }
    if let warning = config.plainHTTPWarning { lines.append("WARNING:   " + warning) }
    if let warning = config.ignoredSecondaryTokenWarning { lines.append("WARNING:   " + warning) }
    return lines.joined(separator: "\n")
}

func makeLogger(level: Logger.Level) -> Logger {
    LoggingSystem.bootstrap(StreamLogHandler.standardError)
    var logger = Logger(label: "action2phone")
    logger.logLevel = level
    return logger
}

/// The level `--log-level` or else `LOG_LEVEL` names (any case), `info` when neither is set; a level that does
/// not exist stops `serve` naming where it came from, like every other bad setting.
func parseLogLevel(flag: String?, environment: String?) throws -> Logger.Level {
    let (raw, name) = flag.map { ($0, "--log-level") } ?? (environment ?? "", "LOG_LEVEL")
    if raw.isEmpty && flag == nil { return .info }
    guard let level = Logger.Level(rawValue: raw.trimmingWhitespace().lowercased()) else {
        let levels = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
        throw ValidationError("\(name) must be one of \(levels) (got '\(ServerConfig.shown(raw))')")
    }
    return level
}
