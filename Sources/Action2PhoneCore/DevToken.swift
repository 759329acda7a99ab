// SPDX-License-Identifier: Apache-2.0
import Foundation
import TwilioKit

/// The development auth token of local mode: random, created on first use, kept next to the database
/// as `<db>.dev-token` (mode 0600) so that `serve`, `replay` and `chat` sign and check with the same one.
public enum DevToken {
    /// Where the token for the database at `databasePath` lives.
    public static func path(forDatabase databasePath: String) -> String { databasePath + ".dev-token" }

    /// Reads the token, creating it (and its folder) first when there is none.
    public static func loadOrCreate(forDatabase databasePath: String) throws -> Secret {
        let path = path(forDatabase: databasePath)
        if let existing = try? String(contentsOfFile: path, encoding: .utf8) {
            let token = existing.trimmingWhitespace()
            if token.count >= 32 { return Secret(token) }
        }
        let folder = (path as NSString).deletingLastPathComponent
        if !folder.isEmpty {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        }
        let token = Crypto.hex(Crypto.randomBytes(16))
        guard FileManager.default.createFile(atPath: path, contents: Data((token + "\n").utf8), attributes: [.posixPermissions: 0o600])
        else { throw DevTokenError.cannotWrite(path) }
        return Secret(token)
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
