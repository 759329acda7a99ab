// SPDX-License-Identifier: Apache-2.0
import Action2PhoneCore
import Foundation
import TwilioKit

/// Table, CSV and JSON output.
enum Output {
    static func json(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// Left-aligned columns separated by two spaces; what people typed is shown `visible`.
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        let rows = rows.map { $0.map { visible($0) } }
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in i == cells.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }

    /// RFC 4180 CSV. What people typed is shown `visible` (line breaks and tabs stay, quoted), and a text a spreadsheet
    /// would run as a formula (`=HYPERLINK(…)`, `@SUM(…)`, `+1 CMD…`) gets a leading `'`, as OWASP advises; a number or
    /// a phone number (`+14155550100`, `-5`) is left as it is.
    static func csv(_ header: [String], _ rows: [[String]]) -> String {
        func field(_ s: String) -> String {
            var s = visible(s, keepingLayout: true)
            if let first = s.unicodeScalars.first,
                "=@\t\r".unicodeScalars.contains(first)
                    || ("+-".unicodeScalars.contains(first) && !s.unicodeScalars.allSatisfy({ "0123456789+-. ".unicodeScalars.contains($0) }))
            {
                s = "'" + s
            }
            // (Scalars: "\r\n" is one Character, equal to neither "\r" nor "\n".)
            return s.unicodeScalars.contains(where: { ",\"\n\r".unicodeScalars.contains($0) }) ? "\"" + s.replacing("\"", with: "\"\"") + "\"" : s
        }
        return ([header] + rows).map { $0.map(field).joined(separator: ",") }.joined(separator: "\n")
    }

    /// `text` safe for a terminal: control characters (an escape sequence could clear the screen, hide text or retitle
    /// the window) and the invisible direction overrides shown in caret notation (`^[`) or as `<U+202E>`;
    /// `keepingLayout` keeps line breaks and tabs.
    static func visible(_ text: String, keepingLayout: Bool = false) -> String {
        func isHidden(_ u: Unicode.Scalar) -> Bool {
            if keepingLayout && (u == "\n" || u == "\r" || u == "\t") { return false }
            return u.properties.generalCategory == .control || (0x202A...0x202E).contains(u.value) || (0x2066...0x2069).contains(u.value)
        }
        guard text.unicodeScalars.contains(where: isHidden) else { return text }
        var out = String.UnicodeScalarView()
        for u in text.unicodeScalars {
            guard isHidden(u) else {
                out.append(u)
                continue
            }
            let shown =
                u.value < 0x20
                ? "^" + String(Unicode.Scalar(u.value + 0x40)!) : u.value == 0x7F ? "^?" : "<U+\(String(u.value, radix: 16, uppercase: true))>"
            out.append(contentsOf: shown.unicodeScalars)
        }
        return String(out)
    }

    static func date(_ d: Date?) -> String {
        guard let d else { return "-" }
        return ISO8601DateFormatter().string(from: d)
    }

    static func oneLine(_ s: String, max: Int = 50) -> String {
        let flat = s.replacing("\n", with: " ")
        return flat.count > max ? String(flat.prefix(max - 3)) + "..." : flat
    }

    // MARK: - Users

    static let userColumns = [
        "id", "phone", "firstName", "lastName", "email", "role", "optedOut", "suppressed", "createdAt", "lastSeenAt", "unread", "locked",
    ]

    /// A user as a table row; for CSV (`csv`), as the JSON has it: a missing value is empty, and `locked` is true or false.
    static func userRow(_ u: UserRecord, csv: Bool = false) -> [String] {
        [
            String(u.id), u.phone, u.firstName, u.lastName, u.email, u.role.rawValue, String(u.optedOut), String(u.suppressed), date(u.createdAt),
            csv ? u.lastSeenAt.map { date($0) } ?? "" : date(u.lastSeenAt), String(u.unread),
            csv ? String(u.locked) : u.locked ? "until \(date(u.lockedUntil))" : "false",
        ]
    }

    static func userDetail(_ u: UserRecord) -> String {
        let rows: [(String, String)] = [
            ("id", String(u.id)), ("name", "\(u.firstName) \(u.lastName)"), ("phone", u.phone), ("email", u.email), ("role", u.role.rawValue),
            ("member since", date(u.createdAt)), ("last activity", date(u.lastSeenAt)), ("unread", String(u.unread)),
            ("opted out", u.optedOut ? "yes" : "no"),
            (
                "suppressed",
                u.suppressed ? "yes (no broadcasts or direct messages, only replies to its own texts, until: action2phone users unsuppress)" : "no"
            ),
            ("locked", u.locked ? "until \(date(u.lockedUntil))" : "no"),
        ]
        let width = rows.map(\.0.count).max() ?? 0
        return rows.map { $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + visible($0.1) }.joined(separator: "\n")
    }

    // MARK: - Outbox

    static let outboxColumns = ["id", "to", "status", "attempts", "twilioSid", "errorCode", "errorMessage", "createdAt", "updatedAt", "body"]

    /// An outbox row as a table row; `full` (CSV): whole texts, and a missing value is empty.
    static func outboxRow(_ m: OutboxMessage, full: Bool = false) -> [String] {
        let none = full ? "" : "-"
        return [
            String(m.id), m.to, m.status.rawValue, String(m.attempts), m.twilioSid ?? none, m.errorCode.map(String.init) ?? none,
            // (In the table, a code from a status callback, which carries no message, says what it means.)
            full ? (m.errorMessage ?? "") : oneLine(m.errorMessage ?? m.errorCode.flatMap(TwilioErrorCodes.meaning) ?? "-", max: 40),
            date(m.createdAt), date(m.updatedAt),
            full ? m.body : oneLine(m.body),
        ]
    }
}

/// An outbox row as SPEC §6's JSON.
struct OutboxJSON: Encodable {
    let m: OutboxMessage
    enum CodingKeys: String, CodingKey { case id, to, body, status, attempts, twilioSid, errorCode, errorMessage, createdAt, updatedAt }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(m.id, forKey: .id)
        try c.encode(m.to, forKey: .to)
        try c.encode(m.body, forKey: .body)
        try c.encode(m.status.rawValue, forKey: .status)
        try c.encode(m.attempts, forKey: .attempts)
        try c.encode(m.twilioSid, forKey: .twilioSid)
        try c.encode(m.errorCode, forKey: .errorCode)
        try c.encode(m.errorMessage, forKey: .errorMessage)
        try c.encode(m.createdAt, forKey: .createdAt)
        try c.encode(m.updatedAt, forKey: .updatedAt)
    }
}
