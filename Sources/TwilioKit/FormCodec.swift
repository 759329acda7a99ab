// SPDX-License-Identifier: Apache-2.0

/// One `name=value` pair of an `application/x-www-form-urlencoded` body, in the order received.
public struct FormField: Sendable, Equatable, Hashable {
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// Decoding and encoding of `application/x-www-form-urlencoded` bodies, as browsers and Twilio write them.
///
/// `+` is a space and is turned into one *before* percent-decoding, so `%2B` stays a `+`.
/// Every field is kept, including repeated names and empty values, because all of them count in
/// Twilio's signature.
public enum FormCodec {
    /// Decodes a form body; `nil` when a percent escape is broken or the result is not UTF-8.
    public static func decode(_ body: [UInt8]) -> [FormField]? {
        var fields: [FormField] = []
        var start = 0
        let end = body.count
        while start <= end {
            var stop = start
            while stop < end && body[stop] != UInt8(ascii: "&") { stop += 1 }
            if stop > start {
                let pair = body[start..<stop]
                let name: String
                let value: String
                if let eq = pair.firstIndex(of: UInt8(ascii: "=")) {
                    guard let n = percentDecode(pair[pair.startIndex..<eq]),
                        let v = percentDecode(pair[(eq + 1)..<pair.endIndex])
                    else { return nil }
                    name = n
                    value = v
                } else {
                    guard let n = percentDecode(pair) else { return nil }
                    name = n
                    value = ""
                }
                fields.append(FormField(name, value))
            }
            start = stop + 1
        }
        return fields
    }

    /// Decodes a form body given as a string.
    public static func decode(_ body: String) -> [FormField]? {
        decode(Array(body.utf8))
    }

    /// Encodes fields, escaping everything but RFC 3986 unreserved characters (a space becomes `%20`).
    public static func encode(_ fields: [FormField]) -> String {
        var out = [UInt8]()
        for (i, field) in fields.enumerated() {
            if i > 0 { out.append(UInt8(ascii: "&")) }
            percentEncode(field.name, into: &out)
            out.append(UInt8(ascii: "="))
            percentEncode(field.value, into: &out)
        }
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: - Percent coding

    static func percentDecode(_ bytes: ArraySlice<UInt8>) -> String? {
        if !bytes.contains(where: { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "%") }) {
            return validUTF8(bytes)  // nothing to undo
        }
        var out = [UInt8]()
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let b = bytes[i]
            if b == UInt8(ascii: "+") {
                out.append(UInt8(ascii: " "))
                i += 1
            } else if b == UInt8(ascii: "%") {
                guard i + 2 < bytes.endIndex,
                    let hi = hexValue(bytes[i + 1]), let lo = hexValue(bytes[i + 2])
                else { return nil }
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(b)
                i += 1
            }
        }
        return validUTF8(out[...])
    }

    /// The string `bytes` spell, or `nil` when they are not UTF-8. (`String(validating:)` is generic and was
    /// not specialized here: it looked up type metadata for every field of every webhook.)
    static func validUTF8(_ bytes: ArraySlice<UInt8>) -> String? {
        let string = String(decoding: bytes, as: UTF8.self)
        // Decoding replaces every invalid sequence with U+FFFD, which changes the bytes.
        if bytes.allSatisfy({ $0 < 0x80 }) { return string }
        return string.utf8.elementsEqual(bytes) ? string : nil
    }

    static func percentEncode(_ string: String, into out: inout [UInt8]) {
        let hex = Array("0123456789ABCDEF".utf8)
        for b in string.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
                UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(b)
            default:
                out += [UInt8(ascii: "%"), hex[Int(b >> 4)], hex[Int(b & 0x0f)]]
            }
        }
    }

    private static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): b - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
