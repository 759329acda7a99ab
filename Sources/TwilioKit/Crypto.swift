// SPDX-License-Identifier: Apache-2.0
import CLibCrypto

/// Thin, allocation-light wrappers over the system OpenSSL libcrypto.
///
/// ```swift
/// let mac = Crypto.hmac(.sha1, key: Array("12345".utf8), message: Array(signed.utf8))
/// let key = Crypto.pbkdf2SHA256(password: Array("hunter22".utf8), salt: salt, iterations: 600_000)
/// ```
public enum Crypto {
    /// The digests this project needs.
    public enum Digest: Sendable { case sha1, sha256 }

    /// HMAC of `message` under `key`.
    public static func hmac(_ digest: Digest, key: [UInt8], message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var outLength: UInt32 = 0
        let md = evp(digest)
        let ok = key.withUnsafeBufferPointer { k in
            message.withUnsafeBufferPointer { m in
                HMAC(md, k.baseAddress, Int32(k.count), m.baseAddress, m.count, &out, &outLength)
            }
        }
        precondition(ok != nil, "HMAC failed")
        out.removeLast(out.count - Int(outLength))
        return out
    }

    /// SHA-256 of `bytes`.
    public static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var outLength: UInt32 = 0
        let ok = bytes.withUnsafeBufferPointer { b in
            EVP_Digest(b.baseAddress, b.count, &out, &outLength, EVP_sha256(), nil)
        }
        precondition(ok == 1, "EVP_Digest failed")
        out.removeLast(out.count - Int(outLength))
        return out
    }

    /// PBKDF2-HMAC-SHA256. Slow by design: never call it on an event loop or the cooperative pool.
    public static func pbkdf2SHA256(password: [UInt8], salt: [UInt8], iterations: Int, length: Int = 32) -> [UInt8] {
        precondition(iterations > 0 && length > 0)
        var out = [UInt8](repeating: 0, count: length)
        let rc = password.withUnsafeBufferPointer { p in
            salt.withUnsafeBufferPointer { s in
                p.withMemoryRebound(to: CChar.self) { pc in
                    PKCS5_PBKDF2_HMAC(
                        pc.baseAddress,
                        Int32(pc.count),
                        s.baseAddress,
                        Int32(s.count),
                        Int32(iterations),
                        EVP_sha256(),
                        Int32(length),
                        &out
                    )
                }
            }
        }
        precondition(rc == 1, "PKCS5_PBKDF2_HMAC failed")
        return out
    }

    /// Cryptographically secure random bytes from `RAND_bytes`.
    public static func randomBytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        precondition(RAND_bytes(&out, Int32(count)) == 1, "RAND_bytes failed")
        return out
    }

    /// Compares two byte strings in time that depends only on their length.
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return CRYPTO_memcmp(a, b, a.count) == 0
    }

    private static func evp(_ digest: Digest) -> OpaquePointer? {
        switch digest {
        case .sha1: EVP_sha1()
        case .sha256: EVP_sha256()
        }
    }
}

// MARK: - Encodings

extension Crypto {
    /// Lower-case hexadecimal.
    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Standard base64 with `=` padding (RFC 4648 §4).
    public static func base64(_ bytes: [UInt8]) -> String {
        let table = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out = [UInt8]()
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i + 2 < bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out += [table[Int(n >> 18 & 63)], table[Int(n >> 12 & 63)], table[Int(n >> 6 & 63)], table[Int(n & 63)]]
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let n = UInt32(bytes[i]) << 16
            out += [table[Int(n >> 18 & 63)], table[Int(n >> 12 & 63)], UInt8(ascii: "="), UInt8(ascii: "=")]
        } else if rest == 2 {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out += [table[Int(n >> 18 & 63)], table[Int(n >> 12 & 63)], table[Int(n >> 6 & 63)], UInt8(ascii: "=")]
        }
        return String(decoding: out, as: UTF8.self)
    }
}
