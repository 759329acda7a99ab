// SPDX-License-Identifier: Apache-2.0
import Action2PhoneCore
import Action2PhoneServer
import ArgumentParser
import Foundation
import TwilioKit

/// `action2phone doctor`
struct Doctor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check what a live deployment needs: credentials accepted, the sender on the account, its SMS webhook URL."
    )
    @OptionGroup var store: StoreOptions

    func run() async throws {
        _ = try store.open()  // every subcommand opens and migrates --db
        var failures = 0
        func ok(_ s: String) { print("ok    \(s)") }
        func fail(_ s: String, fix: String) {
            failures += 1
            print("FAIL  \(s)\n      fix: \(fix)")
        }
        let environment = ProcessInfo.processInfo.environment
        let config: ServerConfig
        do {
            config = try ServerConfig.resolve(flags: [.database: store.path], environment: environment)
        } catch let error as ConfigError {
            fail("configuration: \(error.description)", fix: "correct the variable named above")
            throw CLIError("the configuration is not usable")
        }
        do {
            _ = try parseLogLevel(flag: nil, environment: environment["LOG_LEVEL"])
        } catch let error as ValidationError {
            fail("configuration: \(error.message)", fix: "correct LOG_LEVEL or unset it (info)")
        }
        // (The port is not tried: the server being checked may well be listening on it.)
        if !Self.isAddressOfThisMachine(config.host) {
            fail(
                "ACTION2PHONE_HOST \(config.host) is no address of this machine: serve could not listen on it",
                fix: "set ACTION2PHONE_HOST to one of this machine's addresses (127.0.0.1 behind a proxy on the same machine, 0.0.0.0 for all)"
            )
        }
        guard !config.isLocalMode, let accountSid = config.accountSid else {
            fail(
                "no Twilio credentials: the server would run in local mode and send nothing",
                fix: "export TWILIO_ACCOUNT_SID (AC…) and TWILIO_AUTH_TOKEN from the Twilio Console"
            )
            throw CLIError("no Twilio credentials")
        }
        ok("credentials present for account \(accountSid)")
        let sender: TwilioRESTClient.Sender = config.fromNumber.map { .number($0) } ?? .messagingService(config.messagingServiceSid ?? "")
        let client = TwilioRESTClient(baseURL: config.apiBaseURL, accountSid: accountSid, authToken: config.authToken.reveal(), sender: sender)

        var accountRead = true
        switch await client.fetchAccount() {
        case .success(let account) where account.status.map({ $0 != "active" }) ?? false:
            fail(
                "the account \(account.friendlyName ?? account.sid) is \(account.status ?? ""): Twilio sends nothing from it",
                fix: "reactivate the account in the Twilio Console, or use the credentials of an active one"
            )
        case .success(let account):
            ok("the REST API accepts the credentials (\(account.friendlyName ?? account.sid), \(account.status ?? "status unknown"))")
        case .failure(.http(let status, let code, let message, _, _)) where status == 401 || status == 403:
            accountRead = false
            fail(
                "the REST API refused the credentials: HTTP \(status)\(code.map { " code \($0)" } ?? ""): \(message)",
                fix: "copy the Account SID and the primary Auth Token again from the Console (test credentials do not work here)"
            )
        case .failure(let failure):
            accountRead = false
            if case .http(let status, _, _, _, _) = failure, status == 429 || status >= 500 {
                fail(
                    "the REST API at \(ServerConfig.displayed(config.apiBaseURL)) is in trouble or limiting requests: \(failure)",
                    fix: "try again in a minute (Twilio's status: https://status.twilio.com)"
                )
            } else {
                fail(
                    "cannot reach the REST API at \(ServerConfig.displayed(config.apiBaseURL)): \(failure)",
                    fix: "check the network and TWILIO_API_BASE_URL"
                )
            }
        }
        // The number is looked up with the same credentials: when the account could not be read, it would only fail again.
        guard accountRead else { throw CLIError("\(failures) check(s) failed (see above)") }

        /// Whether `url` called with `method` is where signatures are checked (`{public URL}/sms`).
        func checkWebhook(_ url: String?, method: String?, of what: String, fix: String) {
            guard let publicURL = config.publicURL else {
                fail(
                    "ACTION2PHONE_PUBLIC_URL is not set, so the webhook URL cannot be checked (and signatures depend on Host headers)",
                    fix: "export ACTION2PHONE_PUBLIC_URL=https://your.public.host (the URL Twilio calls, without /sms)"
                )
                return
            }
            let url = url?.isEmpty == false ? url : nil
            let signed = publicURL + "/sms"
            let expected = ServerConfig.displayed(signed)
            let reaches = url.map { Self.reachesWebhook($0, signed: signed) } ?? false
            let shown = url.map(ServerConfig.displayed) ?? expected
            if reaches, let method, method.uppercased() != "POST" {
                fail("\(what) is \(shown), but called with HTTP \(method)", fix: fix + " (HTTP POST)")
            } else if reaches {
                ok("\(what) is \(shown)\(method.map { " (\($0))" } ?? "")")
            } else {
                fail(
                    "\(what) is \(url.map { "'\(ServerConfig.displayed($0))'" } ?? "not set"), not \(expected): signatures are checked against \(expected)",
                    fix: fix + ": \(expected), HTTP POST"
                )
            }
        }
        switch sender {
        case .number(let from):
            switch await client.findIncomingNumber(from) {
            case .success(let number?):
                ok("\(from) is a number on the account")
                checkWebhook(
                    number.smsUrl,
                    method: number.smsMethod,
                    of: "its SMS webhook",
                    fix: "Console → Phone Numbers → \(from) → Messaging: \"A message comes in\" = Webhook"
                )
            case .success(nil):
                fail(
                    "\(from) is not a number on account \(accountSid)",
                    fix: "set TWILIO_FROM_NUMBER to one of the account's numbers (Console → Phone Numbers)"
                )
            case .failure(let failure):
                fail("cannot look up \(from): \(failure)", fix: "check the credentials and the network")
            }
        case .messagingService(let sid):
            switch await client.fetchMessagingService(sid) {
            case .success(let service?):
                ok("sending through Messaging Service \(sid)\(service.friendlyName.map { " (\($0))" } ?? ""), on the account")
                if service.useInboundWebhookOnNumber == true {
                    // (Not an ok: nothing was checked. Not a failure either: the numbers' webhooks may well be right.)
                    print("note  its numbers' own SMS webhooks answer their texts: not checked here (each must be {public URL}/sms)")
                } else {
                    checkWebhook(
                        service.inboundRequestURL,
                        method: service.inboundMethod,
                        of: "its incoming-message webhook",
                        fix: "Console → Messaging → Services → \(service.friendlyName ?? sid) → Integration: \"Send a webhook\", Request URL"
                    )
                }
            case .success(nil):
                fail(
                    "Messaging Service \(sid) is not on account \(accountSid)",
                    fix: "set TWILIO_MESSAGING_SERVICE_SID to one of the account's services (Console → Messaging → Services)"
                )
            case .failure(let failure):
                fail("cannot look up Messaging Service \(sid): \(failure)", fix: "check the credentials and the network")
            }
        }
        guard failures == 0 else { throw CLIError("\(failures) check(s) failed (see above)") }
        print("All checks passed.")
    }

    /// Whether a socket can be bound to `host` (a port chosen by the system), as `serve` binds its own.
    static func isAddressOfThisMachine(_ host: String) -> Bool {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, "0", &hints, &found) == 0 else { return false }
        defer { freeaddrinfo(found) }
        var next = found
        while let address = next {
            let fd = socket(address.pointee.ai_family, address.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), address.pointee.ai_protocol)
            if fd >= 0 {
                defer { close(fd) }
                if bind(fd, address.pointee.ai_addr, address.pointee.ai_addrlen) == 0 { return true }
            }
            next = address.pointee.ai_next
        }
        return false
    }

    /// Whether Twilio calling `url` reaches the webhook whose signatures are checked against `signed` (`{public URL}/sms`):
    /// the same scheme and host, written alike (Twilio signs the URL as configured, and the server checks it against
    /// the public URL's own letters), port (443 or 80 written or not, as the server tries both) and path (a trailing
    /// slash names the same one), and any query (signed as it is received). No user or fragment, as before.
    static func reachesWebhook(_ url: String, signed: String) -> Bool {
        guard let a = URLComponents(string: url), let b = URLComponents(string: signed) else { return false }
        func port(_ c: URLComponents) -> Int? {
            c.port ?? ["https": 443, "http": 80][c.scheme?.lowercased() ?? ""]
        }
        func path(_ c: URLComponents) -> String {
            c.percentEncodedPath.hasSuffix("/") ? String(c.percentEncodedPath.dropLast()) : c.percentEncodedPath
        }
        return a.scheme == b.scheme && a.percentEncodedHost == b.percentEncodedHost && port(a) == port(b)
            && path(a) == path(b) && a.user == nil && a.password == nil && a.fragment == nil
    }
}
