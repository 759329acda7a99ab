// SPDX-License-Identifier: Apache-2.0

/// The rules for passcodes.
public enum PasscodePolicy {
    /// PBKDF2-HMAC-SHA256 iterations in production (OWASP's 2023 figure).
    public static let productionIterations = 600_000
    /// Allowed passcode lengths, in characters.
    public static let lengths = 6...64
    /// The PBKDF2 costs this server hashes with or will check a stored hash at (`ACTION2PHONE_PBKDF2_ITERATIONS`).
    public static let iterationRange = 1...10_000_000
}

extension PasscodeHash {
    /// Whether this can be checked: a cost in `PasscodePolicy.iterationRange` and a hash of 16 to 64 bytes. A
    /// damaged stored record is not (PBKDF2 would trap on it and take the server down).
    public var isUsable: Bool {
        PasscodePolicy.iterationRange.contains(iterations) && (16...64).contains(hash.count)
    }
}
