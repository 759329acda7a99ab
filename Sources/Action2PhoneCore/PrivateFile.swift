// SPDX-License-Identifier: Apache-2.0
import Foundation

/// Files only their owner may read (the development token, a backup), private from the first byte:
/// `FileManager.createFile(atPath:contents:attributes:)` writes a temporary file with the default mode (0644 under
/// the usual umask), renames it, and only then applies the attributes, so another local user could open it meanwhile.
enum PrivateFile {
    /// Creates `path` with mode 0600 and writes `contents`; fails if anything is already there (`EEXIST`) or the
    /// bytes could not all be written and synced (the file is then removed).
    static func create(atPath path: String, contents: [UInt8]) throws(PrivateFileError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw PrivateFileError(path: path, code: errno) }
        var failure: Int32? = nil
        contents.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else {
                    failure = errno
                    return
                }
                offset += written
            }
        }
        if failure == nil && fsync(fd) != 0 { failure = errno }
        close(fd)
        if let failure {
            unlink(path)
            throw PrivateFileError(path: path, code: failure)
        }
    }

    /// Makes an existing file of this user's private (mode 0600) if it is not; refuses one another user owns, which
    /// someone else could have put there or could read.
    static func tighten(atPath path: String) throws(PrivateFileError) {
        var info = stat()
        guard stat(path, &info) == 0 else { throw PrivateFileError(path: path, code: errno) }
        guard info.st_uid == geteuid() else { throw PrivateFileError(path: path, code: EPERM, notOwned: true) }
        if info.st_mode & 0o077 != 0 && chmod(path, 0o600) != 0 { throw PrivateFileError(path: path, code: errno) }
    }
}

/// A private file could not be created, written or checked.
public struct PrivateFileError: Error, CustomStringConvertible {
    public var path: String
    public var code: Int32
    public var notOwned = false

    public var description: String {
        if notOwned { return "\(path) belongs to another user: remove it, or make it this user's with mode 0600" }
        return "\(path): \(String(cString: strerror(code)))"
    }
}
