// SPDX-License-Identifier: Apache-2.0

/// Writes TwiML messaging responses the way Twilio's SDKs do: no whitespace before `<?xml`, none added
/// inside `<Message>`, `&`, `<` and `>` escaped, and one `<Message>` per text.
///
/// ```swift
/// TwiML.messagingResponse(["Hello & welcome"])
/// // <?xml version="1.0" encoding="UTF-8"?><Response><Message>Hello &amp; welcome</Message></Response>
/// TwiML.messagingResponse([])   // <?xml version="1.0" encoding="UTF-8"?><Response/>
/// ```
public enum TwiML {
    /// The content type of every TwiML reply.
    public static let contentType = "text/xml"
    /// Twilio refuses a message body longer than this (error 21617); longer texts are split.
    public static let maxMessageLength = 1600
    /// The reply that sends nothing.
    public static let empty = #"<?xml version="1.0" encoding="UTF-8"?><Response/>"#

    /// A `<Response>` with one `<Message>` per text; texts over 1600 characters become several messages,
    /// split at word boundaries. Blank texts are dropped (an empty `<Message/>` is Twilio error 14103).
    public static func messagingResponse(_ texts: [String]) -> String {
        var xml = #"<?xml version="1.0" encoding="UTF-8"?><Response>"#
        var any = false
        for text in texts {
            for part in split(text) {
                let body = escape(part)
                guard !Self.isBlankOnceEscaped(body) else { continue }
                xml += "<Message>"
                xml += body
                xml += "</Message>"
                any = true
            }
        }
        return any ? xml + "</Response>" : empty
    }

    /// Whether `part` has nothing to show: only whitespace, and control characters that `escape` drops (a text of
    /// them alone would be an empty <Message>, Twilio error 14103, or an empty REST body).
    public static func isBlank(_ part: String) -> Bool {
        isBlankOnceEscaped(escape(part))
    }

    private static func isBlankOnceEscaped(_ escaped: String) -> Bool {
        escaped.allSatisfy(\.isWhitespace)
    }

    /// Escapes text for XML character data and drops the control characters XML 1.0 cannot carry.
    public static func escape(_ text: String) -> String {
        // Most texts have nothing to escape or drop (0xEF leads U+FFFE and U+FFFF, so it takes the slow path).
        let plain = text.utf8.allSatisfy { b in
            b >= 0x20 ? b != UInt8(ascii: "&") && b != UInt8(ascii: "<") && b != UInt8(ascii: ">") && b != 0xEF : b == 0x09 || b == 0x0A || b == 0x0D
        }
        if plain { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\t", "\n", "\r": out.unicodeScalars.append(scalar)
            case "\u{0}"..."\u{1F}", "\u{FFFE}", "\u{FFFF}": continue
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// Splits `text` into parts of at most `limit` UTF-16 units (Twilio's way of counting), breaking after
    /// the last whitespace that fits, or between characters when a single word is longer than `limit`.
    public static func split(_ text: String, limit: Int = maxMessageLength) -> [String] {
        precondition(limit > 0)
        if text.utf16.count <= limit { return [text] }
        let chars = Array(text)
        var parts: [String] = []
        var start = 0
        while start < chars.count {
            while start < chars.count && chars[start].isWhitespace { start += 1 }
            guard start < chars.count else { break }
            var end = start
            var units = 0
            var lastSpace: Int? = nil
            while end < chars.count && units + chars[end].utf16.count <= limit {
                if chars[end].isWhitespace { lastSpace = end }
                units += chars[end].utf16.count
                end += 1
            }
            if end == start { end = start + 1 }  // a single character wider than the limit
            // Back up to the last space only when the part would end inside a word.
            if end < chars.count, !chars[end].isWhitespace, let space = lastSpace, space > start { end = space }
            var part = chars[start..<end]
            while let last = part.last, last.isWhitespace { part = part.dropLast() }
            parts.append(String(part))
            start = end
        }
        return parts
    }
}
