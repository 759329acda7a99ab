// SPDX-License-Identifier: Apache-2.0
import Foundation
import TwilioKit

/// Commands sent with no question pending.
extension ConversationEngine {
    func run(_ command: Command, _ state: inout ConversationState, _ step: inout StepContext) throws {
        let account = step.account
        if command.isAdminOnly && account?.role != .admin {
            // `route` never gives anyone else an admin command (it is an unknown word to them); kept as a guard.
            return step.reply(unknownCommand(step.input.command, account: account))
        }
        switch command {
        case .join:
            if let account {
                return step.reply(
                    state.isLoggedIn
                        ? "You are already registered and logged in, \(Copy.endingSentence(Copy.comrade(account.firstName))) Reply HELP for commands."
                        // (Locked, it says until when: "Reply LOGIN after 09:15 UTC.")
                        : "You are already registered, \(Copy.endingSentence(Copy.comrade(account.firstName))) "
                            + nextStep(state, account, now: step.now)
                )
            }
            state.step = .askedFirstName
            step.reply(Copy.askFirstName)
        case .login:
            guard let account else {
                state.step = .idle
                // Someone who deleted their account may still text the passcode next, by habit.
                state.passcodeMayFollow = true
                return step.reply("No comrade is registered with this number. Reply JOIN to register.")
            }
            if state.isLoggedIn {
                return step.reply("You are already logged in, \(Copy.endingSentence(Copy.comrade(account.firstName))) Reply MESSAGES or HELP.")
            }
            if isLocked(account, now: step.now) {
                state.step = .idle
                return step.reply(Copy.locked(until: account.lockedUntil!, in: settings.localTime))
            }
            if step.input.argument.isEmpty {
                state.step = .askedLoginPasscode
                return step.reply(Copy.askLoginPasscode)
            }
            login(account, passcode: step.input.argument, &state, &step)
        case .logout:
            guard state.isLoggedIn else {
                guard let account = step.account else { return step.reply(Copy.needAccount) }
                if isLocked(account, now: step.now) {
                    return step.reply("You are not logged in. " + Copy.locked(until: account.lockedUntil!, in: settings.localTime))
                }
                return step.reply("You are not logged in, comrade. Reply LOGIN to log in.")
            }
            state.loggedInAt = nil
            step.reply("You are logged out. Da svidaniya, comrade! Reply LOGIN to return.")
        case .messages, .more:
            guard let account = requireLogin(state, &step) else { return }
            try showInbox(account, &step)
        case .profile:
            guard let account = requireLogin(state, &step) else { return }
            let unread = try step.facts.unreadCount(userId: account.id)
            step.reply(
                "Comrade \(account.fullName)\(account.role == .admin ? " (admin)" : "")\nEmail: \(account.email)\nPhone: \(account.phone)\n"
                    + "Member since \(settings.localTime.day(account.createdAt))\nUnread: \(unread). Reply MESSAGES to read, HELP for commands."
            )
        case .passcode:
            // The current passcode first: a phone left logged in is not enough to take the account.
            guard requireLogin(state, &step) != nil else { return }
            state.step = .askedCurrentPasscode
            step.reply(Copy.askCurrentPasscode)
        case .delete:
            guard requireLogin(state, &step) != nil else { return }
            state.step = .confirmingDelete
            step.reply(Copy.confirmDelete)
        case .send:
            guard let account = requireLogin(state, &step) else { return }
            try send(from: account, &step)
        case .broadcast:
            guard requireLogin(state, &step) != nil else { return }
            try prepareBroadcast(&state, &step)
        case .users:
            guard requireLogin(state, &step) != nil else { return }
            let c = try step.facts.userCounts(activeSince: step.now.addingTimeInterval(-settings.sessionTTL))
            step.reply(
                "Comrades: \(c.registered) registered, \(c.optedOut) opted out, \(Copy.plural(c.admins, "admin")), \(c.loggedIn) logged in now. Reply HELP for commands."
            )
        case .find:
            guard requireLogin(state, &step) != nil else { return }
            try find(&step)
        case .help, .reset, .start:
            return  // routed before commands
        }
    }

    /// The account when logged in; otherwise replies how to get there.
    func requireLogin(_ state: ConversationState, _ step: inout StepContext) -> Account? {
        guard let account = step.account else {
            step.reply(Copy.needAccount)
            return nil
        }
        guard state.isLoggedIn else {
            // Locked, "reply LOGIN" would only be refused: say until when.
            step.reply(isLocked(account, now: step.now) ? Copy.locked(until: account.lockedUntil!, in: settings.localTime) : Copy.needLogin)
            return nil
        }
        return account
    }

    /// Unread messages, oldest first, as many as fit one reply (always at least one); they become read. Lengths are
    /// in UTF-16 units, as Twilio counts them. A page over one text's 1600 is split into several (SPEC §3); the ending
    /// goes in the last of them when it fits there, else in a text of its own.
    func showInbox(_ account: Account, _ step: inout StepContext) throws {
        let total = try step.facts.unreadCount(userId: account.id)
        guard total > 0 else { return step.reply("No unread messages, comrade. The Party will write soon. Reply HELP for commands.") }
        let candidates = try step.facts.unreadMessages(userId: account.id, limit: 50)
        var lines: [String] = []
        var used = 0
        var shown: [Int64] = []
        for (i, item) in candidates.enumerated() {
            let from = item.senderName ?? "The Bureau"
            let line = "\(i + 1)) \(from)\(item.kind == "broadcast" ? " to all" : ""), \(settings.localTime.shortDay(item.createdAt)): \(item.body)"
            // Room is kept for the ending: "12 more: reply MORE." or "That is all. Reply HELP for commands."
            if !lines.isEmpty && used + line.utf16.count + 1 + Self.longestInboxEnding > settings.inboxPageCharacters { break }
            lines.append(line)
            used += line.utf16.count + 1
            shown.append(item.id)
        }
        let remaining = total - shown.count
        let ending = remaining > 0 ? "\(remaining) more: reply MORE." : "That is all. Reply HELP for commands."
        step.effects.append(.markRead(shown))
        let page = lines.joined(separator: "\n")
        let lastText = TwiML.split(page).last ?? page
        if lastText.utf16.count + 1 + ending.utf16.count <= TwiML.maxMessageLength {
            step.reply(page + "\n" + ending)
        } else {
            step.reply(page)
            step.reply(ending)
        }
    }

    /// The longest line that ends a `MESSAGES` reply.
    static let longestInboxEnding = 40

    // MARK: - Admin

    func send(from sender: Account, _ step: inout StepContext) throws {
        let usage = "Usage: SEND <phone or email> <text>, comrade."
        // (A comma or colon after the address is punctuation: "SEND ivan@example.org, the meeting moved",
        // "SEND (415) 555-0102: the meeting moved".)
        let words = step.input.argument.split(separator: " ", maxSplits: 4).map {
            Substring($0.trimmingCharacters(in: CharacterSet(charactersIn: ",;:")))
        }
        let spaced = Self.spacedPhone(words)
        // (An email may come in brackets or quotes, "<ivan@example.org>", as a mail program writes it.)
        let first = words.first.map(String.init) ?? ""
        let target = spaced?.phone ?? first.trimmingCharacters(in: CharacterSet(charactersIn: first.contains("@") ? "<>()[]{}.\"'" : "."))
        let body = step.input.rawRemainder(afterWords: 1 + (spaced?.words ?? 1))
        guard !target.isEmpty, !body.isEmpty else { return step.reply(usage) }
        guard body.utf16.count <= TwiML.maxMessageLength else {
            return step.reply("A message is at most 1600 characters, comrade; yours has \(body.utf16.count). Send a shorter SEND.")
        }
        let key: String
        if target.contains("@") {
            key = target.lowercased()
        } else if let phone = PhoneNumber.normalize(target) {
            key = phone
        } else {
            let digits = target.filter(\.isNumber)
            let hint =
                target.hasPrefix("+1") && target.count > 3 && digits.count == target.count - 1
                ? " (a +1 number has 10 digits after the 1)" : target.hasPrefix("+") ? " (write an international number without spaces)" : ""
            return step.reply("\(target.prefix(30)) is neither a phone number nor an email\(hint). " + usage)
        }
        guard let recipient = try step.facts.account(phoneOrEmail: key) else {
            return step.reply("No comrade with \(key.prefix(40)). Reply FIND <text> to search.")
        }
        step.effects.append(.sendDirect(recipientId: recipient.id, senderId: sender.id, body: body))
        let consent = try step.facts.consent(of: recipient.phone)
        let texted =
            consent.optedOut
            ? "not texted: they opted out."
            : consent.suppressed
                ? "not texted: their number cannot receive texts." : "queued to be texted to \(recipient.phone)." + Self.cost(of: body)
        step.reply("Stored in comrade \(recipient.fullName)'s inbox and \(texted) Reply HELP for commands.")
    }

    /// What a direct message costs, when more than one GSM-7 segment, as BROADCAST's preview says it (SEND has no
    /// preview: the admin learns it for next time): " UCS-2 forced by U+2019 (curly quote), 2 SMS segments."
    static func cost(of body: String) -> String {
        let count = Segments.count(body)
        if !count.nonGSMCharacters.isEmpty {
            return " UCS-2 forced by \(Copy.describe(count.nonGSMCharacters)), \(Copy.plural(count.segments, "SMS segment"))."
        }
        return count.segments > 1 ? " \(Copy.plural(count.segments, "SMS segment"))." : ""
    }

    /// A US phone number written in several words at the start of `words`, in one of the usual groupings
    /// (`415 555 0102`, `(415) 555-0102`, `1 415 555 0102`, `1 (415) 555-0102`); `nil` when the first word is a number
    /// alone, or no grouping matches. Only these: a looser rule would join a mistyped number to a message that starts
    /// with a number (`415555010 5 comrades`) into someone else's. International numbers (`+…`) must be one word.
    static func spacedPhone(_ words: [Substring]) -> (phone: String, words: Int)? {
        guard words.count >= 2, let first = words.first, PhoneNumber.normalize(String(first)) == nil else { return nil }
        let phoneCharacters = Set("0123456789()-.")
        // A word's digits, when it is made of phone characters only; a group of seven must be written 555-0102.
        func matches(_ word: Substring, _ digits: Int) -> Bool {
            word.allSatisfy(phoneCharacters.contains) && word.filter(\.isNumber).count == digits
                && (digits != 7 || word.contains("-") || word.contains("."))
        }
        for grouping in [[3, 3, 4], [3, 7], [1, 3, 3, 4], [1, 3, 7]] where grouping.count <= words.count {
            let taken = words.prefix(grouping.count)
            guard zip(taken, grouping).allSatisfy(matches) else { continue }
            if let phone = PhoneNumber.normalize(taken.joined(separator: " ")) { return (phone, grouping.count) }
        }
        return nil
    }

    func prepareBroadcast(_ state: inout ConversationState, _ step: inout StepContext) throws {
        let body = step.input.rawRemainder(afterWords: 1)
        guard !body.isEmpty else { return step.reply("Usage: BROADCAST <text>, comrade.") }
        guard body.utf16.count <= TwiML.maxMessageLength else {
            return step.reply("A broadcast is at most 1600 characters, comrade; yours has \(body.utf16.count). Send a shorter BROADCAST.")
        }
        let audience = try step.facts.broadcastAudience()
        let segments = Segments.count(body)
        var encoding = "\(segments.encoding.rawValue), \(Copy.plural(segments.segments, "SMS segment")) each"
        if !segments.nonGSMCharacters.isEmpty {
            encoding = "UCS-2 forced by \(Copy.describe(segments.nonGSMCharacters)), \(Copy.plural(segments.segments, "SMS segment")) each"
        }
        let skipped = audience.registered - audience.textable
        state.step = .confirmingBroadcast(text: body)
        step.reply(
            "Broadcast to \(Copy.plural(audience.registered, "comrade")): \(audience.textable) texted"
                + (skipped > 0 ? " (\(skipped) opted out or unreachable)" : "") + ". \(encoding). Reply YES to send, or RESET to drop it."
        )
    }

    func find(_ step: inout StepContext) throws {
        let text = step.input.argument
        guard !text.isEmpty else { return step.reply("Usage: FIND <name, email or phone>, comrade.") }
        // One more than shown says whether the list is cut short.
        let found = try step.facts.findUsers(matching: text, limit: settings.findLimit + 1)
        guard !found.isEmpty else { return step.reply("No comrade matches \(text.prefix(40)). Reply HELP for commands.") }
        var lines = found.prefix(settings.findLimit).map { "\($0.fullName), \($0.phone), \($0.email)\($0.role == .admin ? ", admin" : "")" }
        if found.count > settings.findLimit { lines.append("More match: FIND with more of the name shows fewer.") }
        step.reply(lines.joined(separator: "\n") + "\nReply SEND <phone> <text> to write to one.")
    }
}

extension Copy {
    /// Names the characters that force UCS-2, so that all of them can be fixed at once: up to three, then how many
    /// more (`U+2019 (curly quote), U+2014 (em dash) and U+2026 (ellipsis)`).
    static func describe(_ characters: [Character]) -> String {
        var named: [String] = []
        for ch in characters where !named.contains(describe(ch)) { named.append(describe(ch)) }
        guard named.count > 1 else { return named.first ?? "" }
        let shown = named.prefix(3)
        let more = named.count - shown.count
        return more > 0 ? shown.joined(separator: ", ") + " and \(more) more" : shown.dropLast().joined(separator: ", ") + " and " + shown.last!
    }

    /// Names a character in GSM-7 words: `U+2019 (curly quote)`.
    static func describe(_ ch: Character) -> String {
        let scalar = Segments.nonGSMScalar(in: ch)
        let code = "U+" + String(scalar.value, radix: 16, uppercase: true).leftPadded(to: 4)
        let names: [Unicode.Scalar: String] = [
            "\u{2018}": "curly quote", "\u{2019}": "curly quote", "\u{201C}": "curly double quote", "\u{201D}": "curly double quote",
            "\u{2013}": "en dash", "\u{2014}": "em dash", "\u{2026}": "ellipsis", "\u{00A0}": "no-break space", "`": "backtick",
            "\u{00E7}": "c with cedilla",
        ]
        if let name = names[scalar] { return "\(code) (\(name))" }
        if scalar.properties.isEmoji && scalar.value > 0xFF { return "\(code) (emoji)" }
        return code
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
