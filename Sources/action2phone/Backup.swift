// SPDX-License-Identifier: Apache-2.0
import Action2PhoneCore
import ArgumentParser
import Foundation

/// `action2phone backup FILE`: a consistent copy of the database, safe while `serve` runs.
struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy the whole database to a new file, consistently, while serve may be running.",
        discussion: """
            The copy is the database as it was at one moment (SQLite's online backup), checked before it is \
            given its name; an existing file is never overwritten. To restore: stop serve, put the copy at the \
            database's path (removing that path's -wal and -shm files), and start serve again.
            """
    )
    @OptionGroup var store: StoreOptions
    @Argument(help: "The new file to write.") var file: String

    func run() async throws {
        guard FileManager.default.fileExists(atPath: store.path) else { throw CLIError("there is no database at \(store.path) to back up") }
        let database = try store.open()
        do {
            let summary = try database.backup(to: file)
            let megabytes = String(format: "%.1f", Double(summary.bytes) / 1_048_576)
            print(
                "Backed up \(store.path) to \(file) (\(megabytes) MB, checked): \(summary.users == 1 ? "1 person" : "\(summary.users) people"), \(summary.inbound) inbound texts, \(summary.outbox) outbox rows."
            )
        } catch let error as BackupError {
            throw CLIError("cannot back up to \(file): \(error.description)")
        }
    }
}
