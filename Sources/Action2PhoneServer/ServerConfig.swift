// SPDX-License-Identifier: Apache-2.0
import Action2PhoneCore
import Foundation
import TwilioKit

/// Everything `serve` needs, resolved once from flags, the environment and defaults (in that order).
public struct ServerConfig: Sendable {
    public var accountSid: String?
    public var authToken: Secret
    public var secondaryAuthToken: Secret?
    public var fromNumber: String?
    public var messagingServiceSid: String?
    public var apiBaseURL: String
    /// The public base URL Twilio calls, without a trailing slash; `nil` to rebuild it per request.
    public var publicURL: String?
    public var databasePath: String
    public var host: String
    public var port: Int
    public var replyMode: ReplyMode
    public var sendRate: Double
    public var sessionTTL: TimeInterval
    public var adminPhones: [String]
    /// The zone of the times and dates the bot texts (`ACTION2PHONE_TIME_ZONE`, UTC by default).
    public var localTime: LocalTime = .utc

    /// Said by `serve` and `users reset-passcode` when passcodes would be hashed with fewer iterations than production's.
    public var weakHashingWarning: String? {
        guard passcodeIterations < PasscodePolicy.productionIterations else { return nil }
        return "PBKDF2 at \(passcodeIterations) iterations (ACTION2PHONE_PBKDF2_ITERATIONS): for tests only"
    }
    /// Said by `serve` in local mode when `TWILIO_AUTH_TOKEN_SECONDARY` is set: webhooks signed with it are refused.
    public var ignoredSecondaryTokenWarning: String? {
        ignoredSecondaryToken
            ? "TWILIO_AUTH_TOKEN_SECONDARY is ignored in local mode: webhooks are checked against the development token only"
            : nil
    }
    /// Said by `serve` when the REST API is reached over plain HTTP at another machine: the auth token would cross the
    /// network unencrypted (a fake API on this machine, for tests, is fine).
    public var plainHTTPWarning: String? {
        guard !isLocalMode, apiBaseURL.lowercased().hasPrefix("http://") else { return nil }
        let host = Self.host(of: apiBaseURL)
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        let isLoopbackIPv4 = octets.count == 4 && octets.first == "127" && octets.allSatisfy { UInt8($0) != nil }
        guard !["localhost", "::1"].contains(host.lowercased()), !isLoopbackIPv4 else { return nil }
        return "TWILIO_API_BASE_URL is plain http to \(host): the auth token crosses the network unencrypted (use https)"
    }
    public var passcodeIterations: Int
    /// No Twilio credentials: a generated development token, and nothing is sent.
    public var isLocalMode: Bool
    /// Where the development token lives in local mode.
    public var devTokenPath: String?
    /// How long a webhook's body may take to arrive, in all (408 after it). Not a setting: Twilio sends a small body at
    /// once, and waits 15 s for the whole answer. (Tests shorten it.)
    public var bodyDeadline: Duration = .seconds(10)
    /// Local mode with `TWILIO_AUTH_TOKEN_SECONDARY` set: not used.
    public var ignoredSecondaryToken = false

    /// The tokens webhook signatures are checked against, primary first.
    public var webhookTokens: [Secret] { [authToken] + (secondaryAuthToken.map { [$0] } ?? []) }

    /// A configuration for tests and tools: local mode with the given token.
    public init(
        authToken: Secret,
        accountSid: String? = nil,
        isLocalMode: Bool = true,
        databasePath: String = "db/action2phone.sqlite",
        publicURL: String? = nil,
        host: String = "127.0.0.1",
        port: Int = 8080,
        replyMode: ReplyMode = .twiml,
        sendRate: Double = 1,
        sessionTTL: TimeInterval = 1800,
        adminPhones: [String] = [],
        passcodeIterations: Int = PasscodePolicy.productionIterations
    ) {
        self.accountSid = accountSid
        self.authToken = authToken
        self.secondaryAuthToken = nil
        self.fromNumber = nil
        self.messagingServiceSid = nil
        self.apiBaseURL = "https://api.twilio.com"
        self.publicURL = publicURL
        self.databasePath = databasePath
        self.host = host
        self.port = port
        self.replyMode = replyMode
        self.sendRate = sendRate
        self.sessionTTL = sessionTTL
        self.adminPhones = adminPhones
        self.passcodeIterations = passcodeIterations
        self.isLocalMode = isLocalMode
        self.devTokenPath = nil
    }
}

/// The configuration names of SPEC §2, as `serve` flags or environment variables.
public enum ConfigKey: String, CaseIterable, Sendable {
    case accountSid = "TWILIO_ACCOUNT_SID"
    case authToken = "TWILIO_AUTH_TOKEN"
    case secondaryAuthToken = "TWILIO_AUTH_TOKEN_SECONDARY"
    case fromNumber = "TWILIO_FROM_NUMBER"
    case messagingServiceSid = "TWILIO_MESSAGING_SERVICE_SID"
    case apiBaseURL = "TWILIO_API_BASE_URL"
    case publicURL = "ACTION2PHONE_PUBLIC_URL"
    case database = "ACTION2PHONE_DB"
    case host = "ACTION2PHONE_HOST"
    case port = "ACTION2PHONE_PORT"
    case replyMode = "ACTION2PHONE_REPLY_MODE"
    case sendRate = "ACTION2PHONE_SEND_RATE"
    case sessionTTL = "ACTION2PHONE_SESSION_TTL"
    case adminPhones = "ACTION2PHONE_ADMIN_PHONES"
    /// Not in SPEC §2: the organisation's time zone for times and dates in texts.
    case timeZone = "ACTION2PHONE_TIME_ZONE"
    /// Not in SPEC §2: lowers PBKDF2's cost for tests and benchmarks only.
    case passcodeIterations = "ACTION2PHONE_PBKDF2_ITERATIONS"

    /// `serve`'s flag for this setting, if it has one.
    public var flag: String? {
        switch self {
        case .accountSid: "--account-sid"
        case .fromNumber: "--from-number"
        case .messagingServiceSid: "--messaging-service-sid"
        case .apiBaseURL: "--api-base-url"
        case .publicURL: "--public-url"
        case .database: "--db"
        case .host: "--host"
        case .port: "--port"
        case .replyMode: "--reply-mode"
        case .sendRate: "--send-rate"
        case .sessionTTL: "--session-ttl"
        case .adminPhones: "--admin-phones"
        case .timeZone: "--time-zone"
        case .authToken, .secondaryAuthToken, .passcodeIterations: nil
        }
    }
}

/// A configuration value that cannot be used, with what to do about it.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension ServerConfig {
    /// `key`'s value, flag > environment, white space around it dropped; nil when neither gives one.
    static func value(_ key: ConfigKey, flags: [ConfigKey: String], environment: [String: String]) -> String? {
        let v = flags[key] ?? environment[key.rawValue]
        guard let v = v?.trimmingWhitespace(), !v.isEmpty else { return nil }
        return v
    }

    /// The database's path as `resolve` takes it, without resolving anything else.
    public static func databasePath(flags: [ConfigKey: String], environment: [String: String]) -> String {
        value(.database, flags: flags, environment: environment) ?? "db/action2phone.sqlite"
    }

    /// Resolves flag > environment > default. `flags` holds only the flags given on the command line.
    /// In local mode (no Twilio credentials) the development token is read or created next to the database.
    /// `requireSender: false` for tools that only sign webhooks or run the conversation in-process (they send nothing).
    public static func resolve(flags: [ConfigKey: String], environment: [String: String], requireSender: Bool = true) throws -> ServerConfig {
        func value(_ key: ConfigKey) -> String? { Self.value(key, flags: flags, environment: environment) }
        /// Where a bad value came from, as the operator wrote it: the flag, or else the environment variable.
        func name(_ key: ConfigKey) -> String { flags[key] != nil ? key.flag ?? key.rawValue : key.rawValue }
        let databasePath = Self.databasePath(flags: flags, environment: environment)
        if databasePath.hasSuffix("/") {
            throw ConfigError("\(name(.database)) ends in /, which names a folder: give the database file's path, such as db/action2phone.sqlite")
        }
        let accountSid = value(.accountSid)
        let token = value(.authToken)
        if (accountSid == nil) != (token == nil) {
            throw ConfigError(
                accountSid == nil
                    ? "TWILIO_AUTH_TOKEN is set but \(name(.accountSid)) is not: set both for Twilio, or neither for local mode"
                    : "\(name(.accountSid)) is set but TWILIO_AUTH_TOKEN is not: set both for Twilio, or neither for local mode"
            )
        }
        if let accountSid,
            !(accountSid.hasPrefix("AC") && accountSid.count == 34 && accountSid.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) })
        {
            throw ConfigError(
                "\(name(.accountSid)) must be the 34-character account SID, AC followed by 32 letters or digits (got \(accountSid.count) characters)"
            )
        }
        let local = accountSid == nil
        // (Local mode's development token is read or made last, once every setting has passed: a refused start leaves
        // no file behind.)
        var config = ServerConfig(authToken: Secret(token ?? ""), accountSid: accountSid, isLocalMode: local, databasePath: databasePath)
        // Local mode checks webhooks against its development token alone (SPEC §2): a secondary token left in the
        // environment is not another key to it, and `serve` says it is ignored.
        if local {
            config.ignoredSecondaryToken = value(.secondaryAuthToken) != nil
        } else {
            config.secondaryAuthToken = value(.secondaryAuthToken).map(Secret.init)
        }
        config.fromNumber = try value(.fromNumber).map { raw in
            // Twilio does not answer STOP and HELP for a standalone short code (twilio.md §7), and this server leaves
            // the STOP confirmation to Twilio: a short code sends through a Messaging Service with Advanced Opt-Out.
            if Self.isShortCode(raw) {
                throw ConfigError(
                    "\(name(.fromNumber)) '\(raw)' is a short code: Twilio does not answer STOP for a standalone short code, and this server leaves that to Twilio; put it in a Messaging Service with Advanced Opt-Out and set TWILIO_MESSAGING_SERVICE_SID instead"
                )
            }
            guard let e164 = PhoneNumber.normalize(raw) else { throw ConfigError("\(name(.fromNumber)) '\(shown(raw))' is not a phone number") }
            return e164
        }
        config.messagingServiceSid = try value(.messagingServiceSid).map { sid in
            guard sid.hasPrefix("MG"), sid.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else {
                throw ConfigError("\(name(.messagingServiceSid)) must start with MG and hold only letters and digits (got '\(shown(sid))')")
            }
            return sid
        }
        // Both would leave one unused without a word: the number, with the Messaging Service's own settings (its
        // Advanced Opt-Out among them) silently bypassed, or the reverse. (Only where texts are sent from: `chat`,
        // `replay` and `users reset-passcode` send nothing.)
        if requireSender && config.fromNumber != nil && config.messagingServiceSid != nil {
            throw ConfigError(
                "\(name(.fromNumber)) and \(name(.messagingServiceSid)) are both set: set one. Texts go from the number, or through the Messaging Service, which picks from its own numbers (for serve, an empty flag, --from-number '' or --messaging-service-sid '', clears the environment's)"
            )
        }
        if requireSender && !local && config.fromNumber == nil && config.messagingServiceSid == nil {
            throw ConfigError("set TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID: REST sends need a sender")
        }
        config.apiBaseURL = try url(value(.apiBaseURL) ?? "https://api.twilio.com", name: name(.apiBaseURL))
        config.publicURL = try value(.publicURL).map { try publicURL($0, name: name(.publicURL)) }
        config.host = value(.host) ?? "127.0.0.1"
        if let raw = value(.port) {
            guard let port = Int(raw), (0...65535).contains(port) else { throw ConfigError("\(name(.port)) must be 0...65535 (got '\(shown(raw))')") }
            config.port = port
        }
        if let raw = value(.replyMode) {
            guard let mode = ReplyMode(rawValue: raw.lowercased()) else {
                throw ConfigError("\(name(.replyMode)) must be twiml or rest (got '\(shown(raw))')")
            }
            config.replyMode = mode
        }
        // `<Message>` TwiML is not available outside US1 (twilio.md §5): an account whose API host names another region
        // would have every reply given in the webhook's response dropped without a word.
        if requireSender, !local, config.replyMode == .twiml, let region = Self.twilioRegion(ofAPI: config.apiBaseURL), region != "us1" {
            throw ConfigError(
                "\(name(.apiBaseURL)) is in Twilio's \(region.uppercased()) region, where a reply in the webhook's TwiML (<Message>) is not sent: set ACTION2PHONE_REPLY_MODE=rest (replies through the outbox)"
            )
        }
        if let raw = value(.sendRate) {
            // Decimal only: Double also reads hexadecimal ("0x10" is 16).
            guard raw.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }), let rate = Double(raw), rate >= 0.01, rate <= 10_000 else {
                throw ConfigError("\(name(.sendRate)) must be a number of messages per second from 0.01 to 10000 (got '\(shown(raw))')")
            }
            config.sendRate = rate
        }
        if let raw = value(.sessionTTL) {
            guard let ttl = Int(raw), ttl > 0 else {
                throw ConfigError("\(name(.sessionTTL)) must be a whole number of seconds above 0 (got '\(shown(raw))')")
            }
            config.sessionTTL = TimeInterval(ttl)
        }
        if let raw = value(.adminPhones) {
            config.adminPhones = try raw.split(separator: ",").map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }.map { phone in
                guard let e164 = PhoneNumber.normalize(phone) else {
                    throw ConfigError("\(name(.adminPhones)): '\(shown(phone))' is not a phone number")
                }
                return e164
            }
        }
        if let raw = value(.timeZone) {
            guard let time = LocalTime(named: raw) else {
                throw ConfigError(
                    "\(name(.timeZone)) must be a time zone name from the IANA list, such as America/New_York, Europe/London or UTC (got '\(shown(raw))')"
                )
            }
            config.localTime = time
        }
        if let raw = value(.passcodeIterations) {
            guard let n = Int(raw), PasscodePolicy.iterationRange.contains(n) else {
                throw ConfigError("ACTION2PHONE_PBKDF2_ITERATIONS must be a whole number from 1 to 10000000 (got '\(shown(raw))')")
            }
            config.passcodeIterations = n
        }
        if local {
            config.authToken = try DevToken.loadOrCreate(forDatabase: databasePath)
            config.devTokenPath = DevToken.path(forDatabase: databasePath)
        }
        return config
    }

    /// The base URL Twilio reaches the server at. The webhook's URL pasted from the Twilio Console (`…/sms`) is
    /// refused: signatures would be checked against `…/sms/sms`, and every webhook refused.
    static func publicURL(_ raw: String, name: String) throws -> String {
        let base = try url(raw, name: name)
        for route in ["/sms", "/sms/status"]
        where base.lowercased().hasSuffix(route) && base.split(separator: "/").count >= 2 + route.split(separator: "/").count {
            let suggested = String(base.dropLast(route.count))
            throw ConfigError(
                "\(name) is the base URL, without \(route): the webhook's URL is it followed by /sms (got '\(displayed(raw))', which would make it \(displayed(base))/sms; give \(displayed(suggested)))"
            )
        }
        // Twilio: a status callback URL "must contain a valid hostname. Underscores are not allowed." (twilio.md §4)
        let host = Self.host(of: base)
        if host.contains("_") {
            throw ConfigError(
                "\(name)'s host '\(host)' has an underscore, which Twilio refuses in a webhook or status callback URL: use a host name without one"
            )
        }
        return base
    }

    /// An http(s) base URL without a trailing slash, query or fragment.
    static func url(_ raw: String, name: String) throws -> String {
        var s = raw
        let lower = s.lowercased()
        guard lower.hasPrefix("http://") || lower.hasPrefix("https://") else {
            throw ConfigError("\(name) must start with http:// or https:// (got '\(shown(displayed(raw)))')")
        }
        guard !s.contains("?"), !s.contains("#"), !s.contains(" ") else {
            throw ConfigError("\(name) must be a base URL without query, fragment or spaces (got '\(shown(displayed(raw)))')")
        }
        while s.hasSuffix("/") { s.removeLast() }
        guard s.split(separator: "/").count >= 2 else { throw ConfigError("\(name) has no host (got '\(shown(displayed(raw)))')") }
        return s
    }
}

extension ServerConfig {
    /// The region a Twilio API host names (`api.dublin.ie1.twilio.com`: `ie1`); nil for `api.twilio.com` (US1) and
    /// for any other host.
    static func twilioRegion(ofAPI url: String) -> String? {
        let labels = host(of: url).lowercased().split(separator: ".")
        guard labels.count >= 4, labels.suffix(2) == ["twilio", "com"] else { return nil }
        let region = labels[labels.count - 3]
        guard region.count == 3, region.prefix(2).allSatisfy(\.isLetter), region.last!.isNumber else { return nil }
        return String(region)
    }

    /// The host of an http(s) URL, without the user, the port or an IPv6 address's brackets.
    static func host(of url: String) -> String {
        let authority = url.drop { $0 != "/" }.dropFirst(2).prefix { $0 != "/" }
        let host = authority.split(separator: "@").last ?? ""
        return String(host.hasPrefix("[") ? host.dropFirst().prefix { $0 != "]" } : host.prefix { $0 != ":" })
    }

    /// A value from the environment as an error may quote it: one that looks like a secret pasted into the wrong
    /// variable (20 or more letters and digits, such as an auth token) shows only its first four characters.
    public static func shown(_ raw: String) -> String {
        guard raw.count >= 20, raw.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else { return raw }
        return raw.prefix(4) + "… (\(raw.count) characters, not shown)"
    }

    /// Whether `sender` is a short code: 5 or 6 ASCII digits (twilio.com/docs/sms/api/short-codes).
    static func isShortCode(_ sender: String) -> Bool {
        (5...6).contains(sender.utf8.count) && sender.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }

    /// `url` as it may be printed or logged: a password in it (`https://user:pass@host`, which Twilio supports for
    /// HTTP basic auth) becomes `***`.
    public static func displayed(_ url: String) -> String { URLPassword.masked(url) }
}
