// SPDX-License-Identifier: Apache-2.0
import Foundation
import TwilioKit

/// The conversation as a pure transition: (stored state, inbound text, facts, clock) → (new state, replies,
/// effects). It does no I/O: facts are read through a read-only view, changes come back as `Effect`s, and
/// slow passcode hashing happens before the call (`passcodeWork`) and arrives as `PasscodeEvidence`.
///
/// ```swift
/// let engine = ConversationEngine(settings: .init(sessionTTL: 1800))
/// var state = ConversationState()
/// let decision = try engine.reduce(&state, Inbound(text: "JOIN"), facts: facts, now: .now)
/// // decision.replies == ["Welcome, future comrade! ... first name ..."], state.step == .askedFirstName
/// ```
public struct ConversationEngine: Sendable {
    public struct Settings: Sendable {
        public var sessionTTL: TimeInterval
        public var adminPhones: Set<String>
        public var maxFailedLogins = 5
        public var failureWindow: TimeInterval = 15 * 60
        public var lockDuration: TimeInterval = 15 * 60
        /// Characters (UTF-16 units) of one `MESSAGES` reply, its ending included: one TwiML message (SPEC: "as many
        /// as fit one reply").
        public var inboxPageCharacters = TwiML.maxMessageLength
        public var findLimit = 5
        /// The zone of the times and dates in texts.
        public var localTime: LocalTime

        public init(sessionTTL: TimeInterval = 1800, adminPhones: Set<String> = [], localTime: LocalTime = .utc) {
            self.sessionTTL = sessionTTL
            self.adminPhones = adminPhones
            self.localTime = localTime
        }
    }

    public let settings: Settings

    public init(settings: Settings) {
        self.settings = settings
    }

    /// The passcode hashing or verification `input` needs before `reduce` can decide, if any.
    /// None for an opted-out number: it is answered only when it opts back in, and its YES is that, not a passcode.
    public func passcodeWork(for input: Inbound, state: ConversationState, account: Account?, optedOut: Bool = false, now: Date) -> PasscodeWork? {
        guard !optedOut else { return nil }
        var state = state
        _ = expire(&state, now: now)
        switch route(input, state, isAdmin: account?.role == .admin) {
        case .answer:
            switch state.step {
            case .askedPasscode, .askedNewPasscode:
                guard PasscodePolicy.lengths.contains(input.text.count), !input.startsWithCommandWord else { return nil }
                // A changed passcode must differ from the current one (after `users reset-passcode`, the organiser knows it).
                return .hash(input.text, unlike: state.step == .askedNewPasscode ? account?.passcode : nil)
            case .askedPasscodeAgain(_, _, _, let pending), .askedNewPasscodeAgain(let pending):
                // A confirmation starting with a command word (sent by mistake) or of an impossible length needs no hash.
                return input.startsWithCommandWord || !PasscodePolicy.lengths.contains(input.text.count) ? nil : .verify(input.text, against: pending)
            case .askedLoginPasscode, .askedCurrentPasscode:
                guard let account, !isLocked(account, now: now), PasscodePolicy.lengths.contains(input.text.count) else { return nil }
                return .verify(input.text, against: account.passcode)
            default:
                return nil
            }
        case .command(.login):
            guard let account, !state.isLoggedIn, !isLocked(account, now: now), PasscodePolicy.lengths.contains(input.argument.count) else {
                return nil
            }
            return .verify(input.argument, against: account.passcode)
        default:
            return nil
        }
    }

    /// Decides the answer to one text. `evidence` is the result of `passcodeWork`, when there was any;
    /// `passcodeText` says the text was treated as a passcode before this call, so it is redacted regardless.
    public func reduce(
        _ state: inout ConversationState,
        _ input: Inbound,
        evidence: PasscodeEvidence? = nil,
        facts: any ConversationFacts,
        now: Date,
        passcodeText: Bool = false
    ) throws -> Decision {
        let stepBefore = state.step
        let expired = expire(&state, now: now)
        state.lastActivity = now
        let consent = try facts.consent()
        let account = try facts.account()
        let route = route(input, state, optedOut: consent.optedOut, isAdmin: account?.role == .admin)
        var step = StepContext(input: input, evidence: evidence, facts: facts, now: now, account: account)
        let redact = passcodeText || mustRedact(route, input, state, stepBefore: stepBefore, registered: step.account != nil)
        // Only a text that starts or answers something ends `passcodeMayFollow` (a command may set it again): after
        // HELP, RESET, START, an empty text or an unknown one the passcode may still come. Nothing starts for an
        // opted-out number, and for a number with no account only JOIN does (MESSAGES or PROFILE there is refused).
        switch route {
        case .command(let command), .cancelThen(let command):
            if !consent.optedOut && (account != nil || command == .join) { state.passcodeMayFollow = nil }
        case .answer: if !consent.optedOut { state.passcodeMayFollow = nil }
        case .unknown, .help, .reset, .empty, .optOut, .optIn: break
        }

        switch route {
        case .optOut:
            // Logged even when the number is opted out already: the consent log keeps every request.
            state = state.reset(lastActivity: now)
            return Decision(replies: [], effects: [.optOut(text: input.text)], loggedBody: nil)
        case .optIn:
            // One text: the next step, not the whole HELP (with it, a welcome back took two).
            guard consent.optedOut else {
                // (A YES to a confirmation that has just timed out is answered below with the time-out note alone.)
                step.reply(Copy.alreadySubscribed + " " + nextStep(state, step.account, now: step.now))
                break
            }
            state.step = .idle
            step.effects.append(.optIn(text: input.text))
            step.reply(Copy.welcomeBack + " " + nextStep(state, step.account, now: step.now))
        case _ where consent.optedOut:
            // Nothing more is ever texted to an opted-out number until it opts back in.
            return Decision(replies: [], loggedBody: redact ? Copy.redacted : nil)
        case _ where evidence == .busy:
            // Only a text that needed its passcode checked gets here; it was not checked, so nothing changes.
            step.reply(Copy.passcodesBusy)
        case .help:
            step.reply(helpText(state, step.account, now: step.now))
        case .reset:
            if let flow = state.step.flowName {
                let consequence = state.step.timedOutConsequence.map { " and \($0)" } ?? ""
                // RESET read as "reset my passcode" at a passcode question: the passcode may well come next.
                if state.step.expectsPasscode { state.passcodeMayFollow = true }
                state.step = .idle
                step.reply("Done: the \(flow) is abandoned\(consequence), comrade. Reply HELP for commands.")
            } else if let account = step.account, input.mentionsPasscode {
                // "reset my passcode": RESET leaves a question; a passcode is changed with PASSCODE, or by an organiser.
                step.reply(
                    state.isLoggedIn
                        ? "No question is open to reset, comrade. To change your passcode, reply PASSCODE."
                        : "No question is open to reset, \(Copy.comrade(account.firstName)). Forgot your passcode? Ask an organiser to reset it, then LOGIN."
                )
            } else {
                step.reply("Nothing to reset, comrade. Reply HELP for commands.")
            }
        case .empty:
            let prompt = state.step == .idle ? "Reply HELP for commands." : Copy.prompt(for: state.step)
            step.reply((input.numMedia > 0 ? Copy.mediaIgnored : Copy.emptyText) + " " + prompt)
        case .answer:
            try answer(&state, &step)
        case .command(let command):
            try run(command, &state, &step)
        case .cancelThen(let command):
            // A command instead of YES or a passcode: the question is cancelled, and the command runs, not swallowed.
            // (PASSCODE in a passcode change starts it again: nothing to say was cancelled.)
            let cancelled = command == .passcode && state.step.isPasscodeChange ? nil : state.step.cancelledNote
            state.step = .idle
            try run(command, &state, &step)
            if let cancelled, let first = step.replies.first { step.replies[0] = cancelled + " " + first }
        case .unknown(let word):
            // A passcode that arrived after its question expired is never echoed back.
            step.reply(
                unknownCommand(
                    word,
                    typed: input.text,
                    echo: !redact,
                    account: step.account,
                    loggedIn: state.isLoggedIn,
                    optingOut: input.mentionsOptingOut,
                    now: step.now
                )
            )
        }

        if let expired, let first = step.replies.first {
            let timedOut =
                "Your \(expired.flowName ?? "flow") timed out after \(Copy.duration(settings.sessionTTL)) of silence"
                + (expired.timedOutConsequence.map { " and \($0)" } ?? "")
            let restart = expired.restartCommand(loggedIn: state.isLoggedIn)
            // (After a passcode question, always: "To opt out…" after "stop1917x" would say what the passcode holds.)
            let unused: Bool
            if case .unknown(let word) = route {
                unused =
                    stepBefore.expectsPasscode
                    || !optOutWords.contains(Inbound.bare(word, lenient: true)) && !input.mentionsOptingOut
                        && typoHint(word, typed: input.text, echo: !redact, isAdmin: step.account?.role == .admin).isEmpty
            } else {
                // A YES to a confirmation that has just timed out (or a START from a number not opted out) confirms nothing.
                unused = route == .optIn && !consent.optedOut
            }
            if unused {
                // A text meant for the question that expired (a late answer, a passcode, a YES), with nothing to say about
                // it (how to opt out, a command it is near): it is not taken as anything else, and not echoed back as an
                // unknown command.
                step.replies = [timedOut + ", so that text was not used. Reply \(restart) to start again."]
            } else {
                // (Not told to send what it has just sent, or what its reply already names.)
                let named = first.contains(restart) || input.command == restart
                step.replies[0] = timedOut + (named ? ". " : "; send \(restart) to start again. ") + first
            }
        }
        return Decision(replies: step.replies, effects: step.effects, loggedBody: redact ? Copy.redacted : nil)
    }

    // MARK: - Routing

    enum Route: Equatable {
        case optOut, optIn, help, reset, empty, answer
        case command(Command)
        /// A command sent instead of the YES a confirmation asked for.
        case cancelThen(Command)
        case unknown(String)
    }

    /// The keyword layer comes before any state: opt-out, opt-in and help words, then RESET, then the
    /// pending question (LOGIN is still LOGIN at the login passcode question, and at a passcode question or a
    /// confirmation another command cancels it and runs), then commands.
    /// YES opts in when no question is pending, or when the number is opted out: nothing is asked of it (an
    /// operator may have opted it out mid-question), and Twilio, for which YES is an opt-in word, has unblocked it.
    ///
    /// Keywords come first in every state, a passcode question included: a text that reads as one (`"Stop!!"`) opts
    /// out there too, so no such text can ever become a passcode, and no passcode is ever taken for a keyword.
    ///
    /// For anyone but an admin, an admin command (SEND, BROADCAST, USERS, FIND) is no command at all: a word like any
    /// other, answered and logged as one, at a question too (SPEC §4: refused the same way as an unknown command).
    func route(_ input: Inbound, _ state: ConversationState, optedOut: Bool = false, isAdmin: Bool = false) -> Route {
        let keyword = input.keyword
        let command = Command(word: input.command).flatMap { $0.isAdminOnly && !isAdmin ? nil : $0 }
        if input.optOutType == "STOP" || input.readsAsOptOutWord { return .optOut }
        if input.optOutType == "START" || keyword == "START" || keyword == "UNSTOP" || (keyword == "YES" && (state.step == .idle || optedOut)) {
            return .optIn
        }
        if input.optOutType == "HELP" || keyword == "HELP" || keyword == "INFO" || keyword == "?" { return .help }
        if keyword == "RESET" || keyword == "MENU" { return .reset }
        if input.text.isEmpty { return .empty }
        let asksOldPasscode = state.step == .askedLoginPasscode || state.step == .askedCurrentPasscode
        // A loosely read command there with more words is an answer, as before such forms were read ("messages? 1917"
        // may be a passcode), but for "Log in <passcode>" at the login question, LOGIN as it is everywhere else, when
        // what follows can be a passcode ("log in 1917", too short for one, is still checked whole). One with nothing
        // after it ("Log in", "Log out", "Messages?", "Reset?": what an old phone's autocorrect makes of the command) is
        // the command, not a wrong try that locks the account when repeated; nor is it checked as a passcode, each of
        // its spellings a free guess ("LOGIN Log in" logs in with a passcode chosen so before command words were refused).
        if asksOldPasscode && input.commandIsLoose && !input.argument.isEmpty
            && !(state.step == .askedLoginPasscode && input.command == "LOGIN" && PasscodePolicy.lengths.contains(input.argument.count))
        {
            return .answer
        }
        // HELP or RESET alone with a question mark ("Help?", "Reset?") is the keyword at every other question too, as
        // with none open: no name, email or new passcode can be it.
        if input.commandIsLoose, input.commandWords == 1, input.argument.isEmpty, let command, command == .help || command == .reset {
            return command == .help ? .help : .reset
        }
        // At the login passcode question, LOGIN again (bare, or with the passcode as HELP shows it) is the
        // command: "LOGIN secret" is not the passcode "LOGIN secret", and is not a wrong try.
        if state.step == .askedLoginPasscode && input.command == "LOGIN" { return .command(.login) }
        if state.step.isConfirmation, input.command != "YES", let command, command != .start {
            // A greeting gets the question again; any other command cancels the confirmation and runs.
            return command == .help ? .help : command == .reset ? .reset : .cancelThen(command)
        }
        // At a passcode question a command (MESSAGES, LOGOUT, JOIN) cancels it and runs, and is never a wrong try
        // that could lock the account: passcodes chosen since JOIN refused command words cannot start with one.
        // Where an existing passcode is asked for (login, current passcode), a text starting with PASSCODE, PASSWORD,
        // HELP or RESET (or their aliases) is an answer: a passcode chosen before they were refused may start with
        // them ("help me 1917"; HELP and RESET alone are keywords, handled above). Where a new one is asked, none can.
        if state.step == .askedLoginPasscode || state.step.isPasscodeChange, let command, command != .start,
            !asksOldPasscode || ![.help, .reset, .passcode].contains(command)
        {
            return command == .help ? .help : command == .reset ? .reset : .cancelThen(command)
        }
        if state.step != .idle { return .answer }
        guard let command else { return .unknown(input.command) }
        switch command {
        case .help: return .help
        case .reset: return .reset
        // START with more words ("start please"): Twilio lifts its block only for the word alone, so neither
        // does the bot; an opted-out number is not answered, as Twilio would not deliver the answer.
        case .start: return optedOut ? .unknown(input.command) : .optIn
        default: return .command(command)
        }
    }

    /// A passcode text is never logged: any `LOGIN <something>`, any text starting with PASSCODE or PASSWORD (a
    /// passcode chosen before they were commands may be one of them), any text sent while a passcode question was
    /// pending (even one that has just expired) unless it is a keyword, the unknown texts after such an expiry, any
    /// unknown text from a registered person (sent after "please log in first" or a lockout, it is often the
    /// passcode), and anything but YES sent at a DELETE or BROADCAST confirmation, for the same reason.
    func mustRedact(_ route: Route, _ input: Inbound, _ state: ConversationState, stepBefore: Step, registered: Bool) -> Bool {
        if (input.command == "LOGIN" && !input.argument.isEmpty) || Command(word: input.command) == .passcode { return true }
        // A mistyped LOGIN with a passcode after it ("Login:secret1", "lgoin secret1", "Logon secret1", "Sign in
        // secret1"), from a new phone as much as from a registered one.
        if case .unknown = route, Self.looksLikeLogin(input) { return true }
        // A loosely read command ("messages? 1234", "sign up 1917") from a registered person was an unknown text, and
        // so redacted, before such forms were read: an older passcode may be one.
        if input.commandIsLoose && (registered || state.passcodeMayFollow == true) { return true }
        switch route {
        // HELP, RESET or START with more words may be an older passcode ("help me 1917"), sent at an expired question
        // or after "please log in first".
        case .optIn where !input.argument.isEmpty, .help where !input.argument.isEmpty, .reset where !input.argument.isEmpty:
            // ("Hi, my password is hunter22" from a new phone is HELP with more words.)
            return stepBefore.expectsPasscode || registered || state.passcodeMayFollow == true || Self.namesAPasscode(input)
        case .optOut, .optIn, .help, .reset, .empty: return false
        case .unknown where registered: return true
        // The confirmation of a passcode whose question expired, say, texted after the "timed out" reply.
        case .unknown where state.passcodeMayFollow == true: return true
        case .answer where stepBefore.isConfirmation: return input.command != "YES"
        default: return stepBefore.expectsPasscode || (route == .answer && state.step.expectsPasscode)
        }
    }

    /// A typo of STOP: two neighbouring letters swapped ("stpo"), a letter left out but the S ("stp", "sto"), a letter
    /// hit beside the right key ("stoo"), a letter doubled ("stopp") or one stray letter before it ("nstop"). Not
    /// "step", "shop", "top", "post", "spot", "stops" or "stomp": pointed at STOP, ordinary words would invite an
    /// opt-out nobody meant.
    static func isMistypedStop(_ letters: [Character]) -> Bool {
        let typed = letters.map { Character($0.uppercased()) }
        let stop = Array("STOP")
        if ["TSOP", "SOTP", "STPO"].contains(String(typed)) { return true }
        if typed.count == 3 {
            return typed.first == "S"
                && stop.indices.contains { i in
                    var s = stop
                    s.remove(at: i)
                    return s == typed
                }
        }
        if typed.count == 5 {
            return typed.indices.contains { i in
                var rest = typed
                let extra = rest.remove(at: i)
                return rest == stop && (i == 0 || typed[i - 1] == extra)
            }
        }
        guard typed.count == 4 else { return false }
        let beside: [Character: String] = ["S": "AWEDXZ", "T": "RYFG", "O": "IPKL", "P": "OL"]
        let differing = stop.indices.filter { typed[$0] != stop[$0] }
        return differing.count == 1 && beside[stop[differing[0]]]!.contains(typed[differing[0]])
    }

    /// Whether the text is a LOGIN mistyped with something after it, which may be the passcode: "Login:secret1" or
    /// "Login123456" (stuck to the word), "lgoin secret1", "Logon secret1", "Sign in secret1", "Log in:secret1",
    /// "ＬＯＧＩＮ secret1" (full-width letters read as the letters they are); or a word that names a passcode with
    /// something after it (`namesAPasscode`).
    static func looksLikeLogin(_ input: Inbound) -> Bool {
        if namesAPasscode(input) { return true }
        let word = String(Inbound.compatibilityFolded(input.command).uppercased().filter { $0.isLetter || $0.isNumber })
        for stem in ["LOGIN", "LOGON", "SIGNIN"] where word.count > stem.count && word.hasPrefix(stem) { return true }
        guard !input.argument.isEmpty else { return false }
        if word == "LOGIN" || word == "LOGON" || word == "SIGNIN" { return true }
        if word == "LOG" || word == "SIGN" { return input.argument.uppercased().hasPrefix("IN") }
        return editDistance(Array(word), Array("LOGIN")) <= 1
    }

    /// Whether the text names a passcode with something after it, which may be the passcode:
    /// - PASSWORD, PASSCODE, PINCODE, PASSWD, PASSPHRASE or PWD (or one letter off PASSWORD or PASSCODE: "Pasword")
    ///   first, with more after it, apart or stuck: "Password hunter22", "Passwordhunter22", "Pasword:hunter22" (not
    ///   "Passwords");
    /// - PIN, PASS, PW or CODE first, with a word after it (for CODE, one starting with a digit), or a digit or
    ///   `:`, `=`, `#` or `-` and a digit stuck to it: "PIN 482913", "PIN:482913", "PIN-482913", "code 4829" (not "Pine",
    ///   "Pass-through", "Pass?" or "Code red");
    /// - PIN, PW, PWD, CODE, PASSWD, PASSWORD, PASSCODE or PINCODE later, alone with a word after it, or with a digit
    ///   or `:`, `=`, `#` or `-` stuck to it, or last in a text that asks nothing: "my pin is 482913", "my pin:482913",
    ///   "482913 is my pin" (not "What's my pin?").
    static func namesAPasscode(_ input: Inbound) -> Bool {
        func split(_ word: Substring) -> (leading: String, after: Substring) {
            let leading = String(word.prefix { $0.isLetter })
            return (leading, word.dropFirst(leading.count))
        }
        func stuck(_ after: Substring) -> Bool {
            guard let next = after.first else { return false }
            return next.isNumber || ":=#".contains(next) || next == "-" && after.dropFirst().first?.isNumber == true
        }
        let command = Inbound.compatibilityFolded(input.command).uppercased()
        let word = String(command.filter { $0.isLetter || $0.isNumber })
        let (leading, after) = split(Substring(command))
        for stem in ["PASSWORD", "PASSCODE", "PINCODE", "PASSWD", "PASSPHRASE", "PWD"] {
            if word.hasPrefix(stem) && word.count > stem.count && word != stem + "S" { return true }
            if word == stem && !input.argument.isEmpty { return true }
        }
        if leading.count >= 7, !["PASSWORDS", "PASSCODES"].contains(leading),
            ["PASSWORD", "PASSCODE"].contains(where: { editDistance(Array(leading), Array($0)) <= 1 }),
            !input.argument.isEmpty || !after.isEmpty
        {
            return true
        }
        // (PWD is a stem above: alone with a word after it, or with anything stuck to it.)
        if ["PIN", "PASS", "PW"].contains(leading) {
            if after.isEmpty && !input.argument.isEmpty { return true }  // (not "Pin's broken")
            if stuck(after) { return true }
        }
        if leading == "CODE" && (stuck(after) || after.isEmpty && input.argument.first?.isNumber == true) { return true }
        // Later in the text (up to two texts' worth: a longer one is no note with a passcode in it)
        guard input.text.utf8.count <= 320 else { return false }
        let words = Inbound.compatibilityFolded(input.text).uppercased().split(separator: " ")
        let asks = input.text.hasSuffix("?")
        for (index, later) in words.enumerated().dropFirst() {
            let (leading, after) = split(later.drop { !$0.isLetter && !$0.isNumber })
            guard ["PIN", "PW", "PWD", "CODE", "PASSWD", "PASSWORD", "PASSCODE", "PINCODE"].contains(leading) else { continue }
            if stuck(after) { return true }
            let bareAfter = after.allSatisfy { !$0.isLetter && !$0.isNumber }
            if bareAfter && (index < words.count - 1 || !asks) { return true }
        }
        return false
    }

    /// Ends a login and a pending question after the session TTL of silence; returns the step that expired.
    func expire(_ state: inout ConversationState, now: Date) -> Step? {
        guard let last = state.lastActivity, now.timeIntervalSince(last) > settings.sessionTTL else { return nil }
        state.loggedInAt = nil
        let expired = state.step
        state.step = .idle
        // (Set, never cleared, here: a second silence does not make the passcode typed after it any less one.)
        if expired.expectsPasscode { state.passcodeMayFollow = true }
        return expired == .idle ? nil : expired
    }

    func isLocked(_ account: Account, now: Date) -> Bool {
        account.lockedUntil.map { $0 > now } ?? false
    }

    // MARK: - Help and unknown words

    func helpText(_ state: ConversationState, _ account: Account?, now: Date) -> String {
        switch state.step {
        case .idle: break
        case .confirmingDelete, .confirmingBroadcast:
            // The prompt already says what YES and RESET do.
            return "You are confirming a \(state.step.flowName ?? "command"). \(Copy.prompt(for: state.step)) STOP opts out."
        default:
            let prompt = Copy.prompt(for: state.step)
            // (One text at every question: 160 characters at the registration's passcode.)
            return "You are in the \(state.step.flowName ?? "flow"). \(prompt)"
                + (prompt.contains("RESET") ? " STOP opts out." : " RESET leaves it, STOP opts out.")
        }
        guard let account else {
            return "Action2Phone, comrade: reply JOIN to register, LOGIN if you have an account, STOP to opt out. Msg&data rates may apply."
        }
        guard state.isLoggedIn else {
            if isLocked(account, now: now), let until = account.lockedUntil {
                // With a name of 40: 143 characters in UTC, 159 with the longest label ("Bahia Banderas time"): one text.
                return
                    "\(Copy.comrade(account.firstName, capitalized: true)): locked until \(settings.localTime.clock(until)) after wrong passcodes. LOGIN then, or ask an organiser. STOP opts out."
            }
            // (With a name of 40: 141 characters, one text.)
            return
                "\(Copy.comrade(account.firstName, capitalized: true)): reply LOGIN to log in, STOP to opt out. Forgot your passcode? Ask an organiser to reset it."
        }
        // RESET, which has nothing to do with no question open, is left out: an admin's HELP is 157 characters, one text.
        var text = "Reply MESSAGES, MORE, PROFILE, PASSCODE, LOGOUT or DELETE, comrade. STOP opts out."
        if account.role == .admin {
            text += " Admin: SEND <phone or email> <text>, BROADCAST <text>, USERS, FIND <text>."
        }
        return text
    }

    /// What to send next, in a few words: the pending question, or how to begin.
    func nextStep(_ state: ConversationState, _ account: Account?, now: Date) -> String {
        if state.step != .idle { return Copy.prompt(for: state.step) }
        guard let account else { return "Reply JOIN to register." }
        if state.isLoggedIn { return "Reply HELP for commands." }
        if isLocked(account, now: now), let until = account.lockedUntil { return "Reply LOGIN after \(settings.localTime.clock(until))." }
        return "Reply LOGIN to log in."
    }

    /// "Unknown command" with the closest command suggested. `echo` false: the text may be a passcode (any unknown
    /// text from a registered person), and is not repeated; the nearest command is still suggested, and an opt-out
    /// word it starts with is named (saying how to opt out matters more, and reveals no secret); a text that asks to
    /// opt out otherwise (`optingOut`) is told to send STOP. A locked account (at `now`) is told until when, rather
    /// than to log in.
    func unknownCommand(
        _ word: String,
        typed: String? = nil,
        echo: Bool = true,
        account: Account?,
        loggedIn: Bool = false,
        optingOut: Bool = false,
        now: Date? = nil
    ) -> String {
        let bare = Inbound.bare(word, lenient: true)
        if optOutWords.contains(bare) {
            return "Unknown command \(bare), comrade. To opt out, reply \(bare) alone: with other words it does not count. Reply HELP for commands."
        }
        if optingOut {
            return "Unknown command, comrade. To opt out, reply STOP alone: with other words it does not count. Reply HELP for commands."
        }
        let letters = Array(word)
        let hint = typoHint(word, typed: typed, echo: echo, isAdmin: account?.role == .admin)
        guard echo else {
            guard account != nil else { return "Unknown command, comrade.\(hint) Reply HELP for commands." }
            // A member's text that is no command is often a reply to an organiser's message ("Thanks!", "I'll be
            // there"): without a typo to point at, they are told no one reads it (an admin knows).
            let unread = hint.isEmpty && account?.role != .admin ? " " + Copy.repliesUnread : ""
            // Logged in, the person has no reason to be told why: "ok thanks" is simply not understood.
            guard !loggedIn else { return "Unknown command, comrade.\(hint)\(unread) Reply HELP for commands." }
            if let account, let now, isLocked(account, now: now) {
                // (Short: the lock's text with a city's time zone is up to 150 characters, and this is one text.)
                return "Not understood. " + Copy.locked(until: account.lockedUntil!, in: settings.localTime)
            }
            return
                "Unknown command, comrade (not repeated, in case it was your passcode).\(hint)\(unread) To log in, reply LOGIN; HELP lists commands."
        }
        // Echoed only in GSM-7: one character outside it (Cyrillic, an emoji) would make the whole reply UCS-2.
        let echoed = letters.count > 20 ? String(letters.prefix(20)) + "..." : word
        let unknown = Segments.count(echoed).encoding == .gsm7 ? "Unknown command \(echoed), comrade." : "Unknown command, comrade."
        return unknown + hint + " Reply HELP for commands."
    }

    /// " Did you mean PROFILE?" for a word near a command, else "". A text that is not echoed gets one only when it is
    /// too short to be a passcode (`typed`, the whole text: "stpo", "lgoin"): the reply is stored beside the redacted
    /// text, and "Did you mean PROFILE?" after "Profile9" or "profiles" would say what the passcode looks like (a
    /// passcode may come from anyone registered, logged in too, after "already logged in").
    func typoHint(_ word: String, typed: String?, echo: Bool, isAdmin: Bool) -> String {
        let letters = Array(word)
        guard letters.count >= 3, let suggestion = Self.nearestCommand(to: letters, isAdmin: isAdmin) else { return "" }
        guard echo || (typed ?? word).count < PasscodePolicy.lengths.lowerBound else { return "" }
        return " Did you mean \(suggestion)?"
    }

    /// The command or alias at most one edit from `letters` (two from a word of five letters or more), nearest
    /// first; among equally near ones the first in `Command.suggestable`, so a text always gets the same hint.
    static func nearestCommand(to letters: [Character], isAdmin: Bool) -> String? {
        let limit = letters.count <= 4 ? 1 : 2
        var best: (word: String, distance: Int)? = nil
        for candidate in Command.suggestable where isAdmin || !candidate.isAdminOnly {
            // STOP only for its own letters mistyped ("stpo", "nstop"): "step", "shop" or "top" pointed at it would
            // invite an opt-out nobody meant.
            if candidate.word == "STOP" && !Self.isMistypedStop(letters) { continue }
            // Words whose lengths differ by more than the limit are further apart than it: not measured.
            guard abs(candidate.letters.count - letters.count) <= limit else { continue }
            let distance = editDistance(letters, candidate.letters)
            if distance <= limit, distance < best?.distance ?? .max { best = (candidate.word, distance) }
        }
        return best?.word
    }
}

/// Slow work a text needs before its step can be decided.
public enum PasscodeWork: Sendable, Equatable {
    /// Hash a new passcode; with `unlike`, unless it is the passcode that hash was made from (a passcode change
    /// that would keep the old one).
    case hash(String, unlike: PasscodeHash? = nil)
    /// Check a passcode against a stored hash.
    case verify(String, against: PasscodeHash)
}

/// The outcome of `PasscodeWork`.
public enum PasscodeEvidence: Sendable, Equatable {
    case hashed(PasscodeHash)
    /// The new passcode is the one `unlike` was made from, the hash it was checked against: nothing was hashed.
    case reused(PasscodeHash)
    /// Whether the passcode matched, and the hash it was checked against (a hash that changed meanwhile
    /// makes the evidence stale).
    case verified(Bool, against: PasscodeHash)
    /// Nothing was checked: no hashing slot came free in time (a burst of logins). The question stays open.
    case busy
}

/// The working data of one `reduce` call.
struct StepContext {
    let input: Inbound
    let evidence: PasscodeEvidence?
    let facts: any ConversationFacts
    let now: Date
    let account: Account?
    var replies: [String] = []
    var effects: [Effect] = []

    init(input: Inbound, evidence: PasscodeEvidence?, facts: any ConversationFacts, now: Date, account: Account?) {
        self.input = input
        self.evidence = evidence
        self.facts = facts
        self.now = now
        self.account = account
    }

    mutating func reply(_ text: String) { replies.append(text) }
}
