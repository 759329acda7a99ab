// SPDX-License-Identifier: Apache-2.0
import Foundation

/// A value behind a lock, shared between tasks and threads.
///
/// (`Synchronization.Mutex` held in a class crashed the debug build of this executable, Swift 6.3.1
/// on Linux, a bad pointer in `withLock`, while the test binaries ran it fine; `NSLock` has no such problem.)
public final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    public init(_ value: Value) { self.value = value }

    public func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }

    public var current: Value { withLock { $0 } }
}
