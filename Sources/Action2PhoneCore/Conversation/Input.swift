// SPDX-License-Identifier: Apache-2.0
import Foundation

/// One inbound text as the conversation sees it. What routing reads is worked out once, here: a text is routed
/// twice (for its passcode work, then for its step).
public struct Inbound: Sendable, Equatable {
    /// Trimmed, curly quotes straightened, runs of white space folded to one space. Not `composed`: a passcode is
    /// hashed from these bytes, as it always was (one set from a phone that sends an é as e and an accent still
    /// matches); what is stored or matched from it (a name, an email, SEND's and FIND's keys) is composed there.
    public let text: String
    public let numMedia: Int
    /// `STOP`, `START` or `HELP` when Twilio's Advanced Opt-Out matched a keyword.
    public let optOutType: String?

    /// The text as received, only trimmed and `composed`: message contents (SEND, BROADCAST) keep every character
    /// (in its canonical form).
    public let raw: String

    /// The first word, upper-cased, for matching commands, as `keyword` reads a word: `"profile"` is PROFILE, and
    /// `YES,` in `yes, send it` is YES. A command's word with a question mark after it is that command (`Help?`,
    /// `Messages?`; not `Yes?`, a question, not a confirmation), and "Log in", "Log out" and "Sign up", as phones
    /// autocorrect LOGIN, LOGOUT and SIGNUP, are one word.
    public let command: String
    /// How many words of `text` `command` took (1, or 2 for "Log in").
    let commandWords: Int
    /// Whether `command` was read loosely (a question mark dropped, or two words joined): where an existing passcode
    /// is asked for, such a text is an answer, as it was before these forms were read (a passcode chosen then may
    /// be one, such as "log in 1917").
    let commandIsLoose: Bool

    public init(text: String, numMedia: Int = 0, optOutType: String? = nil) {
        // A NUL would cut the text short where SQLite binds it; it carries nothing a person typed.
        let text = text.utf8.contains(0) ? text.replacing("\u{0}", with: "") : text
        self.raw = Inbound.composed(text.trimmingWhitespace())
        self.text = Inbound.normalize(text)
        self.numMedia = numMedia
        self.optOutType = optOutType?.uppercased()
        (self.command, self.commandWords, self.commandIsLoose) = Inbound.firstWord(self.text)
        self.keyword = Inbound.bare(self.text.uppercased())
        self.readsAsOptOutWord = optOutWords.contains(keyword) || Inbound.optOutKeyword(self.text).map(optOutWords.contains) == true
    }

    /// Everything after the command's word (or words).
    public var argument: String {
        var rest = Substring(text)
        for _ in 0..<commandWords {
            guard let space = rest.firstIndex(of: " ") else { return "" }
            rest = rest[rest.index(after: space)...]
        }
        return String(rest)
    }

    /// `command`, how many words it took, and whether it was read loosely.
    static func firstWord(_ text: String) -> (command: String, words: Int, loose: Bool) {
        let first = bare(String(text.prefix { $0 != " " }).uppercased())
        var asked = first
        while asked.count > 1, asked.hasSuffix("?") { asked.removeLast() }
        if asked != first, case let word = bare(asked), Command(word: word) != nil { return (word, 1, true) }
        guard first == "LOG" || first == "SIGN" else { return (first, 1, false) }
        let second = bare(String(text.drop { $0 != " " }.dropFirst().prefix { $0 != " " }).uppercased())
        let joined = first + second
        return joined == "LOGIN" || joined == "LOGOUT" || joined == "SIGNUP" ? (joined, 2, true) : (first, 1, false)
    }

    /// The whole text upper-cased, for matching keywords: without punctuation or quotes around it (`STOP.`,
    /// `"stop"`, `stop:`) or invisible characters a keyboard or a copy left in it. A lone `?` stays (HELP).
    let keyword: String

    /// Whether the text is an opt-out word as `keyword` reads it, or as `optOutKeyword` does.
    let readsAsOptOutWord: Bool

    /// `text` as opt-out words are matched, more leniently than `keyword`: a text that reads as STOP to a person
    /// (`STOP?`, `(STOP)`, `STOP…`, full-width letters) is honoured as one, stopping being the safe side. Only short
    /// texts can be one.
    static func optOutKeyword(_ text: String) -> String? {
        guard text.utf8.count <= 40 else { return nil }
        return Inbound.bare(compatibilityFolded(text).uppercased(), lenient: true)
    }

    /// `text` with full-width and other compatibility forms read as the letters they are (`ＳＴＯＰ` is STOP); ASCII
    /// as it is, at no cost.
    static func compatibilityFolded(_ text: String) -> String {
        text.utf8.allSatisfy { $0 < 0x80 } ? text : text.precomposedStringWithCompatibilityMapping
    }

    /// `word` without the punctuation and quotes around it, or the invisible characters in it; `lenient` also
    /// drops brackets, question marks, dashes and the like around it. A word that is all punctuation (`?`) stays.
    static func bare(_ word: String, lenient: Bool = false) -> String {
        // By Unicode scalars (every mark is one): no grapheme breaking on the hot path, and ASCII skips the scan.
        let scalars = word.unicodeScalars
        var start = scalars.startIndex
        var end = scalars.endIndex
        while start < end, isAround(scalars[scalars.index(before: end)], lenient: lenient) { end = scalars.index(before: end) }
        while start < end, isAround(scalars[start], lenient: lenient) { start = scalars.index(after: start) }
        guard start < end else { return word }
        var inner = String(scalars[start..<end])
        if !inner.utf8.allSatisfy({ $0 < 0x80 }) { inner.unicodeScalars.removeAll(where: isInvisible) }
        return inner
    }

    /// Punctuation and quotes that may stand around a word; `lenient` adds brackets, question marks, dashes and the like.
    static func isAround(_ u: Unicode.Scalar, lenient: Bool) -> Bool {
        switch u {
        case ".", "!", ",", ";", ":", "\"", "'", "\u{3002}": true
        case "?", "\u{2026}", "(", ")", "[", "]", "{", "}", "<", ">", "\u{00AB}", "\u{00BB}", "`", "*", "#", "-", "~", "_", "\u{00A1}", "\u{00BF}":
            lenient
        default: isInvisible(u)
        }
    }

    /// Zero-width spaces and joiners, the word joiner, the byte-order mark, the soft hyphen and direction marks.
    static func isInvisible(_ u: Unicode.Scalar) -> Bool {
        switch u {
        case "\u{200B}", "\u{200C}", "\u{200D}", "\u{2060}", "\u{FEFF}", "\u{00AD}", "\u{200E}", "\u{200F}", "\u{061C}": true
        default: false
        }
    }

    /// Whether a text would be read as a command or keyword for its first word (`LOGIN x`, `help me 123`): such a
    /// text cannot be a passcode, or sending it alone could never log in and would be stored as a command.
    var startsWithCommandWord: Bool {
        Command(word: command) != nil || optOutWords.contains(command) || command == "YES"
    }

    /// Whether the text begins with an opt-out word and goes on ("stop texting me"): neither an opt-out (Twilio honours the
    /// word alone) nor a new passcode (JOIN and PASSCODE refuse one starting with a command word), a name or an email.
    /// (A passcode chosen before that rule may be one: at the login and current-passcode questions it is checked.)
    var startsWithOptOutWord: Bool { optOutWords.contains(command) }

    /// Whether a word of the text is passcode or password ("reset my passcode", "forgot my password").
    var mentionsPasscode: Bool {
        text.uppercased().split { !$0.isLetter }.contains { ["PASSCODE", "PASSCODES", "PASSWORD", "PASSWORDS"].contains($0) }
    }

    /// Whether a short text asks to opt out in words Twilio does not honour ("please stop texting me", "opt out"): it
    /// is told to send STOP alone. Only words unlikely in other sentences count (END, CANCEL and QUIT do not).
    var mentionsOptingOut: Bool {
        guard text.utf8.count <= 60 else { return false }
        let words = text.uppercased().split { !$0.isLetter && $0 != "-" }
        if words.contains(where: { ["STOP", "STOPALL", "UNSUBSCRIBE", "OPTOUT", "OPT-OUT", "REVOKE"].contains($0) }) { return true }
        return zip(words, words.dropFirst()).contains { $0 == "OPT" && $1 == "OUT" }
    }

    /// The raw text after its first `count` words, white space after them dropped.
    func rawRemainder(afterWords count: Int) -> String {
        var rest = Substring(raw)
        for _ in 0..<count {
            rest = rest.drop { !$0.isWhitespace }
            rest = rest.drop { $0.isWhitespace }
        }
        return String(rest)
    }

    /// `text` in Unicode's composed form (NFC): an é typed as e and an accent becomes the é, which is GSM-7 (a
    /// broadcast with it costs one segment, not two) and matches the é of a stored name or email. It looks the same.
    public static func composed(_ text: String) -> String {
        text.utf8.allSatisfy { $0 < 0x80 } ? text : text.precomposedStringWithCanonicalMapping
    }

    /// Straightens curly quotes and folds white space, as phones' keyboards vary.
    static func normalize(_ raw: String) -> String {
        isNormalASCII(raw) ? raw : folded(raw)
    }

    /// `normalize`, character by character.
    static func folded(_ raw: String) -> String {
        var out = ""
        var pendingSpace = false
        for ch in raw {
            let c: Character =
                switch ch {
                case "\u{2018}", "\u{2019}", "\u{201A}", "\u{201B}", "\u{2032}": "'"
                case "\u{201C}", "\u{201D}", "\u{201E}", "\u{201F}", "\u{2033}": "\""
                default: ch
                }
            if c.isWhitespace {
                pendingSpace = !out.isEmpty
                continue
            }
            if pendingSpace {
                out.append(" ")
                pendingSpace = false
            }
            out.append(c)
        }
        return out
    }
}

extension Inbound {
    /// Printable ASCII with single spaces between words: what `normalize` returns unchanged. (Of ASCII,
    /// only the space is printable white space, and curly quotes are not ASCII.)
    static func isNormalASCII(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { bytes in
            guard let first = bytes.first, let last = bytes.last, first != 0x20, last != 0x20 else { return bytes.isEmpty }
            var previous: UInt8 = 0
            for b in bytes {
                guard b >= 0x20, b < 0x7F, !(b == 0x20 && previous == 0x20) else { return false }
                previous = b
            }
            return true
        }
    }
}

/// The words the bot understands, with their aliases.
enum Command: String, CaseIterable, Sendable {
    case join = "JOIN"
    case login = "LOGIN"
    case logout = "LOGOUT"
    case messages = "MESSAGES"
    case more = "MORE"
    case profile = "PROFILE"
    case delete = "DELETE"
    case passcode = "PASSCODE"
    case send = "SEND"
    case broadcast = "BROADCAST"
    case users = "USERS"
    case find = "FIND"
    case help = "HELP"
    case reset = "RESET"
    case start = "START"

    static let aliases: [String: Command] = [
        "REGISTER": .join, "SIGNUP": .join, "INBOX": .messages, "ME": .profile, "PASSWORD": .passcode, "INFO": .help, "?": .help,
        "MENU": .reset, "UNSTOP": .start,
        // Greetings get the help text rather than "unknown command".
        "HI": .help, "HELLO": .help, "HEY": .help, "PRIVET": .help,
    ]

    init?(word: String) {
        if let c = Command(rawValue: word) {
            self = c
        } else if let c = Command.aliases[word] {
            self = c
        } else {
            return nil
        }
    }

    var isAdminOnly: Bool { [.send, .broadcast, .users, .find].contains(self) }

    /// What "did you mean" may suggest, nearest first and ties in this order: the commands as declared, then
    /// STOP (a typo of it must never be pointed at UNSTOP), then the aliases longer than two letters, alphabetically.
    static let suggestable: [(word: String, letters: [Character], isAdminOnly: Bool)] =
        allCases.map { (word: $0.rawValue, letters: Array($0.rawValue), isAdminOnly: $0.isAdminOnly) }
        + [(word: "STOP", letters: Array("STOP"), isAdminOnly: false)]
        + aliases.filter { $0.key.count > 2 }.sorted { $0.key < $1.key }.map {
            (word: $0.key, letters: Array($0.key), isAdminOnly: $0.value.isAdminOnly)
        }
}

/// Carrier and Twilio opt-out words (twilio.md §7): a message that is exactly one of them opts out.
/// None of them is ever a bot command.
let optOutWords: Set<String> = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"]

/// Edit distance with adjacent transpositions (optimal string alignment), for "did you mean":
/// `LGOIN` is one edit from `LOGIN`.
func editDistance(_ a: String, _ b: String) -> Int {
    editDistance(Array(a), Array(b))
}

func editDistance(_ a: [Character], _ b: [Character]) -> Int {
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    // Three rows of the table: the one before the previous (for transpositions), the previous, the current.
    let width = b.count + 1
    var older = [Int](repeating: 0, count: width)
    var previous = Array(0..<width)
    var current = [Int](repeating: 0, count: width)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                current[j] = min(current[j], older[j - 2] + 1)
            }
        }
        swap(&older, &previous)
        swap(&previous, &current)
    }
    return previous[b.count]
}
