// SPDX-License-Identifier: Apache-2.0

extension TwiML {
    /// The texts of the `<Message>` elements of a TwiML document, unescaped: for tests, replay and `chat`.
    public static func messages(in xml: String) -> [String] {
        var out: [String] = []
        var rest = Substring(xml)
        while let open = rest.firstRange(of: "<Message") {
            guard let tagEnd = rest[open.upperBound...].firstIndex(of: ">") else { break }
            if rest[rest.index(before: tagEnd)] == "/" {  // <Message/>
                out.append("")
                rest = rest[rest.index(after: tagEnd)...]
                continue
            }
            let contentStart = rest.index(after: tagEnd)
            guard let close = rest[contentStart...].firstRange(of: "</Message>") else { break }
            out.append(unescape(String(rest[contentStart..<close.lowerBound])))
            rest = rest[close.upperBound...]
        }
        return out
    }

    static func unescape(_ text: String) -> String {
        guard text.contains("&") else { return text }
        return text.replacing("&lt;", with: "<").replacing("&gt;", with: ">").replacing("&quot;", with: "\"")
            .replacing("&apos;", with: "'").replacing("&amp;", with: "&")
    }
}
