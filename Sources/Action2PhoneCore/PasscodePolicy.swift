// SPDX-License-Identifier: Apache-2.0

/// The rules for passcodes.
public enum PasscodePolicy {
    /// PBKDF2-HMAC-SHA256 iterations in production (OWASP's 2023 figure).
    public static let productionIterations = 600_000
    /// Allowed passcode lengths, in characters.
    public static let lengths = 6...64
}
