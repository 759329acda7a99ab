// SPDX-License-Identifier: Apache-2.0

/// How a person is named in other people's texts and the bot's answers: their phone (E.164, or its digits written
/// with spaces, dashes, dots or brackets), their email or their full name (both in any case), each as a whole word
/// or number: an@example.org is not in ivan@example.org, nor Al Smith in Hal Smithers or Sal-Al Smith, nor
/// +14155550102 in +141555501023.
struct PersonMentions {
    let phone: String
    let email: String
    let name: String

    /// The number's digits as people write it at home: without the 1 of a +1 number, else all of them.
    var nationalDigits: String {
        let digits = phone.filter(\.isNumber)
        return phone.hasPrefix("+1") && digits.count == 11 ? String(digits.dropFirst()) : digits
    }

    func isNamed(in text: String) -> Bool {
        let characters = Array(text)
        let lowered = Array(text.lowercased())
        return Self.containsWord(lowered, Array(name.lowercased()))
            || Self.containsEmail(lowered, Array(email.lowercased()))
            || Set([nationalDigits, phone.filter(\.isNumber)]).contains { Self.containsNumber(characters, Array($0)) }
    }

    /// `word` with no letter or digit against either end, nor a joined name (`Mary-Ann`, `Lee-Smith`; `Lee's` is
    /// still Lee).
    static func containsWord(_ text: [Character], _ word: [Character]) -> Bool {
        func isWord(_ c: Character) -> Bool { c.isLetter || c.isNumber }
        return occurrences(of: word, in: text).contains { start, end in
            let before = start == 0 || !isWord(text[start - 1]) && !(start >= 2 && "-'.".contains(text[start - 1]) && isWord(text[start - 2]))
            let after = end == text.count || !isWord(text[end]) && !(end + 1 < text.count && text[end] == "-" && isWord(text[end + 1]))
            return before && after
        }
    }

    /// `email` with nothing before it that could belong to an address, and no more of a domain after it.
    static func containsEmail(_ text: [Character], _ email: [Character]) -> Bool {
        func partOfAddress(_ c: Character) -> Bool { c.isLetter || c.isNumber || "._%+-".contains(c) }
        return occurrences(of: email, in: text).contains { start, end in
            guard start == 0 || !partOfAddress(text[start - 1]) else { return false }
            guard end < text.count else { return true }
            let next = text[end]
            if next.isLetter || next.isNumber || next == "_" { return false }
            // "kate@example.org." ends a sentence; "kate@example.org.uk" is another address.
            return !(next == "." || next == "-") || end + 1 == text.count || !(text[end + 1].isLetter || text[end + 1].isNumber)
        }
    }

    /// `digits` in order, with spaces, dashes, dots or brackets allowed between them, and no digit against either end.
    static func containsNumber(_ text: [Character], _ digits: [Character]) -> Bool {
        guard let first = digits.first else { return false }
        for start in text.indices where text[start] == first && (start == 0 || !text[start - 1].isNumber) {
            var i = start
            var matched = 0
            while matched < digits.count && i < text.count {
                if text[i] == digits[matched] {
                    matched += 1
                } else if matched == 0 || !" -.()".contains(text[i]) {
                    break
                }
                i += 1
            }
            if matched == digits.count && (i == text.count || !text[i].isNumber) { return true }
        }
        return false
    }

    /// The start and end of every occurrence of `needle` in `text`.
    private static func occurrences(of needle: [Character], in text: [Character]) -> [(Int, Int)] {
        guard !needle.isEmpty, needle.count <= text.count else { return [] }
        return (0...(text.count - needle.count)).filter { text[$0..<($0 + needle.count)].elementsEqual(needle) }.map { ($0, $0 + needle.count) }
    }
}
