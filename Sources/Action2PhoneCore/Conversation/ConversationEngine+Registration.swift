// SPDX-License-Identifier: Apache-2.0
import Foundation
import TwilioKit

/// Answers to the pending question: registration, login passcode, passcode change, and the YES confirmations.
extension ConversationEngine {
    func answer(_ state: inout ConversationState, _ step: inout StepContext) throws {
        let text = step.input.text
        switch state.step {
        case .idle:
            return
        case .askedFirstName:
            // A command alone ("LOGIN", from someone who thought they had an account) is not taken as a name.
            if commandAlone(step.input) != nil { return step.reply(Copy.commandNotFirstName(step.input.command)) }
            if let request = requestNotName(step.input) { return step.reply(request + " " + Copy.firstNameAgain) }
            guard let name = Self.validName(Self.withoutIntroduction(text, "first")) else { return step.reply(Copy.invalidName("first")) }
            state.step = .askedLastName(first: name)
            step.reply("Thank you, \(Copy.endingSentence(name)) Reply with your last name.")
        case .askedLastName(let first):
            // (More is a surname as well as a command: Thomas More registers.)
            if let command = commandAlone(step.input), command != .more { return step.reply(Copy.commandNotLastName(step.input.command)) }
            if let request = requestNotName(step.input) { return step.reply(request + " " + Copy.lastNameAgain) }
            guard let name = Self.validName(Self.withoutIntroduction(text, "last")) else { return step.reply(Copy.invalidName("last")) }
            state.step = .askedEmail(first: first, last: name)
            step.reply("Good, comrade \(first) \(Copy.endingSentence(name)) Reply with your email address.")
        case .askedEmail(let first, let last):
            guard let email = Self.validEmail(text) else {
                if step.input.startsWithOptOutWord || step.input.mentionsOptingOut {
                    return step.reply("That is not an email address, comrade. " + Copy.optOutAlone + " Reply with your email, or RESET to go back.")
                }
                return step.reply("That is not an email address, comrade (like ivan@example.org). Reply with your email, or RESET to go back.")
            }
            if try step.facts.isEmailRegistered(email) {
                return step.reply("That email is already registered. Reply with another email, or RESET to go back.")
            }
            state.step = .askedPasscode(first: first, last: last, email: email)
            // Read back: the address is taken from the text ("my email is ivan@example.org"), and a wrong one is seen now.
            // (In one text when it can be: a long address leaves the advice out.)
            let full = "Email \(email) noted. " + Copy.askPasscode
            step.reply(Segments.count(full).segments == 1 ? full : "Email \(email) noted. " + Copy.askPasscodeBriefly)
        case .askedPasscode(let first, let last, let email):
            guard let hash = newPasscode(&step, ask: Copy.askPasscode) else { return }
            state.step = .askedPasscodeAgain(first: first, last: last, email: email, pending: hash)
            step.reply(Copy.askPasscodeAgain)
        case .askedPasscodeAgain(let first, let last, let email, let pending):
            // The passcode being confirmed cannot start with a command word, so this is a command sent by mistake.
            if step.input.startsWithCommandWord { return step.reply(Copy.commandNotPasscode) }
            guard let matches = confirms(pending, step) else { return step.reply(Copy.askPasscodeAgain) }
            guard matches else {
                state.step = .askedPasscode(first: first, last: last, email: email)
                return step.reply("The passcodes differ, comrade. " + Copy.askPasscode)
            }
            // Someone may have taken the email, or this phone may have registered, since it was asked.
            if step.account != nil {
                state.step = .idle
                return step.reply("This number is already registered, comrade. Reply LOGIN to log in.")
            }
            if try step.facts.isEmailRegistered(email) {
                state.step = .askedEmail(first: first, last: last)
                return step.reply("That email was just registered by someone else. Reply with another email, or RESET to go back.")
            }
            let role: Role = settings.adminPhones.contains(step.facts.phone) ? .admin : .user
            step.effects.append(.register(Registration(firstName: first, lastName: last, email: email, passcode: pending, role: role)))
            state.step = .idle
            state.loggedInAt = step.now
            step.reply(
                "Welcome to the collective, \(Copy.comrade(first))! You are registered and logged in"
                    + (role == .admin ? " as an admin" : "") + ". Reply MESSAGES, PROFILE or HELP."
            )
        case .askedLoginPasscode:
            guard let account = step.account else {
                state.step = .idle
                return step.reply(Copy.needAccount)
            }
            login(account, passcode: text, &state, &step)
        case .askedCurrentPasscode:
            guard let account = step.account, state.isLoggedIn else {
                state.step = .idle
                return step.reply(step.account == nil ? Copy.needAccount : Copy.needLogin)
            }
            if isLocked(account, now: step.now) {
                state.step = .idle
                state.loggedInAt = nil
                return step.reply(Copy.locked(until: account.lockedUntil!, in: settings.localTime))
            }
            guard PasscodePolicy.lengths.contains(text.count) else { return step.reply(Copy.impossiblePasscode + Copy.retryCurrentPasscode) }
            guard case .verified(let matches, let checked) = step.evidence, checked == account.passcode else {
                return step.reply(Copy.askCurrentPasscode)
            }
            guard matches else {
                return wrongPasscode(
                    account,
                    retry: .askedCurrentPasscode,
                    ask: Copy.retryCurrentPasscode,
                    note: commandWordNote(step.input, loggedIn: true),
                    &state,
                    &step
                )
            }
            step.effects.append(.loginSucceeded(userId: account.id))
            state.step = .askedNewPasscode
            step.reply(Copy.askNewPasscode)
        case .askedNewPasscode:
            guard let hash = newPasscode(&step, ask: Copy.askNewPasscode) else { return }
            state.step = .askedNewPasscodeAgain(pending: hash)
            step.reply(Copy.askPasscodeAgain)
        case .askedNewPasscodeAgain(let pending):
            if step.input.startsWithCommandWord { return step.reply(Copy.commandNotPasscode) }
            guard let matches = confirms(pending, step) else { return step.reply(Copy.askPasscodeAgain) }
            guard matches else {
                state.step = .askedNewPasscode
                return step.reply("The passcodes differ, comrade. " + Copy.askNewPasscode)
            }
            state.step = .idle
            // An operator may have deleted the account or ended the login (users reset-passcode) meanwhile.
            guard let account = step.account, state.isLoggedIn else { return step.reply(Copy.needLogin) }
            step.effects.append(.changePasscode(userId: account.id, passcode: pending))
            step.reply("Your passcode is changed, comrade. Use it at your next LOGIN. Reply HELP for commands.")
        case .confirmingDelete:
            state.step = .idle
            guard step.input.command == "YES" else {
                return step.reply("Deletion cancelled: your data stays, comrade. Reply HELP for commands.")
            }
            guard let account = step.account, state.isLoggedIn else { return step.reply(Copy.needLogin) }
            step.effects.append(.deleteAccount(userId: account.id))
            state.loggedInAt = nil
            // By habit, the passcode may come next; the number has no account to tell it by any more.
            state.passcodeMayFollow = true
            step.reply("Your data is erased, comrade. The collective will miss you. Reply JOIN to register again.")
        case .confirmingBroadcast(let body):
            state.step = .idle
            guard step.input.command == "YES" else { return step.reply("Broadcast cancelled, comrade. Reply HELP for commands.") }
            guard let account = step.account, state.isLoggedIn else { return step.reply(Copy.needLogin) }
            // An operator may have removed the admin role since the BROADCAST (action2phone users demote).
            guard account.role == .admin else {
                return step.reply("You are no longer an admin, comrade: the broadcast was not sent. Reply HELP for commands.")
            }
            let audience = try step.facts.broadcastAudience()
            step.effects.append(.broadcast(senderId: account.id, body: body))
            step.reply(
                "Broadcast sent to the inboxes of \(Copy.plural(audience.registered, "comrade")); \(Copy.plural(audience.textable, "text")) queued. Reply HELP for commands."
            )
        }
    }

    /// Checks the passcode evidence for `account`, logging in or counting a failure (5 in 15 minutes lock
    /// the account for 15 minutes).
    func login(_ account: Account, passcode: String, _ state: inout ConversationState, _ step: inout StepContext) {
        if isLocked(account, now: step.now) {
            state.step = .idle
            return step.reply(Copy.locked(until: account.lockedUntil!, in: settings.localTime))
        }
        // Passcodes have 6 to 64 characters: another length cannot be one, and is not counted as a wrong try.
        guard PasscodePolicy.lengths.contains(passcode.count) else {
            state.step = .askedLoginPasscode
            return step.reply(Copy.impossiblePasscode + Copy.retryLoginPasscode)
        }
        guard case .verified(let matches, let checked) = step.evidence, checked == account.passcode else {
            state.step = .askedLoginPasscode
            return step.reply(Copy.askLoginPasscode)
        }
        if matches {
            state.step = .idle
            state.loggedInAt = step.now
            step.effects.append(.loginSucceeded(userId: account.id))
            let unread = (try? step.facts.unreadCount(userId: account.id)) ?? 0
            // A passcode an organiser gave is known to them: the first thing to do is choose one's own.
            let next =
                account.passcodeFromOrganiser
                ? "Reply PASSCODE to replace the passcode an organiser gave you."
                : unread > 1 ? "Reply MESSAGES to read them." : unread == 1 ? "Reply MESSAGES to read it." : "Reply HELP for commands."
            return step.reply("Welcome back, \(Copy.comrade(account.firstName))! You have \(Copy.plural(unread, "unread message")). " + next)
        }
        wrongPasscode(
            account,
            retry: .askedLoginPasscode,
            ask: Copy.retryLoginPasscode,
            note: commandWordNote(step.input, loggedIn: false),
            &state,
            &step
        )
    }

    /// What to say to a request sent where a name is asked ("stop please", "help me", "reset please", "please stop
    /// texting me"): words no name starts with. `nil` for a name.
    func requestNotName(_ input: Inbound) -> String? {
        if input.startsWithOptOutWord || input.mentionsOptingOut { return "That is not a name, comrade. " + Copy.optOutAlone }
        switch input.command {
        case "HELP", "INFO": return "That is not a name, comrade. HELP alone says where you are."
        case "RESET", "MENU": return "That is not a name, comrade. RESET alone leaves registration."
        default: return nil
        }
    }

    /// `text` without the words a person may put before a name ("My name is Sam", "I'm Lena", "My last name is
    /// Jones"), as the email question takes an address out of a sentence; `text` itself when nothing would be left.
    static func withoutIntroduction(_ text: String, _ which: String) -> String {
        let lowered = text.lowercased().replacing("\u{2019}", with: "'")
        let openings = [
            "my \(which) name is ", "my \(which) name's ", "\(which) name is ", "\(which) name: ", "my name is ", "my name's ",
            "my surname is ", "surname: ", "name: ", "i'm ", "i am ", "this is ", "it's ", "call me ",
        ]
        guard let opening = openings.first(where: { lowered.hasPrefix($0) }) else { return text }
        let rest = text.dropFirst(opening.count).trimmingWhitespace()
        return rest.isEmpty ? text : rest
    }

    /// The command a text is, when it is nothing but a command's own name (`LOGIN`, `messages`; not an alias, which
    /// may be a name, such as Me), or one of JOIN's (REGISTER and SIGNUP, sent again by someone who thought the first
    /// was lost, are no names).
    func commandAlone(_ input: Inbound) -> Command? {
        // (Asked only of someone not registered, for whom an admin command is a word like any other.)
        guard input.argument.isEmpty, let command = Command(word: input.command), command.rawValue == input.command || command == .join,
            !command.isAdminOnly
        else {
            return nil
        }
        return command
    }

    /// What to say before "Wrong passcode" when the text was PASSCODE (or PASSWORD) alone, sent again at a passcode
    /// question by someone who thought the first was lost: it was checked (a passcode chosen before command words
    /// were refused may be "password") and counts as a wrong try, or every case of the word would be a free guess.
    func commandWordNote(_ input: Inbound, loggedIn: Bool) -> String {
        guard input.argument.isEmpty && Command(word: input.command) == .passcode else { return "" }
        // (Short: with the question's ask after it, one text. At the login question the command is of no use yet:
        // saying it is the command invited sending it again, a wrong try each time.)
        return loggedIn ? "(\(input.command) alone is the command.) " : "(\(input.command) works once logged in.) "
    }

    /// Counts a wrong passcode against `account`: the failures of the last 15 minutes count, whenever the first
    /// of them was (the window slides), and the fifth locks the account for 15 minutes, ending the question and
    /// any login. Below that, `retry` asks again.
    func wrongPasscode(_ account: Account, retry: Step, ask: String, note: String = "", _ state: inout ConversationState, _ step: inout StepContext) {
        let recent = account.recentFailedLogins.filter { step.now.timeIntervalSince($0) < settings.failureWindow } + [step.now]
        if recent.count >= settings.maxFailedLogins {
            let until = step.now.addingTimeInterval(settings.lockDuration)
            step.effects.append(.loginFailed(userId: account.id, recentFailures: [], lockedUntil: until))
            let wasLoggedIn = state.isLoggedIn
            state.step = .idle
            state.loggedInAt = nil
            // Logged in, it says so, in one text with any zone's label.
            return step.reply(
                wasLoggedIn
                    ? "Wrong passcode \(settings.maxFailedLogins) times: you are logged out, and locked until \(settings.localTime.clock(until)). "
                        + "LOGIN then, comrade, or ask an organiser to reset your passcode."
                    : "Wrong passcode \(settings.maxFailedLogins) times. " + Copy.locked(until: until, in: settings.localTime)
            )
        }
        step.effects.append(.loginFailed(userId: account.id, recentFailures: recent, lockedUntil: nil))
        state.step = retry
        // Every wrong passcode is told how to opt out, whatever it said: "please stop" at the login question is checked
        // as a passcode (one chosen so may be it) and counts, and advice given only to such texts would tell the stored
        // reply what the passcode held ("bus stop 1918" is one character from "bus stop 1917"). (Left out after the
        // note, which is one text as it is.)
        step.reply(
            note + "Wrong passcode (\(recent.count) of \(settings.maxFailedLogins) tries). " + ask + (note.isEmpty ? " " + Copy.stopAlone : "")
        )
    }

    /// Whether the text confirms the `pending` passcode; `nil` when that is not known (no evidence, or evidence
    /// about another hash). A text that cannot be a passcode (not 6 to 64 characters) differs without a check.
    func confirms(_ pending: PasscodeHash, _ step: StepContext) -> Bool? {
        guard PasscodePolicy.lengths.contains(step.input.text.count) else { return false }
        guard case .verified(let matches, let checked) = step.evidence, checked == pending else { return nil }
        return matches
    }

    /// The hashed passcode a person chose, or `nil` with the reason it cannot be one (or, without the hash, `ask`
    /// again) in the reply.
    func newPasscode(_ step: inout StepContext, ask: String) -> PasscodeHash? {
        // No new passcode starts with a command word: one asking to opt out ("stop texting me") is told how to, and a
        // command sent by mistake (LOGIN, from someone who remembered an account) is said to be one, whatever its length.
        if step.input.startsWithOptOutWord {
            step.reply(Copy.optOutNotPasscode + "Reply with a passcode, or RESET to go back.")
            return nil
        }
        if step.input.argument.isEmpty, step.input.startsWithCommandWord {
            step.reply(
                "\(step.input.command) is a command, comrade, not a passcode. Reply with a passcode of 6 to 64 characters, or RESET to go back."
            )
            return nil
        }
        guard PasscodePolicy.lengths.contains(step.input.text.count) else {
            step.reply("A passcode needs 6 to 64 characters, comrade. Reply with another one, or RESET to go back.")
            return nil
        }
        guard !step.input.startsWithCommandWord else {
            step.reply(
                "A passcode cannot start with a command word (such as LOGIN or HELP): sent alone it would be read as one. Reply with another one, or RESET to go back."
            )
            return nil
        }
        if case .reused = step.evidence {
            step.reply("That is the passcode you have now, comrade. Reply with a different one, or RESET to keep it.")
            return nil
        }
        guard case .hashed(let hash) = step.evidence else {
            step.reply(ask)
            return nil
        }
        return hash
    }

    // MARK: - Validation

    /// 1 to 40 characters of letters, spaces, hyphens, apostrophes and dots, starting with a letter.
    static func validName(_ text: String) -> String? {
        // Composed, as every name is stored and searched. A full stop a phone put after a word ("Peter."), not an
        // initial's ("J.") or an abbreviation's ("Smith Jr."), is dropped.
        var text = Inbound.composed(text)
        if text.hasSuffix("."), let last = text.dropLast().split(separator: " ").last, last.count > 1, !last.contains("."),
            !["JR", "SR", "ST", "DR", "MR", "MRS", "MS", "MT"].contains(last.uppercased())
        {
            text = String(text.dropLast()).trimmingWhitespace()
        }
        guard (1...40).contains(text.count), text.first?.isLetter == true,
            text.allSatisfy({ $0.isLetter || $0 == " " || $0 == "-" || $0 == "'" || $0 == "." })
        else { return nil }
        return text
    }

    /// A plausible email address, lower-cased, at most 254 characters: one `@`; before it letters, digits and the
    /// characters RFC 5322 allows unquoted (`!#$%&'*+/=?^_`{|}~-` and dots between them); after it a dotted domain of
    /// letters, digits and hyphens, ending in two letters or more (or an `xn--` international ending). No control characters, spaces or quotes: the address is shown to operators in a
    /// terminal and exported as CSV. The one word with an `@` is taken, without the punctuation and brackets around it
    /// ("kate@example.org.", "<kate@example.org>", "my email is kate@example.org").
    static func validEmail(_ text: String) -> String? {
        let words = text.split(separator: " ").filter { $0.contains("@") }
        guard words.count == 1 else { return nil }
        let email = Inbound.composed(words[0].trimmingCharacters(in: CharacterSet(charactersIn: "<>()[]{}.,;:!?\"'`*")).lowercased())
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard email.count <= 254, parts.count == 2 else { return nil }
        let (local, domain) = (parts[0], parts[1])
        func isLetterOrDigit(_ c: Character) -> Bool {
            (c.isLetter || c.isNumber) && !c.unicodeScalars.contains { $0.properties.generalCategory == .control }
        }
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        guard !local.isEmpty, !local.hasPrefix("."), !local.hasSuffix("."), !local.contains(".."),
            local.allSatisfy({ isLetterOrDigit($0) || "!#$%&'*+/=?^_`{|}~.-".contains($0) }),
            labels.count >= 2, let top = labels.last, top.count >= 2, top.allSatisfy(\.isLetter) || top.hasPrefix("xn--"),
            labels.allSatisfy({ !$0.isEmpty && !$0.hasPrefix("-") && !$0.hasSuffix("-") && $0.allSatisfy { isLetterOrDigit($0) || $0 == "-" } })
        else { return nil }
        return email
    }
}

extension Copy {
    static let impossiblePasscode = "A passcode has 6 to 64 characters, comrade, so that was not it. "
    /// At a new passcode's question, to a text that starts with an opt-out word and goes on (no new passcode can).
    static let optOutNotPasscode = "That is not a passcode, comrade. " + optOutAlone + " "
    /// At a confirmation: the passcode being confirmed cannot start with a command word, so this was sent by mistake.
    static let commandNotPasscode = "That is a command, comrade, not your passcode. " + askPasscodeAgain + " Or RESET to go back."

    /// The name questions asked again after a text that is not a name.
    static let firstNameAgain = "Reply with your first name to register, or RESET to go back."
    static let lastNameAgain = "You are registering: reply with your last name, or RESET to go back."

    static func commandNotFirstName(_ word: String) -> String {
        "\(word) is a command, comrade, and this number has no account yet. " + firstNameAgain
    }

    static func commandNotLastName(_ word: String) -> String {
        "\(word) is a command, comrade. " + lastNameAgain
    }

    static func invalidName(_ which: String) -> String {
        "A name is letters only, comrade (1 to 40, spaces, - ' and . allowed). Reply with your \(which) name."
    }

    static func locked(until: Date, in time: LocalTime) -> String {
        "The account is locked until \(time.clock(until)). Try LOGIN again then, comrade, or ask an organiser to reset your passcode."
    }
}
