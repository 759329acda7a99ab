// SPDX-License-Identifier: Apache-2.0

/// E.164 phone numbers: `+` then 8 to 15 digits. A North American one (`+1`) has exactly ten digits after the 1, the
/// first of them (the area code's) 2 to 9: `+1415555010`, a digit short, is no number anyone has.
public enum PhoneNumber {
    /// Normalises `703-123-4567`, `(703) 123 4567`, `1 703 123 4567`, `+44 7911 123456` or `0044…` to E.164;
    /// `nil` when the text is not a phone number. Ten digits take the default country (+1). The national trunk
    /// prefix some write in an international number (`+44 (0) 7911 123456`) is dropped.
    public static func normalize(_ raw: String, defaultCountryCode: String = "1") -> String? {
        var text = Substring(raw.trimmingWhitespace())
        var international = false
        if text.hasPrefix("+") {
            international = true
            text = text.dropFirst()
        } else if text.hasPrefix("00") {
            international = true
            text = text.dropFirst(2)
        }
        if international, let trunk = text.firstRange(of: "(0)") { text.removeSubrange(trunk) }
        var digits = ""
        for ch in text {
            if ch.isASCII && ch.isNumber {
                digits.append(ch)
            } else if ch == " " || ch == "-" || ch == "." || ch == "(" || ch == ")" {
                continue
            } else {
                return nil
            }
        }
        if international {
            guard (8...15).contains(digits.count), digits.first != "0", isNorthAmerican(digits.utf8) != false else { return nil }
            return "+" + digits
        }
        if defaultCountryCode == "1" {
            if digits.count == 10, isNorthAmerican(("1" + digits).utf8) == true { return "+1" + digits }
            if digits.count == 11, isNorthAmerican(digits.utf8) == true { return "+" + digits }
            return nil
        }
        guard (6...14).contains(digits.count) else { return nil }
        let national = digits.hasPrefix("0") ? String(digits.dropFirst()) : digits
        return "+" + defaultCountryCode + national
    }

    /// The sender of a webhook in E.164 when it is a phone number, otherwise exactly as Twilio sent it
    /// (a short code, an alphanumeric id, `whatsapp:+1…`).
    public static func canonicalSender(_ raw: String) -> String {
        if isE164(raw) { return raw }  // as Twilio sends phone numbers
        return raw.hasPrefix("+") ? (normalize(raw) ?? raw) : raw
    }

    /// Whether `text` is already E.164: `+`, then 8 to 15 ASCII digits, the first not `0`.
    static func isE164(_ text: String) -> Bool {
        let bytes = text.utf8
        guard (9...16).contains(bytes.count), bytes.first == UInt8(ascii: "+") else { return false }
        let digits = bytes.dropFirst()
        return digits.first != UInt8(ascii: "0") && digits.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
            && isNorthAmerican(digits) != false
    }

    /// For E.164 digits (no `+`) starting with 1: whether they are a North American number, eleven digits with an area
    /// code starting 2 to 9. `nil` for other countries' numbers.
    static func isNorthAmerican<Digits: Collection<UInt8>>(_ digits: Digits) -> Bool? {
        guard digits.first == UInt8(ascii: "1") else { return nil }
        guard digits.count == 11 else { return false }
        let area = digits[digits.index(after: digits.startIndex)]
        return area >= UInt8(ascii: "2") && area <= UInt8(ascii: "9")
    }
}

extension StringProtocol {
    /// The text without leading and trailing white space.
    public func trimmingWhitespace() -> String {
        // Printable ASCII at both ends: nothing to trim.
        let whole = String(self)
        if let first = whole.utf8.first, let last = whole.utf8.last, (0x21..<0x7F).contains(first), (0x21..<0x7F).contains(last) {
            return whole
        }
        var s = self[...]
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}
