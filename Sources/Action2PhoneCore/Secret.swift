// SPDX-License-Identifier: Apache-2.0

/// A secret (an auth token) that cannot leak through string interpolation or logging.
///
/// ```swift
/// let token = Secret("s3cr3t")
/// logger.info("token \(token)")   // "token [redacted]"
/// token.reveal()                   // "s3cr3t", only where the value is really needed
/// ```
public struct Secret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    private let value: String
    public init(_ value: String) { self.value = value }
    public func reveal() -> String { value }
    public var description: String { "[redacted]" }
    public var debugDescription: String { "[redacted]" }
    public var customMirror: Mirror { Mirror(self, children: [:]) }
}
