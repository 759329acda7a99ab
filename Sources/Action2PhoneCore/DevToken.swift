// SPDX-License-Identifier: Apache-2.0
import Foundation
import TwilioKit

/// The development auth token of local mode: random, created on first use, kept next to the database
/// as `<db>.dev-token` (mode 0600) so that `serve`, `replay` and `chat` sign and check with the same one.
public enum DevToken {
    /// Where the token for the database at `databasePath` lives: beside the database file itself, links followed, so
    /// that `serve` started through a link and `chat` given the real path share one. (Beside the path as given while
    /// its folder is not there yet: the same file, once it is made.)
    public static func path(forDatabase databasePath: String) -> String {
        ((try? SQLiteStore.databaseFile(databasePath)) ?? databasePath) + ".dev-token"
    }

    /// Reads the token, creating it (and its folder) first when there is none. The file is private from its first byte;
    /// an existing one is made private if it is not, and refused if another user owns it.
    public static func loadOrCreate(forDatabase databasePath: String) throws -> Secret {
        let path = path(forDatabase: databasePath)
        if let token = try existing(at: path) { return token }
        let folder = (path as NSString).deletingLastPathComponent
        if !folder.isEmpty {
            try SQLiteStore.makeFolder(folder)
        }
        let token = Crypto.hex(Crypto.randomBytes(16))
        // Written whole to a private file of its own first, then put in place in one step: another process (serve and
        // chat started together) never reads a file still being written.
        let fresh = path + ".new-" + Crypto.hex(Crypto.randomBytes(4))
        do {
            try PrivateFile.create(atPath: fresh, contents: Array((token + "\n").utf8))
        } catch {
            throw DevTokenError.cannotWrite(path)
        }
        defer { unlink(fresh) }
        if link(fresh, path) == 0 { return Secret(token) }
        // Another process put its token there first: use theirs.
        if let theirs = try existing(at: path) { return theirs }
        // A file too short to be a token (emptied by hand, say) is replaced. (So is a missing one on a file system
        // without hard links.)
        guard rename(fresh, path) == 0 else { throw DevTokenError.cannotWrite(path) }
        return Secret(token)
    }

    /// The token already in `path`, made private first; `nil` when there is no file or no token in it.
    private static func existing(at path: String) throws -> Secret? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        try PrivateFile.tighten(atPath: path)
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let token = text.trimmingWhitespace()
        return token.count >= 32 ? Secret(token) : nil
    }
}

/// The development token file could not be written.
public enum DevTokenError: Error, CustomStringConvertible {
    case cannotWrite(String)
    public var description: String {
        switch self {
        case .cannotWrite(let path): "cannot write the development token file \(path)"
        }
    }
}
