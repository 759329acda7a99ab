// SPDX-License-Identifier: Apache-2.0
import Foundation

/// The conversation state as stored in `conversations.state`: the JSON Codable writes (sorted keys, dates as
/// seconds since 1970), byte for byte, written and read by hand. Foundation's coders took about a tenth of each webhook's
/// CPU time; what this reader does not expect (an escape in a string, an older shape) goes to `JSONDecoder`.
enum StoredState {
    static func encode(_ state: ConversationState) -> String {
        var out = "{"
        if let lastActivity = state.lastActivity { out += "\"lastActivity\":" + number(lastActivity) + "," }
        if let loggedInAt = state.loggedInAt { out += "\"loggedInAt\":" + number(loggedInAt) + "," }
        if let expired = state.passcodeMayFollow { out += "\"passcodeQuestionExpired\":" + (expired ? "true," : "false,") }
        out += "\"step\":{"
        switch state.step {
        case .idle: out += "\"idle\":{"
        case .askedFirstName: out += "\"askedFirstName\":{"
        case .askedLastName(let first):
            out += "\"askedLastName\":{\"first\":"
            JSONText.append(first, to: &out)
        case .askedEmail(let first, let last):
            out += "\"askedEmail\":{"
            names(first: first, last: last, to: &out)
        case .askedPasscode(let first, let last, let email):
            out += "\"askedPasscode\":{\"email\":"
            JSONText.append(email, to: &out)
            out += ","
            names(first: first, last: last, to: &out)
        case .askedPasscodeAgain(let first, let last, let email, let pending):
            out += "\"askedPasscodeAgain\":{\"email\":"
            JSONText.append(email, to: &out)
            out += ","
            names(first: first, last: last, to: &out)
            out += "," + self.pending(pending)
        case .askedLoginPasscode: out += "\"askedLoginPasscode\":{"
        case .askedCurrentPasscode: out += "\"askedCurrentPasscode\":{"
        case .askedNewPasscode: out += "\"askedNewPasscode\":{"
        case .askedNewPasscodeAgain(let pending): out += "\"askedNewPasscodeAgain\":{" + self.pending(pending)
        case .confirmingDelete: out += "\"confirmingDelete\":{"
        case .confirmingBroadcast(let text):
            out += "\"confirmingBroadcast\":{\"text\":"
            JSONText.append(text, to: &out)
        }
        return out + "}}}"
    }

    /// The stored state, or `nil` when `text` is not one (the caller starts afresh).
    static func decode(_ text: String) -> ConversationState? {
        var parser = Parser(Array(text.utf8))
        if let value = parser.document(), let state = state(value) { return state }
        guard let state = try? JSONDecoder.store.decode(ConversationState.self, from: Data(text.utf8)) else { return nil }
        // As the parser refuses it: a pending hash that cannot be checked is a damaged state.
        if case .askedPasscodeAgain(_, _, _, let pending) = state.step, !pending.isUsable { return nil }
        if case .askedNewPasscodeAgain(let pending) = state.step, !pending.isUsable { return nil }
        return state
    }

    private static func pending(_ pending: PasscodeHash) -> String {
        "\"pending\":{\"hash\":" + bytes(pending.hash) + ",\"iterations\":" + String(pending.iterations) + ",\"salt\":" + bytes(pending.salt) + "}"
    }

    private static func names(first: String, last: String, to out: inout String) {
        out += "\"first\":"
        JSONText.append(first, to: &out)
        out += ",\"last\":"
        JSONText.append(last, to: &out)
    }

    /// Seconds as `JSONEncoder` writes them: Swift's shortest form, without a trailing `.0`.
    private static func number(_ date: Date) -> String {
        let text = String(date.timeIntervalSince1970)
        return text.hasSuffix(".0") ? String(text.dropLast(2)) : text
    }
    private static func bytes(_ bytes: [UInt8]) -> String { "[" + bytes.map { String($0) }.joined(separator: ",") + "]" }

    private static func state(_ value: JSON) -> ConversationState? {
        guard case .object(let top) = value, case .object(let stepObject)? = top["step"], stepObject.count == 1,
            let (name, fieldsValue) = stepObject.first, case .object(let fields) = fieldsValue
        else { return nil }
        func string(_ key: String) -> String? { if case .string(let s)? = fields[key] { s } else { nil } }
        /// A damaged pending hash (one that cannot be checked) is none: the state starts afresh.
        func pending() -> PasscodeHash? {
            guard case .object(let p)? = fields["pending"], let hash = p["hash"]?.bytes, let salt = p["salt"]?.bytes,
                case .number(let iterations)? = p["iterations"], let count = Int(exactly: iterations)
            else { return nil }
            let pending = PasscodeHash(hash: hash, salt: salt, iterations: count)
            return pending.isUsable ? pending : nil
        }
        func date(_ key: String) -> Date?? {
            switch top[key] {
            case nil, .null?: .some(nil)
            case .number(let n)?: .some(Date(timeIntervalSince1970: n))
            default: nil
            }
        }
        let step: Step
        switch name {
        case "idle": step = .idle
        case "askedFirstName": step = .askedFirstName
        case "askedLastName":
            guard let first = string("first") else { return nil }
            step = .askedLastName(first: first)
        case "askedEmail":
            guard let first = string("first"), let last = string("last") else { return nil }
            step = .askedEmail(first: first, last: last)
        case "askedPasscode":
            guard let first = string("first"), let last = string("last"), let email = string("email") else { return nil }
            step = .askedPasscode(first: first, last: last, email: email)
        case "askedPasscodeAgain":
            guard let first = string("first"), let last = string("last"), let email = string("email"), let pending = pending() else { return nil }
            step = .askedPasscodeAgain(first: first, last: last, email: email, pending: pending)
        case "askedLoginPasscode": step = .askedLoginPasscode
        case "askedCurrentPasscode": step = .askedCurrentPasscode
        case "askedNewPasscode": step = .askedNewPasscode
        case "askedNewPasscodeAgain":
            guard let pending = pending() else { return nil }
            step = .askedNewPasscodeAgain(pending: pending)
        case "confirmingDelete": step = .confirmingDelete
        case "confirmingBroadcast":
            guard let text = string("text") else { return nil }
            step = .confirmingBroadcast(text: text)
        default: return nil
        }
        guard let loggedInAt = date("loggedInAt"), let lastActivity = date("lastActivity") else { return nil }
        let passcodeQuestionExpired: Bool?
        switch top["passcodeQuestionExpired"] {
        case nil, .null?: passcodeQuestionExpired = nil
        case .bool(let flag)?: passcodeQuestionExpired = flag
        default: return nil
        }
        return ConversationState(step: step, loggedInAt: loggedInAt, lastActivity: lastActivity, passcodeMayFollow: passcodeQuestionExpired)
    }

    /// The JSON values a stored state holds.
    private enum JSON {
        case object([String: JSON])
        case array([JSON])
        case string(String)
        case number(Double)
        case bool(Bool)
        case null

        var bytes: [UInt8]? {
            guard case .array(let items) = self else { return nil }
            var out: [UInt8] = []
            for case .number(let n) in items {
                guard let b = UInt8(exactly: n) else { return nil }
                out.append(b)
            }
            return out.count == items.count ? out : nil
        }
    }

    /// A strict reader of the JSON above; `nil` for anything else, including strings with escapes.
    private struct Parser {
        let bytes: [UInt8]
        var i = 0
        /// Objects and arrays open around the current value: a stored state nests four deep, and a damaged one
        /// nested thousands deep would overflow the stack (recursion) and take the server down.
        var depth = 0
        static let maxDepth = 16

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        mutating func document() -> JSON? {
            guard let v = value() else { return nil }
            skipSpace()
            return i == bytes.count ? v : nil
        }

        mutating func value() -> JSON? {
            skipSpace()
            guard i < bytes.count else { return nil }
            switch bytes[i] {
            case UInt8(ascii: "{"):
                guard depth < Self.maxDepth else { return nil }
                depth += 1
                defer { depth -= 1 }
                i += 1
                var members: [String: JSON] = [:]
                skipSpace()
                if take(UInt8(ascii: "}")) { return .object(members) }
                repeat {
                    skipSpace()
                    guard let key = string() else { return nil }
                    skipSpace()
                    guard take(UInt8(ascii: ":")), let v = value() else { return nil }
                    members[key] = v
                    skipSpace()
                } while take(UInt8(ascii: ","))
                return take(UInt8(ascii: "}")) ? .object(members) : nil
            case UInt8(ascii: "["):
                guard depth < Self.maxDepth else { return nil }
                depth += 1
                defer { depth -= 1 }
                i += 1
                var items: [JSON] = []
                skipSpace()
                if take(UInt8(ascii: "]")) { return .array(items) }
                repeat {
                    guard let v = value() else { return nil }
                    items.append(v)
                    skipSpace()
                } while take(UInt8(ascii: ","))
                return take(UInt8(ascii: "]")) ? .array(items) : nil
            case UInt8(ascii: "\""):
                return string().map(JSON.string)
            case UInt8(ascii: "n"):
                guard bytes[i...].starts(with: "null".utf8) else { return nil }
                i += 4
                return .null
            case UInt8(ascii: "t"), UInt8(ascii: "f"):
                let flag = bytes[i] == UInt8(ascii: "t")
                let word = flag ? "true" : "false"
                guard bytes[i...].starts(with: word.utf8) else { return nil }
                i += word.utf8.count
                return .bool(flag)
            default:
                let start = i
                while i < bytes.count, Self.numberBytes.contains(bytes[i]) { i += 1 }
                guard i > start, let n = Double(String(decoding: bytes[start..<i], as: UTF8.self)), n.isFinite else { return nil }
                return .number(n)
            }
        }

        mutating func string() -> String? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            let start = i
            while i < bytes.count {
                switch bytes[i] {
                case UInt8(ascii: "\""):
                    defer { i += 1 }
                    return String(validating: bytes[start..<i], as: UTF8.self)
                case UInt8(ascii: "\\"), 0..<0x20: return nil  // escapes are left to JSONDecoder
                default: i += 1
                }
            }
            return nil
        }

        mutating func take(_ byte: UInt8) -> Bool {
            guard i < bytes.count, bytes[i] == byte else { return false }
            i += 1
            return true
        }

        mutating func skipSpace() {
            while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
        }

        static let numberBytes = Set("0123456789+-.eE".utf8)
    }
}

/// Dates as GRDB stores them ("yyyy-MM-dd HH:mm:ss.SSS", UTC, to the nearest millisecond), formatted without ICU:
/// the webhook binds three dates a step, and `DateFormatter` was a few percent of its CPU time.
enum StoredDate {
    static func text(_ date: Date) -> String {
        let totalMs = Int64((date.timeIntervalSince1970 * 1000 + 0.5).rounded(.down))
        let (days, msOfDay) = floorDivMod(totalMs, 86_400_000)
        let (year, month, day) = civil(days)
        var out = [UInt8]()
        out.reserveCapacity(23)
        func digits(_ value: Int64, _ count: Int) {
            var divisor: Int64 = 1
            for _ in 1..<count { divisor *= 10 }
            while divisor > 0 {
                out.append(UInt8(ascii: "0") + UInt8(value / divisor % 10))
                divisor /= 10
            }
        }
        digits(year, 4)
        out.append(UInt8(ascii: "-"))
        digits(month, 2)
        out.append(UInt8(ascii: "-"))
        digits(day, 2)
        out.append(UInt8(ascii: " "))
        digits(msOfDay / 3_600_000, 2)
        out.append(UInt8(ascii: ":"))
        digits(msOfDay / 60_000 % 60, 2)
        out.append(UInt8(ascii: ":"))
        digits(msOfDay / 1000 % 60, 2)
        out.append(UInt8(ascii: "."))
        digits(msOfDay % 1000, 3)
        return String(decoding: out, as: UTF8.self)
    }

    private static func floorDivMod(_ a: Int64, _ b: Int64) -> (Int64, Int64) {
        let q = a / b
        let r = a % b
        return r < 0 ? (q - 1, r + b) : (q, r)
    }

    /// Year, month, day of a count of days since 1970-01-01 (Howard Hinnant's `civil_from_days`).
    private static func civil(_ daysSinceEpoch: Int64) -> (Int64, Int64, Int64) {
        let z = daysSinceEpoch + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
