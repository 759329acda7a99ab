// SPDX-License-Identifier: Apache-2.0
import Action2PhoneCore
import Action2PhoneServer
import ArgumentParser
import Foundation

/// `--db PATH`, shared by every subcommand.
struct StoreOptions: ParsableArguments {
    @Option(help: "SQLite database file (env: ACTION2PHONE_DB, default db/action2phone.sqlite).")
    var db: String?

    /// `--db`, else `ACTION2PHONE_DB`, else the default, read as `serve` reads them (the white space around a value
    /// dropped, an empty variable unset), so that one setting names one file for every command. An empty `--db`
    /// stays empty, for `open`, `config` and `backup` to refuse.
    var path: String {
        if let db, db.trimmingWhitespace().isEmpty { return "" }
        return ServerConfig.databasePath(flags: db.map { [.database: $0] } ?? [:], environment: ProcessInfo.processInfo.environment)
    }

    /// `path`, refused when `--db` is empty.
    func givenPath() throws -> String {
        guard !path.isEmpty else { throw CLIError("--db is empty: give the database file's path") }
        return path
    }

    /// Opens or creates the database and applies migrations. A new one is said on stderr: an operator in the wrong
    /// directory, or with a mistyped path, would otherwise read "No one is registered yet." as their members gone.
    /// (`replay --fresh` makes its databases new on purpose: `announcingNew` false.)
    func open(announcingNew: Bool = true) throws -> SQLiteStore {
        try openDatabase(givenPath(), announcingNew: announcingNew)
    }

    /// The server configuration from the environment, for this database, as `chat` and `replay` need it: they sign
    /// webhooks or run the conversation in-process, and send nothing, so no sender is required.
    func config() throws -> ServerConfig {
        let path = try givenPath()
        try refuseForeignDatabase(path)
        do {
            return try ServerConfig.resolve(flags: [.database: path], environment: ProcessInfo.processInfo.environment, requireSender: false)
        } catch let error as ConfigError {
            throw CLIError(error.description)
        } catch let error as FolderNotMade {
            throw CLIError("cannot use the database \(path): \(error)")
        }
    }
}

/// Refuses what is no Action2Phone database at `path` (a folder, a file that is not SQLite, another application's)
/// before anything is made beside it: a development token, `serve`'s lock. `openDatabase` says it in the same words.
func refuseForeignDatabase(_ path: String) throws {
    do {
        try SQLiteStore.refuseIfForeign(path: path)
    } catch {
        throw CLIError("cannot open the database \(path): \(error)")
    }
}

/// Opens or creates the database at `path` and applies migrations; one it had to create (no file, or an empty one) is
/// said on stderr when `announcingNew`.
func openDatabase(_ path: String, announcingNew: Bool = true) throws -> SQLiteStore {
    let existed = FileManager.default.fileExists(atPath: path) && !SQLiteStore.isEmptyFile(path)
    do {
        let store = try SQLiteStore.open(path: path)
        if !existed && announcingNew { printError("(no database was at \(path): created a new, empty one)") }
        return store
    } catch {
        throw CLIError("cannot open the database \(path): \(error)")
    }
}

/// An operator-facing failure: printed as `Error: …`, exit status 1.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A phone argument in E.164 or a national form (default country +1).
func phoneArgument(_ raw: String) throws -> String {
    guard let phone = PhoneNumber.normalize(raw) else {
        throw CLIError("'\(raw)' is not a phone number: use E.164 (+14155550100) or a US form (415-555-0100)")
    }
    return phone
}

/// A list fetched with one row more than `limit` (`oneMore(limit)`), cut to `limit`; whether rows were left out is
/// said on stderr (`note`), so that stdout stays the rows and a list cut short does not pass for the whole one.
func within<Row>(_ rows: [Row], limit: Int, note: String) -> [Row] {
    guard rows.count > limit else { return rows }
    printError(note)
    return Array(rows.prefix(limit))
}

/// `limit` and one more, to tell whether there are more (`within`).
func oneMore(_ limit: Int) -> Int { min(limit, Int.max - 1) + 1 }

/// Writes to standard error.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
