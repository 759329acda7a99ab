// SPDX-License-Identifier: Apache-2.0

/// One inbound text as the conversation sees it.
public struct Inbound: Sendable, Equatable {
    /// Trimmed, curly quotes straightened, runs of white space folded to one space.
    public var text: String
    public var numMedia: Int
    /// `STOP`, `START` or `HELP` when Twilio's Advanced Opt-Out matched a keyword.
    public var optOutType: String?

    /// The text as received, only trimmed: message contents (SEND, BROADCAST) keep every character.
    public var raw: String

    public init(text: String, numMedia: Int = 0, optOutType: String? = nil) {
        self.raw = text.trimmingWhitespace()
        self.text = Inbound.normalize(text)
        self.numMedia = numMedia
        self.optOutType = optOutType?.uppercased()
    }

    /// The first word, upper-cased, for matching commands.
    public var command: String {
        String(text.prefix { $0 != " " }).uppercased()
    }

    /// Everything after the first word.
    public var argument: String {
        guard let space = text.firstIndex(of: " ") else { return "" }
        return String(text[text.index(after: space)...])
    }

    /// The whole text upper-cased without trailing `.` or `!`, for matching keywords.
    var keyword: String {
        var s = Substring(text.uppercased())
        while let l = s.last, l == "." || l == "!" { s = s.dropLast() }
        return String(s)
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
    case join = "JOIN", login = "LOGIN", logout = "LOGOUT", messages = "MESSAGES", more = "MORE", profile = "PROFILE"
    case delete = "DELETE", send = "SEND", broadcast = "BROADCAST", users = "USERS", find = "FIND"
    case help = "HELP", reset = "RESET", start = "START"

    static let aliases: [String: Command] = [
        "REGISTER": .join, "SIGNUP": .join, "INBOX": .messages, "ME": .profile, "INFO": .help, "?": .help,
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
}

/// Carrier and Twilio opt-out words (twilio.md §7): a message that is exactly one of them opts out.
/// None of them is ever a bot command.
let optOutWords: Set<String> = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"]

/// Edit distance with adjacent transpositions (optimal string alignment), for "did you mean":
/// `LGOIN` is one edit from `LOGIN`.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
    for i in 0...a.count { d[i][0] = i }
    for j in 0...b.count { d[0][j] = j }
    for i in 1...a.count {
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
            }
        }
    }
    return d[a.count][b.count]
}
