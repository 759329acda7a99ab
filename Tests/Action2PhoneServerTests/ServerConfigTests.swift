import Action2PhoneCore
import Foundation
import Logging
import Testing
import TwilioKit

@testable import Action2PhoneServer

@Suite("Configuration: flag > environment > default")
struct ServerConfigTests {
    let db = testScratch.appendingPathComponent("a2p-cfg-\(UUID().uuidString)/x.sqlite").path
    let sid = "AC" + String(repeating: "0", count: 32)

    @Test func defaultsAreLocalModeWithADevToken() throws {
        let config = try ServerConfig.resolve(flags: [.database: db], environment: [:])
        #expect(config.isLocalMode)
        #expect(config.host == "127.0.0.1")
        #expect(config.port == 8080)
        #expect(config.replyMode == .twiml)
        #expect(config.sendRate == 1)
        #expect(config.sessionTTL == 1800)
        #expect(config.apiBaseURL == "https://api.twilio.com")
        #expect(config.passcodeIterations == 600_000)
        #expect(config.localTime == .utc)
        #expect(config.devTokenPath == db + ".dev-token")
        #expect(try DevToken.loadOrCreate(forDatabase: db) == config.authToken)
    }

    @Test func aLinkToTheDatabaseAndItsRealPathShareOneDevToken() throws {
        // Given a database and a symbolic link to it from another folder
        let real = try ServerConfig.resolve(flags: [.database: db], environment: [:])
        _ = try SQLiteStore.open(path: db)
        let link = testScratch.appendingPathComponent("a2p-cfg-link-\(UUID().uuidString)/l.sqlite").path
        try FileManager.default.createDirectory(atPath: (link as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: db)
        // When a command is given the link (serve, say, while chat is given the real path)
        let linked = try ServerConfig.resolve(flags: [.database: link], environment: [:])
        // Then both sign and check with the token beside the database itself, and none is made beside the link
        #expect(linked.authToken == real.authToken)
        #expect(linked.devTokenPath == db + ".dev-token")
        #expect(!FileManager.default.fileExists(atPath: link + ".dev-token"))
    }

    @Test func flagBeatsEnvironment() throws {
        let config = try ServerConfig.resolve(
            flags: [.database: db, .port: "9000", .replyMode: "rest"],
            environment: [
                "ACTION2PHONE_PORT": "7000", "ACTION2PHONE_REPLY_MODE": "twiml", "ACTION2PHONE_SEND_RATE": "2.5",
                "ACTION2PHONE_PUBLIC_URL": "https://bot.example.org/",
            ]
        )
        #expect(config.port == 9000)
        #expect(config.replyMode == .rest)
        #expect(config.sendRate == 2.5)
        #expect(config.publicURL == "https://bot.example.org")
    }

    @Test func theCredentialsNeverShowInHowTheServicesPrint() throws {
        // serve at debug level logs each service as "\(service)": the worker holds the REST client and its
        // Authorization header (the account SID and token in base64)
        let token = "tok-0123456789abcdef-secret"
        let config = try ServerConfig.resolve(
            flags: [.database: db],
            environment: ["TWILIO_ACCOUNT_SID": sid, "TWILIO_AUTH_TOKEN": token, "TWILIO_FROM_NUMBER": "+15005550006"]
        )
        let store = try SQLiteStore.open(path: db)
        let worker = OutboxWorker(config: config, store: store, logger: Logger(label: "test"))
        let gate = WebhookGate(config: config)
        var dumped = ""
        dump(worker, to: &dumped)
        dump(gate, to: &dumped)
        let basic = Crypto.base64(Array("\(sid):\(token)".utf8))
        for printed in ["\(worker)", String(reflecting: worker), "\(gate)", String(reflecting: gate), "\(config)", dumped] {
            #expect(!printed.contains(token) && !printed.contains(basic) && !printed.contains(String(basic.prefix(20))))
        }
        #expect("\(worker)".contains("TwilioRESTClient(baseURL: https://api.twilio.com"))
    }

    @Test func aBadValueIsNamedAsTheOperatorGaveIt() {
        let cases: [(ConfigKey, String)] = [
            (.sendRate, "0"), (.port, "99999"), (.replyMode, "x"), (.sessionTTL, "0"), (.publicURL, "ftp://x"), (.adminPhones, "junk"),
            (.timeZone, "Mars/Olympus_Mons"),
        ]
        for (key, bad) in cases {
            #expect(throws: ConfigError.self) { try ServerConfig.resolve(flags: [.database: db, key: bad], environment: [:]) }
            do {
                _ = try ServerConfig.resolve(flags: [.database: db, key: bad], environment: [:])
            } catch {
                #expect("\(error)".hasPrefix(key.flag!), "\(error)")
            }
            do {
                _ = try ServerConfig.resolve(flags: [.database: db], environment: [key.rawValue: bad])
            } catch {
                #expect("\(error)".hasPrefix(key.rawValue), "\(error)")
            }
        }
    }

    @Test func aDatabasePathEndingInASlashIsRefusedBeforeAnythingIsMadeThere() throws {
        // Given a database path that names a folder, by flag or by environment
        let folder = testScratch.appendingPathComponent("a2p-cfg-\(UUID().uuidString)").path
        let given: [([ConfigKey: String], [String: String], String)] = [
            ([.database: folder + "/"], [:], "--db"), ([:], ["ACTION2PHONE_DB": folder + "/"], "ACTION2PHONE_DB"),
        ]
        for (flags, environment, name) in given {
            // Then it is refused, named as given, and no folder or development token is made for it
            #expect(throws: ConfigError("\(name) ends in /, which names a folder: give the database file's path, such as db/action2phone.sqlite")) {
                try ServerConfig.resolve(flags: flags, environment: environment)
            }
        }
        #expect(!FileManager.default.fileExists(atPath: folder))
    }

    @Test func aRefusedSettingLeavesNoDevelopmentTokenBehind() throws {
        // Given local mode and a bad setting
        let given: [[String: String]] = [
            ["ACTION2PHONE_PORT": "99999"], ["ACTION2PHONE_SEND_RATE": "fast"], ["ACTION2PHONE_TIME_ZONE": "Mars/Olympus"],
            ["ACTION2PHONE_PBKDF2_ITERATIONS": "0"],
        ]
        for environment in given {
            // Then the start is refused, and neither the token nor its folder is made
            #expect(throws: ConfigError.self) { try ServerConfig.resolve(flags: [.database: db], environment: environment) }
            #expect(!FileManager.default.fileExists(atPath: db + ".dev-token"))
            #expect(!FileManager.default.fileExists(atPath: (db as NSString).deletingLastPathComponent))
        }
        // And once the settings are good, the token is made and used
        let config = try ServerConfig.resolve(flags: [.database: db], environment: ["ACTION2PHONE_PORT": "8081"])
        #expect(config.devTokenPath == db + ".dev-token")
        #expect(try DevToken.loadOrCreate(forDatabase: db) == config.authToken)
    }
    @Test func aPublicURLEndingInTheWebhooksPathIsRefusedWithTheBase() throws {
        // The webhook's URL pasted from the Twilio Console: signatures would be checked against …/sms/sms
        for pasted in ["https://bot.example.org/sms", "https://bot.example.org/sms/", "https://u:pw@bot.example.org/a2p/SMS/status"] {
            #expect {
                try ServerConfig.resolve(flags: [.database: db, .publicURL: pasted], environment: [:])
            } throws: { error in
                let text = "\(error)"
                return text.hasPrefix("--public-url is the base URL, without /sms") && text.contains("give https://")
                    && !text.contains("pw@")
            }
        }
        // A base whose host or path only contains sms stays as it is
        for base in ["https://sms", "https://sms.example.org", "https://bot.example.org/smsbot"] {
            #expect(try ServerConfig.resolve(flags: [.database: db], environment: ["ACTION2PHONE_PUBLIC_URL": base]).publicURL == base)
        }
    }

    @Test func aPublicURLWhoseHostHasAnUnderscoreIsRefused() throws {
        // Twilio refuses a callback URL whose host name has one: no delivery report would ever arrive
        for url in ["https://my_bot.example.org", "https://u:pw@my_bot.example.org:8443/a2p"] {
            #expect {
                try ServerConfig.resolve(flags: [.database: db, .publicURL: url], environment: [:])
            } throws: { error in
                "\(error)".contains("host 'my_bot.example.org' has an underscore") && !"\(error)".contains("pw")
            }
        }
        // while one in the path or the user name is fine
        for url in ["https://bot.example.org/my_bot", "https://my_user@bot.example.org"] {
            #expect(try ServerConfig.resolve(flags: [.database: db, .publicURL: url], environment: [:]).publicURL == url)
        }
        // And a malformed URL with a password in it is refused without showing the password
        #expect {
            try ServerConfig.resolve(flags: [.database: db, .publicURL: "ftp://u:S3cretPw@bot.example.org"], environment: [:])
        } throws: { error in
            !"\(error)".contains("S3cretPw")
        }
    }

    @Test func aSecretPastedIntoTheWrongVariableIsNotQuotedBack() {
        let token = "f00dface" + String(repeating: "0123", count: 6)
        #expect {
            try ServerConfig.resolve(
                flags: [.database: db],
                environment: ["TWILIO_FROM_NUMBER": token, "TWILIO_ACCOUNT_SID": sid, "TWILIO_AUTH_TOKEN": "t"]
            )
        } throws: { error in
            "\(error)".contains("'f00d… (32 characters, not shown)' is not a phone number") && !"\(error)".contains(token)
        }
        // nor one pasted into a URL variable
        #expect {
            try ServerConfig.resolve(flags: [.database: db], environment: ["ACTION2PHONE_PUBLIC_URL": token])
        } throws: { error in
            "\(error)".contains("must start with http") && !"\(error)".contains(token)
        }
        // while what is plainly not a secret is quoted as it is
        #expect(ServerConfig.shown("fast") == "fast" && ServerConfig.shown("America/New_Yrok") == "America/New_Yrok")
    }

    @Test func plainHTTPToAnotherMachineIsWarnedAbout() throws {
        func warning(_ base: String) throws -> String? {
            try ServerConfig.resolve(
                flags: [.database: db],
                environment: ["TWILIO_ACCOUNT_SID": sid, "TWILIO_AUTH_TOKEN": "t", "TWILIO_FROM_NUMBER": "+15005550006", "TWILIO_API_BASE_URL": base]
            ).plainHTTPWarning
        }
        #expect(try warning("http://api.example.com")?.contains("plain http to api.example.com") == true)
        #expect(try warning("http://127.example.com")?.contains("plain http to 127.example.com") == true)
        for quiet in ["https://api.twilio.com", "http://127.0.0.1:9000", "http://127.1.2.3", "http://localhost:9000/x", "http://[::1]:9000"] {
            #expect(try warning(quiet) == nil, "\(quiet)")
        }
    }

    @Test func aPasswordInAURLIsNeverShown() {
        #expect(ServerConfig.displayed("https://twuser:S3cretPw@bot.example.org/sms?x=a@b") == "https://twuser:***@bot.example.org/sms?x=a@b")
        #expect(ServerConfig.displayed("https://twuser@bot.example.org") == "https://twuser@bot.example.org")
        #expect(ServerConfig.displayed("https://bot.example.org/sms?to=a:b@c") == "https://bot.example.org/sms?to=a:b@c")
        #expect(WebhookGate.loggable("https://u:p%40ss@bot.example.org/sms") == "https://u:***@bot.example.org/sms")
    }

    @Test func aRegionWithoutTwiMLRepliesNeedsTheRESTReplyMode() throws {
        let twilio = ["TWILIO_ACCOUNT_SID": sid, "TWILIO_AUTH_TOKEN": "tok", "TWILIO_FROM_NUMBER": "+14155550100"]
        // Given an account in Ireland or Australia, where <Message> TwiML is not available
        for base in ["https://api.dublin.ie1.twilio.com", "https://api.sydney.au1.twilio.com/"] {
            var environment = twilio
            environment["TWILIO_API_BASE_URL"] = base
            // Then replies in TwiML (the default, or set) are refused, naming what to set
            for mode in [nil, "twiml"] {
                environment["ACTION2PHONE_REPLY_MODE"] = mode
                #expect(throws: ConfigError.self) { try ServerConfig.resolve(flags: [.database: db], environment: environment) }
            }
            do {
                _ = try ServerConfig.resolve(flags: [.database: db], environment: environment)
            } catch let error as ConfigError {
                #expect(error.description.contains("where a reply in the webhook's TwiML (<Message>) is not sent: set ACTION2PHONE_REPLY_MODE=rest"))
            }
            // And replies through the outbox are taken
            environment["ACTION2PHONE_REPLY_MODE"] = "rest"
            #expect(try ServerConfig.resolve(flags: [.database: db], environment: environment).replyMode == .rest)
            // (chat and replay send nothing: they are not refused)
            environment["ACTION2PHONE_REPLY_MODE"] = nil
            #expect(try ServerConfig.resolve(flags: [.database: db], environment: environment, requireSender: false).replyMode == .twiml)
        }
        // US1, named or not, and a local stand-in keep TwiML replies
        for base in ["https://api.twilio.com", "https://api.virginia.us1.twilio.com", "http://127.0.0.1:9999"] {
            var environment = twilio
            environment["TWILIO_API_BASE_URL"] = base
            #expect(try ServerConfig.resolve(flags: [.database: db], environment: environment).replyMode == .twiml)
        }
    }

    @Test func twilioModeNeedsBothCredentialsAndASender() throws {
        #expect(throws: ConfigError.self) { try ServerConfig.resolve(flags: [.database: db], environment: ["TWILIO_ACCOUNT_SID": sid]) }
        #expect(throws: ConfigError.self) { try ServerConfig.resolve(flags: [.database: db], environment: ["TWILIO_AUTH_TOKEN": "t"]) }
        // (The account given as a flag is named as the flag)
        #expect(throws: ConfigError("--account-sid is set but TWILIO_AUTH_TOKEN is not: set both for Twilio, or neither for local mode")) {
            try ServerConfig.resolve(flags: [.database: db, .accountSid: sid], environment: [:])
        }
        #expect(throws: ConfigError.self) {
            try ServerConfig.resolve(flags: [.database: db], environment: ["TWILIO_ACCOUNT_SID": sid, "TWILIO_AUTH_TOKEN": "t"])
        }
        let config = try ServerConfig.resolve(
            flags: [.database: db],
            environment: [
                "TWILIO_ACCOUNT_SID": sid, "TWILIO_AUTH_TOKEN": "tok", "TWILIO_AUTH_TOKEN_SECONDARY": "tok2", "TWILIO_FROM_NUMBER": "(415) 555-0100",
            ]
        )
        #expect(!config.isLocalMode)
        #expect(config.fromNumber == "+14155550100")
        #expect(config.webhookTokens.map { $0.reveal() } == ["tok", "tok2"])
        #expect(!FileManager.default.fileExists(atPath: db + ".dev-token"))
        #expect(config.ignoredSecondaryTokenWarning == nil)
        // A short code (5 or 6 digits) is refused, saying why: Twilio does not answer STOP for a standalone one, and
        // this server leaves that to Twilio (twilio.md §7); other runs of digits are no number
        let twilio = ["TWILIO_ACCOUNT_SID": sid, "TWILIO_AUTH_TOKEN": "tok"]
        for code in ["898287", "12345"] {
            #expect {
                try ServerConfig.resolve(flags: [.database: db], environment: twilio.merging(["TWILIO_FROM_NUMBER": code]) { $1 })
            } throws: { error in
                "\(error)".contains("'\(code)' is a short code: Twilio does not answer STOP for a standalone short code")
                    && "\(error)".contains("TWILIO_MESSAGING_SERVICE_SID")
            }
        }
        // A number and a Messaging Service both set are refused, whichever way each was given; an empty flag clears one
        let service = "MG" + String(repeating: "a", count: 32)
        let both = twilio.merging(["TWILIO_FROM_NUMBER": "+14155550100", "TWILIO_MESSAGING_SERVICE_SID": service]) { $1 }
        for (flags, environment, named) in [
            ([ConfigKey: String](), both, "TWILIO_FROM_NUMBER and TWILIO_MESSAGING_SERVICE_SID are both set: set one."),
            (
                [.messagingServiceSid: service], twilio.merging(["TWILIO_FROM_NUMBER": "+14155550100"]) { $1 },
                "TWILIO_FROM_NUMBER and --messaging-service-sid are both set"
            ),
        ] {
            #expect {
                try ServerConfig.resolve(flags: flags.merging([.database: db]) { $1 }, environment: environment)
            } throws: { error in
                "\(error)".contains(named)
            }
        }
        // (but not by the tools that send nothing: chat, replay, users reset-passcode)
        #expect(try ServerConfig.resolve(flags: [.database: db], environment: both, requireSender: false).fromNumber == "+14155550100")
        let cleared = try ServerConfig.resolve(flags: [.database: db, .fromNumber: ""], environment: both)
        #expect(cleared.fromNumber == nil && cleared.messagingServiceSid == service)
        for digits in ["1234", "1234567"] {
            #expect(throws: ConfigError("TWILIO_FROM_NUMBER '\(digits)' is not a phone number")) {
                try ServerConfig.resolve(flags: [.database: db], environment: twilio.merging(["TWILIO_FROM_NUMBER": digits]) { $1 })
            }
        }
        // In local mode the development token alone signs webhooks: a secondary token left in the environment is
        // no other key to the server, and serve says it is ignored
        let local = try ServerConfig.resolve(flags: [.database: db], environment: ["TWILIO_AUTH_TOKEN_SECONDARY": "tok2"])
        #expect(local.isLocalMode)
        #expect(
            local.webhookTokens.map { $0.reveal() } == [
                try String(contentsOfFile: db + ".dev-token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            ]
        )
        #expect(local.ignoredSecondaryTokenWarning?.contains("TWILIO_AUTH_TOKEN_SECONDARY is ignored in local mode") == true)
    }

    @Test(arguments: [
        ["ACTION2PHONE_PORT": "70000"], ["ACTION2PHONE_PORT": "http"], ["ACTION2PHONE_REPLY_MODE": "sms"], ["ACTION2PHONE_SEND_RATE": "0"],
        ["ACTION2PHONE_SEND_RATE": "0x10"], ["ACTION2PHONE_SEND_RATE": "1e3"], ["ACTION2PHONE_SESSION_TTL": "-5"],
        ["ACTION2PHONE_ADMIN_PHONES": "+14155550100, nobody"], ["ACTION2PHONE_PUBLIC_URL": "bot.example.org"],
        ["ACTION2PHONE_PUBLIC_URL": "https://bot.example.org/sms?x=1"],
        ["TWILIO_ACCOUNT_SID": "AC123", "TWILIO_AUTH_TOKEN": "t", "TWILIO_FROM_NUMBER": "+14155550100"],
        ["TWILIO_ACCOUNT_SID": "AC 0000000000000000000000000000000", "TWILIO_AUTH_TOKEN": "t", "TWILIO_FROM_NUMBER": "+14155550100"],
        ["ACTION2PHONE_PBKDF2_ITERATIONS": "3000000000"], ["TWILIO_MESSAGING_SERVICE_SID": "MG x/../"],
    ])
    func badValuesAreRefusedWithTheirName(_ environment: [String: String]) {
        do {
            _ = try ServerConfig.resolve(flags: [.database: db], environment: environment)
            Issue.record("accepted \(environment)")
        } catch let error as ConfigError {
            #expect(environment.keys.contains { error.description.contains($0) })
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func theTimeZoneIsNamedInAnyCaseAndAnUnknownOneSaysWhatIsWanted() throws {
        let config = try ServerConfig.resolve(flags: [.database: db], environment: ["ACTION2PHONE_TIME_ZONE": " america/new_york "])
        #expect(config.localTime.name == "America/New_York")
        let flag = try ServerConfig.resolve(flags: [.database: db, .timeZone: "Europe/London"], environment: ["ACTION2PHONE_TIME_ZONE": "UTC"])
        #expect(flag.localTime.name == "Europe/London")
        #expect(
            throws: ConfigError(
                "ACTION2PHONE_TIME_ZONE must be a time zone name from the IANA list, such as America/New_York, Europe/London or UTC (got 'EST+5')"
            )
        ) {
            try ServerConfig.resolve(flags: [.database: db], environment: ["ACTION2PHONE_TIME_ZONE": "EST+5"])
        }
    }

    @Test func adminPhonesAreNormalized() throws {
        let config = try ServerConfig.resolve(flags: [.database: db], environment: ["ACTION2PHONE_ADMIN_PHONES": "703-123-4567, +14155550100"])
        #expect(config.adminPhones == ["+17031234567", "+14155550100"])
    }
}
