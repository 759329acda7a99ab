// SPDX-License-Identifier: Apache-2.0
import Action2PhoneCore
import ArgumentParser
import Foundation

/// `action2phone backup FILE`: a consistent copy of the database, safe while `serve` runs.
struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy the whole database to a new file, consistently, while serve may be running.",
        discussion: """
            The copy is the database as it was at one moment (SQLite's online backup); the database itself is \
            only read. The copy is private to its owner, checked before it is given its name, and never written \
            over an existing file. To restore: stop serve, put the copy at the database's path (removing that \
            path's -wal and -shm files), and start serve again.
            """
    )
    @OptionGroup var store: StoreOptions
    @Argument(help: "The new file to write.") var file: String

    func run() async throws {
        let path = try store.givenPath()
        do {
            let summary = try SQLiteStore.backup(databaseAt: path, to: file)
            if summary.leftoversRemoved > 0 {
                let copies = summary.leftoversRemoved == 1 ? "the unfinished copy" : "\(summary.leftoversRemoved) unfinished copies"
                printError("note: removed \(copies) that interrupted backups to \(file) had left")
            }
            let megabytes = String(format: "%.1f", Double(summary.bytes) / 1_048_576)
            let people = summary.users == 1 ? "1 person" : "\(summary.users) people"
            print(
                "Backed up \(path) to \(file) (\(megabytes) MB, checked): \(people), \(summary.inbound) inbound texts, \(summary.outbox) outbox rows."
            )
        } catch let error as BackupError {
            throw CLIError("cannot back up to \(file): \(error.description)")
        }
    }
}
