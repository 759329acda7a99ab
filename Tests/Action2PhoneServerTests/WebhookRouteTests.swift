import Action2PhoneCore
import Action2PhoneServer
import Foundation
import GRDB
import InMemoryLogging
import Logging
import Testing
import TwilioKit

#if canImport(Glibc)
import Glibc
#endif

@Suite("POST /sms over loopback HTTP")
struct WebhookRouteTests {
    @Test func signedWebhookGets200TwiMLAndIsRecorded() async throws {
        try await TestServer.run { server in
            let fields = smsFields(body: "HELP", extra: [.init("FutureParam", "kept")])
            let reply = try await server.post(fields: fields)
            #expect(reply.status == 200)
            #expect(reply.contentType == "text/xml")
            #expect(reply.body.hasPrefix(#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>"#))
            #expect(reply.body.contains("reply JOIN to register"))
            let rows = try server.rows("SELECT * FROM inbound")
            #expect(rows.count == 1)
            #expect(rows[0]["from"] as String == "+14155550100")
            #expect(rows[0]["body"] as String == "HELP")
            #expect(rows[0]["reply"] as String == reply.body)
            let params: String = rows[0]["params"]
            #expect(params.contains(#""FutureParam":"kept""#))
            #expect(params.contains(#""FromZip":"02134""#))
        }
    }

    @Test func aPersonChangesTheirPasscodeAndOnlyTheNewOneLogsIn() async throws {
        try await TestServer.run { server in
            func text(_ body: String) async throws -> String { try await server.post(fields: smsFields(body: body)).body }
            for answer in ["JOIN", "Ivan", "Petrov", "ivan@example.org", "hammer-1917", "hammer-1917"] { _ = try await text(answer) }
            let before = try server.rows("SELECT passcodeHash FROM users")[0]["passcodeHash"] as Data
            // When he changes it (after a wrong current passcode and a confirmation that differs)
            #expect(try await text("PASSCODE").contains("current passcode"))
            #expect(try await text("sickle-1918").contains("Wrong passcode (1 of 5 tries)"))
            #expect(try await text("hammer-1917").contains("Choose a new passcode"))
            #expect(try await text("sickle-1918").contains("same passcode again"))
            #expect(try await text("sickle-1919").contains("The passcodes differ"))
            #expect(try await text("sickle-1918").contains("same passcode again"))
            #expect(try await text("sickle-1918").contains("Your passcode is changed"))
            // Then the stored hash is another, and the wrong try is forgotten
            let after = try server.rows("SELECT passcodeHash, failedLogins FROM users")[0]
            #expect(after["passcodeHash"] as Data != before && after["failedLogins"] as Int == 0)
            // And only the new passcode logs in
            _ = try await text("LOGOUT")
            #expect(try await text("LOGIN hammer-1917").contains("Wrong passcode"))
            #expect(try await text("LOGIN sickle-1918").contains("Welcome back"))
            // And no passcode was kept in clear anywhere: the inbound log, its fields, the conversation state
            for table in ["inbound", "conversations"] {
                let kept = try server.rows("SELECT * FROM \(table)").map { row in row.columnNames.map { "\(row[$0] ?? "")" }.joined(separator: " ") }
                #expect(!kept.contains { $0.contains("hammer") || $0.contains("sickle") }, "\(table): \(kept)")
            }
            #expect(try server.count("inbound") == 16)
        }
    }

    @Test func theConfiguredTimeZoneReachesTheTexts() async throws {
        // Given a server in New York time, at 03:00 UTC on Nov 25 (22:00 on Nov 24 there)
        let config = TestServer.makeConfig { $0.localTime = LocalTime(named: "America/New_York")! }
        let now = Date(timeIntervalSince1970: 1_795_597_200 - 6 * 3600)
        let clock: @Sendable () -> Date = { now }
        try await TestServer.run(config, clock: clock) { server in
            func text(_ body: String) async throws -> String { try await server.post(fields: smsFields(body: body)).body }
            for answer in ["JOIN", "Ivan", "Petrov", "ivan@example.org", "hammer-1917", "hammer-1917"] { _ = try await text(answer) }
            // Then PROFILE gives the day he joined there
            #expect(try await text("PROFILE").contains("Member since 2026-11-24\n"))
            // And a lockout ends at New York's time
            _ = try await text("LOGOUT")
            var last = ""
            for _ in 1...5 { last = try await text("LOGIN sickle-wrong") }
            #expect(last.contains("locked until 22:15 New York time."), "\(last)")
        }
    }

    @Test func aCapturedWebhookReplayedWithAFieldFoldedIntoItsSidIsRefused() async throws {
        try await TestServer.run { server in
            // Given a signed webhook, answered, and its signature captured (from a proxy's log, say)
            let fields = smsFields(body: "PROFILE")
            let signature = TwilioSignature.compute(authToken: TestServer.token, url: TestServer.publicURL + "/sms", params: fields)
            #expect(try await server.post(fields: fields, signature: .raw(signature)).status == 200)
            // When it is sent again with NumMedia folded into MessageSid: the same signed string, so the same signature
            let sid = try #require(fields.first { $0.name == "MessageSid" }).value
            let forged = fields.filter { $0.name != "NumMedia" }.map { $0.name == "MessageSid" ? FormField("MessageSid", sid + "NumMedia0") : $0 }
            #expect(TwilioSignature.compute(authToken: TestServer.token, url: TestServer.publicURL + "/sms", params: forged) == signature)
            let replayed = try await server.post(fields: forged, signature: .raw(signature))
            // Then it is refused as a bad request, and taken as no new message
            #expect(replayed.status == 400)
            #expect(try server.count("inbound") == 1)
        }
    }

    @Test func oversizedBodyIs413AndStoresNothing() async throws {
        try await TestServer.run { server in
            let fields = smsFields(body: String(repeating: "x", count: 70_000))
            let reply = try await server.post(fields: fields)
            #expect(reply.status == 413)
            #expect(try server.count("inbound") == 0)
        }
    }

    @Test func oversizedBeatsWrongContentType() async throws {
        try await TestServer.run { server in
            let reply = try await server.send("POST", "/sms", body: Data(repeating: 0x41, count: 65 * 1024 + 1), contentType: "application/json")
            #expect(reply.status == 413)
        }
    }

    @Test(arguments: ["application/json", "text/plain", "multipart/form-data; boundary=x"])
    func nonFormContentTypeIs415(_ contentType: String) async throws {
        try await TestServer.run { server in
            let reply = try await server.post(fields: smsFields(body: "hi"), contentType: contentType)
            #expect(reply.status == 415)
            #expect(try server.count("inbound") == 0)
        }
    }

    @Test func missingContentTypeIs415() async throws {
        try await TestServer.run { server in
            let reply = try await server.send("POST", "/sms", body: nil, contentType: nil)
            #expect(reply.status == 415)
        }
    }

    @Test func charsetParameterIsAccepted() async throws {
        try await TestServer.run { server in
            for type in ["application/x-www-form-urlencoded; charset=utf-8", "Application/X-WWW-Form-Urlencoded ; charset=UTF-8"] {
                let reply = try await server.post(fields: smsFields(body: "hi"), contentType: type)
                #expect(reply.status == 200, "\(type)")
            }
        }
    }

    @Test(arguments: ["Body=%ZZ&From=%2B1", "Body=%C3%28", "From=%"])
    func undecodableFormIs400(_ body: String) async throws {
        try await TestServer.run { server in
            let reply = try await server.send(
                "POST",
                "/sms",
                body: Data(body.utf8),
                contentType: "application/x-www-form-urlencoded",
                headers: ["X-Twilio-Signature": "x"]
            )
            #expect(reply.status == 400)
            #expect(try server.count("inbound") == 0)
        }
    }

    @Test func missingSignatureIs403() async throws {
        try await TestServer.run { server in
            let reply = try await server.post(fields: smsFields(body: "hi"), signature: .none)
            #expect(reply.status == 403)
            #expect(reply.body.isEmpty)
            #expect(try server.count("inbound") == 0)
            #expect(try server.count("conversations") == 0)
        }
    }

    @Test(arguments: ["", "RSOYDt4T1cUTdK1PDd93/VVr8B8=", "not base64 at all"])
    func wrongSignatureIs403(_ signature: String) async throws {
        try await TestServer.run { server in
            let reply = try await server.post(fields: smsFields(body: "hi"), signature: .raw(signature))
            #expect(reply.status == 403)
            #expect(try server.count("inbound") == 0)
        }
    }

    @Test func signatureByAnotherTokenIs403() async throws {
        try await TestServer.run { server in
            let reply = try await server.post(fields: smsFields(body: "hi"), signature: .signedWith(token: "someone-elses-token"))
            #expect(reply.status == 403)
        }
    }

    @Test func signatureForAnotherURLIs403() async throws {
        try await TestServer.run { server in
            let reply = try await server.post(
                fields: smsFields(body: "hi"),
                signature: .signedWith(token: TestServer.token, url: "https://evil.example.org/sms")
            )
            #expect(reply.status == 403)
        }
    }

    @Test func tamperedFieldIs403() async throws {
        try await TestServer.run { server in
            let fields = smsFields(body: "hi")
            let signature = TwilioSignature.compute(authToken: TestServer.token, url: TestServer.publicURL + "/sms", params: fields)
            var tampered = fields
            tampered[10].value = "BROADCAST everyone"
            let reply = try await server.post(fields: tampered, signature: .raw(signature))
            #expect(reply.status == 403)
        }
    }

    @Test func secondaryTokenIsAccepted() async throws {
        let config = TestServer.makeConfig { $0.secondaryAuthToken = Secret("rotated-token") }
        try await TestServer.run(config) { server in
            let reply = try await server.post(fields: smsFields(body: "hi"), signature: .signedWith(token: "rotated-token"))
            #expect(reply.status == 200)
        }
    }

    @Test func foreignAccountSidIs403OutsideLocalMode() async throws {
        let mine = "AC" + String(repeating: "a", count: 32)
        let config = TestServer.makeConfig {
            $0.isLocalMode = false
            $0.accountSid = mine
        }
        try await TestServer.run(config) { server in
            let foreign = try await server.post(fields: smsFields(body: "hi", account: "AC" + String(repeating: "b", count: 32)))
            #expect(foreign.status == 403)
            let twice = try await server.post(
                fields: smsFields(body: "hi", account: mine) + [FormField("AccountSid", "AC" + String(repeating: "b", count: 32))]
            )
            #expect(twice.status == 403)
            #expect(try server.count("inbound") == 0)
            let ours = try await server.post(fields: smsFields(body: "hi", account: mine))
            #expect(ours.status == 200)
            // Only MessageSid, From and To are required: a signed webhook without AccountSid is taken
            let without = try await server.post(fields: smsFields(body: "hello").filter { $0.name != "AccountSid" })
            #expect(without.status == 200 && without.body.contains("<Message>"))
            #expect(try server.count("inbound") == 2)
        }
    }

    @Test(arguments: ["MessageSid", "From", "To"])
    func missingRequiredFieldIs400(_ name: String) async throws {
        try await TestServer.run { server in
            let fields = smsFields(body: "hi").filter { $0.name != name }
            let reply = try await server.post(fields: fields)
            #expect(reply.status == 400)
            #expect(reply.body.contains(name))
            #expect(try server.count("inbound") == 0)
        }
    }

    @Test func emptyBodyAndNonE164SenderAreAccepted() async throws {
        try await TestServer.run { server in
            let fields = smsFields(from: "MyBrand", body: "").filter { $0.name != "FromZip" }
            let reply = try await server.post(fields: fields)
            #expect(reply.status == 200)
            #expect(try server.rows("SELECT \"from\" FROM inbound")[0]["from"] as String == "MyBrand")
        }
    }

    @Test func retriedMessageSidGetsIdenticalBodyAndIsRecordedOnce() async throws {
        try await TestServer.run { server in
            let fields = smsFields(body: "hi", sid: "SM0123456789abcdef0123456789abcdef")
            let first = try await server.post(fields: fields)
            let before = try server.rows("SELECT updatedAt FROM conversations")
            let second = try await server.post(fields: fields)
            #expect(first.status == 200)
            #expect(second.status == 200)
            #expect(second.body == first.body)
            #expect(try server.count("inbound") == 1)
            #expect(try server.rows("SELECT updatedAt FROM conversations") == before)
        }
    }

    @Test func retriedIdempotencyTokenGetsIdenticalBody() async throws {
        try await TestServer.run { server in
            let first = try await server.post(fields: smsFields(body: "hi"), headers: ["I-Twilio-Idempotency-Token": "tok-1"])
            let second = try await server.post(fields: smsFields(body: "hi"), headers: ["I-Twilio-Idempotency-Token": "tok-1"])
            #expect(second.body == first.body)
            #expect(try server.count("inbound") == 1)
        }
    }

    @Test func aTokenFromAnotherPhoneNeverGetsThatPhonesReply() async throws {
        try await TestServer.run { server in
            // Given a phone's text answered (its reply names the person)
            for body in ["JOIN", "Vera"] {
                _ = try await server.post(fields: smsFields(from: "+14155550171", body: body), headers: ["I-Twilio-Idempotency-Token": "tok-\(body)"])
            }
            // When another phone's own text arrives with the same token (a proxy's or a replay's mistake)
            let other = try await server.post(
                fields: smsFields(from: "+14155550172", body: "HELP"),
                headers: ["I-Twilio-Idempotency-Token": "tok-Vera"]
            )
            // Then it is that phone's text, answered and stored, not the first phone's reply again
            #expect(other.status == 200)
            #expect(!other.body.contains("Vera") && other.body.contains("JOIN"), "\(other.body)")
            #expect(try server.count("inbound") == 3)
            // And the first phone's own retry still gets its first reply
            let retry = try await server.post(
                fields: smsFields(from: "+14155550171", body: "Vera"),
                headers: ["I-Twilio-Idempotency-Token": "tok-Vera"]
            )
            #expect(retry.body.contains("Vera"))
            #expect(try server.count("inbound") == 3)
        }
    }

    @Test func concurrentRetriesOfOneMessageAreRecordedOnce() async throws {
        try await TestServer.run { server in
            let fields = smsFields(body: "hi")
            let replies = try await withThrowingTaskGroup(of: TestServer.Reply.self) { group in
                for _ in 0..<8 { group.addTask { try await server.post(fields: fields) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(replies.allSatisfy { $0.status == 200 && $0.body == replies[0].body })
            #expect(try server.count("inbound") == 1)
        }
    }

    @Test func rawQueryStringIsSignedAsSent() async throws {
        try await TestServer.run { server in
            let path = "/sms?org=a%20b&x='y'"
            let reply = try await server.post(path, fields: smsFields(body: "hi"))
            #expect(reply.status == 200)
        }
    }

    @Test func withoutPublicURLTheURLIsRebuiltFromHostAndForwardedProto() async throws {
        let config = TestServer.makeConfig { $0.publicURL = nil }
        try await TestServer.run(config) { server in
            let host = String(server.base.dropFirst("http://".count))
            let plain = try await server.post(
                fields: smsFields(body: "hi"),
                signature: .signedWith(token: TestServer.token, url: "http://\(host)/sms")
            )
            #expect(plain.status == 200)
            let proxied = try await server.post(
                fields: smsFields(body: "hi"),
                signature: .signedWith(token: TestServer.token, url: "https://\(host)/sms"),
                headers: ["X-Forwarded-Proto": "https"]
            )
            #expect(proxied.status == 200)
            let wrongScheme = try await server.post(
                fields: smsFields(body: "hi"),
                signature: .signedWith(token: TestServer.token, url: "https://\(host)/sms")
            )
            #expect(wrongScheme.status == 403)
            // A Host with more than a host and port in it is refused: with it, a request signed for another URL of
            // the account (here a status callback's) would pass as an inbound text
            for forged in ["\(host)/sms/status#", "\(host)/sms/status?", "evil@\(host)", "\(host)%2F"] {
                let statusURL = "http://\(host)/sms/status"
                let replayed = try await server.post(
                    fields: smsFields(body: "hi"),
                    signature: .signedWith(token: TestServer.token, url: statusURL),
                    headers: ["Host": forged]
                )
                #expect(replayed.status == 400, "\(forged): \(replayed.status)")
                #expect(replayed.body.contains("the Host header is not a host name and port"), "\(replayed.body)")
            }
            #expect(try server.count("inbound") == 2)
        }
    }

    @Test func restReplyModeAnswersEmptyAndQueuesTheReply() async throws {
        let config = TestServer.makeConfig { $0.replyMode = .rest }
        try await TestServer.run(config) { server in
            let reply = try await server.post(fields: smsFields(body: "HELP"))
            #expect(reply.status == 200)
            #expect(reply.body == TwiML.empty)
            let queued = try server.rows("SELECT \"to\", body, status, purpose FROM outbox")
            #expect(queued.count == 1)
            #expect(queued.first?["to"] as String? == "+14155550100")
            #expect(queued.first?["status"] as String? == "queued")
            #expect((queued.first?["body"] as String?)?.contains("reply JOIN to register") == true)
        }
    }

    @Test func secretsAndBodiesNeverReachTheLogs() async throws {
        let logs = InMemoryLogHandler()
        var logger = Logger(label: "test", factory: { _ in logs })
        logger.logLevel = .trace
        try await TestServer.run(logger: logger) { server in
            _ = try await server.post(fields: smsFields(body: "my passcode is hunter22"), signature: .signedWith(token: "wrong-token"))
            _ = try await server.post(fields: smsFields(body: "my passcode is hunter22"))
        }
        let text = logs.entries.map { "\($0.message) \($0.metadata)" }.joined(separator: "\n")
        #expect(text.contains("webhook rejected"))
        #expect(!text.contains(TestServer.token))
        #expect(!text.contains("hunter22"))
    }

    @Test func aHugeURLIsLoggedCutShort() async throws {
        let logs = InMemoryLogHandler()
        var logger = Logger(label: "test", factory: { _ in logs })
        logger.logLevel = .trace
        let path = "/sms?" + String(repeating: "q", count: 6000)
        try await TestServer.run(logger: logger) { server in
            let r = try await server.post(path, fields: smsFields(body: "HELP"), signature: .signedWith(token: "wrong-token"))
            #expect(r.status == 403)
        }
        let reasons = logs.entries.compactMap { $0.metadata["a2p.reason"].map { "\($0)" } }
        let url = TestServer.publicURL + path
        #expect(reasons == ["invalid X-Twilio-Signature for \(url.prefix(300))… (\(url.utf8.count) bytes)"])
    }

    @Test func aBodyThatTricklesInIsCutOffAtItsDeadlineAndTheConnectionClosed() async throws {
        // Given a client that announces 1,000 bytes, sends 10, and keeps its side open (a byte a minute would keep the
        // idle timeout from ever firing, and hold a graceful stop for as long as it liked)
        let config = TestServer.makeConfig { $0.bodyDeadline = .milliseconds(500) }
        try await TestServer.run(config) { server in
            let port = Int(server.base.split(separator: ":").last!)!
            let (answer, closedAfter) = await onOwnThread { () -> (String, Bool) in
                // (Close-on-exec: a CLI child another test starts meanwhile must not hold it open. A long timeout: with the
                // whole suite running, the handler may wait seconds for a thread before its deadline is even set.)
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
                defer { close(fd) }
                var tv = timeval(tv_sec: 60, tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                var addr = sockaddr_in()
                addr.sin_family = sa_family_t(AF_INET)
                addr.sin_port = in_port_t(UInt16(port).bigEndian)
                addr.sin_addr.s_addr = inet_addr("127.0.0.1")
                _ = withUnsafePointer(to: &addr) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
                let head =
                    "POST /sms HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nMessageSid"
                _ = Array(head.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                var response = [UInt8](repeating: 0, count: 4096)
                let got = recv(fd, &response, response.count, 0)
                let answer = got > 0 ? String(decoding: response[0..<got], as: UTF8.self) : ""
                // (and then the server closes the connection: the next read ends, not times out)
                var rest = [UInt8](repeating: 0, count: 4096)
                return (answer, recv(fd, &rest, rest.count, 0) == 0)
            }
            // Then it is answered 408 at the deadline, saying why, and the connection is closed
            #expect(answer.hasPrefix("HTTP/1.1 408"), "\(answer)")
            #expect(answer.contains("request body not received within 0.5 s"), "\(answer)")
            #expect(closedAfter)
            // And the server goes on answering
            let after = try await server.post("/sms", fields: smsFields(body: "HELP"))
            #expect(after.status == 200)
        }
    }
}

@Suite("POST /sms/status and GET /healthz")
struct StatusAndHealthTests {
    func statusFields(_ sid: String, _ status: String, errorCode: String? = nil) -> [FormField] {
        var f: [FormField] = [
            .init("AccountSid", "AC00000000000000000000000000000001"), .init("From", "+15005550006"), .init("To", "+14155550100"),
            .init("MessageSid", sid), .init("SmsSid", sid), .init("MessageStatus", status), .init("SmsStatus", status),
            .init("ApiVersion", "2010-04-01"),
        ]
        if let errorCode { f.append(.init("ErrorCode", errorCode)) }
        return f
    }

    @Test func callbacksMoveARowForwardOnly() async throws {
        try await TestServer.run { server in
            try server.execute(
                "INSERT INTO outbox (\"to\", body, purpose, status, twilioSid, createdAt, updatedAt) VALUES ('+14155550100', 'x', 'direct', 'sending', 'SMabc', datetime('now'), datetime('now'))"
            )
            func status() throws -> String { try server.rows("SELECT status FROM outbox")[0]["status"] }
            let r1 = try await server.post("/sms/status", fields: statusFields("SMabc", "sent"))
            #expect(r1.status == 204)
            #expect(try status() == "sent")
            let r2 = try await server.post("/sms/status", fields: statusFields("SMabc", "delivered"))
            #expect(r2.status == 204)
            #expect(try status() == "delivered")
            // Late and repeated callbacks change nothing backwards.
            _ = try await server.post("/sms/status", fields: statusFields("SMabc", "sent"))
            _ = try await server.post("/sms/status", fields: statusFields("SMabc", "queued"))
            _ = try await server.post("/sms/status", fields: statusFields("SMabc", "delivered"))
            #expect(try status() == "delivered")
            // And one that contradicts it (undelivered after delivered) keeps no error and leaves the number alone
            let r3 = try await server.post("/sms/status", fields: statusFields("SMabc", "undelivered", errorCode: "30006"))
            #expect(r3.status == 204)
            #expect(try server.rows("SELECT status, errorCode FROM outbox")[0]["errorCode"] as Int? == nil)
            #expect(try server.rows("SELECT status FROM outbox")[0]["status"] as String == "delivered")
            #expect(try server.count("phones") == 0)
            #expect(try server.count("consentLog") == 0)
        }
    }

    @Test func readAndCanceledMapToDeliveredAndFailedAndTheOlderFieldNamesAreRead() async throws {
        try await TestServer.run { server in
            for sid in ["SMread", "SMcanceled", "SMolder"] {
                try server.execute(
                    "INSERT INTO outbox (\"to\", body, purpose, status, twilioSid, createdAt, updatedAt) VALUES ('+14155550100', 'x', 'direct', 'sent', '\(sid)', datetime('now'), datetime('now'))"
                )
            }
            func status(_ sid: String) throws -> String { try server.rows("SELECT status FROM outbox WHERE twilioSid = '\(sid)'")[0]["status"] }
            // "read" (WhatsApp, RCS) is delivered and more; "canceled" (a scheduled message) never went: failed
            #expect(try await server.post("/sms/status", fields: statusFields("SMread", "read")).status == 204)
            #expect(try status("SMread") == "delivered")
            #expect(try await server.post("/sms/status", fields: statusFields("SMcanceled", "canceled")).status == 204)
            #expect(try status("SMcanceled") == "failed")
            // A callback with only the older names (SmsSid, SmsStatus) is read by them
            let older: [FormField] = [
                .init("AccountSid", "AC00000000000000000000000000000001"), .init("From", "+15005550006"), .init("To", "+14155550100"),
                .init("SmsSid", "SMolder"), .init("SmsStatus", "delivered"), .init("ApiVersion", "2010-04-01"),
            ]
            #expect(try await server.post("/sms/status", fields: older).status == 204)
            #expect(try status("SMolder") == "delivered")
        }
    }

    @Test func twilioSOptOutTypeDecidesForWordsOfAnotherLanguage() async throws {
        // Given Advanced Opt-Out keywords of the account's own ("halt", "demarrer", "aide"), which Twilio marks with
        // OptOutType
        try await TestServer.run { server in
            func text(_ body: String, _ type: String) async throws -> TestServer.Reply {
                try await server.post(fields: smsFields(body: body, extra: [.init("OptOutType", type)]))
            }
            // Then its STOP opts out without a reply, its START opts back in, and its HELP gets the help
            let stop = try await text("halt", "STOP")
            #expect(stop.status == 200 && !stop.body.contains("<Message>"), "\(stop.body)")
            #expect(try server.rows("SELECT optedOut FROM phones WHERE phone = '+14155550100'").first?["optedOut"] as Bool? == true)
            let start = try await text("demarrer", "START")
            #expect(start.body.contains("<Message>") && !start.body.contains("Unknown command"), "\(start.body)")
            #expect(try server.rows("SELECT optedOut FROM phones WHERE phone = '+14155550100'").first?["optedOut"] as Bool? == false)
            let help = try await text("aide", "help")
            let plainHelp = try await server.post(fields: smsFields(body: "HELP")).body
            #expect(help.body == plainHelp, "\(help.body)")
        }
    }

    @Test func valuesAreSignedAsTheyCameWithTheirWhiteSpace() async throws {
        try await TestServer.run { server in
            // Given a text with white space around it, signed as sent (the signature covers the value untrimmed)
            let reply = try await server.post(fields: smsFields(body: "  HELP \n"))
            // Then it is taken, and read as HELP
            #expect(reply.status == 200)
            #expect(reply.body == (try await server.post(fields: smsFields(body: "HELP")).body))
            // And signed trimmed, it is refused
            let fields = smsFields(body: "  HELP \n")
            let trimmed = fields.map { $0.name == "Body" ? FormField("Body", "HELP") : $0 }
            let refused = try await server.post(
                fields: fields,
                signature: .raw(TwilioSignature.compute(authToken: TestServer.token, url: TestServer.publicURL + "/sms", params: trimmed))
            )
            #expect(refused.status == 403)
        }
    }

    @Test func undeliveredRecordsTheErrorAndSuppressesUnreachableNumbers() async throws {
        try await TestServer.run { server in
            try server.execute(
                "INSERT INTO outbox (\"to\", body, purpose, status, twilioSid, createdAt, updatedAt) VALUES ('+14155550100', 'x', 'direct', 'sent', 'SMdef', datetime('now'), datetime('now'))"
            )
            let r3 = try await server.post("/sms/status", fields: statusFields("SMdef", "undelivered", errorCode: "30006"))
            #expect(r3.status == 204)
            let row = try server.rows("SELECT status, errorCode FROM outbox")[0]
            #expect(row["status"] as String == "undelivered")
            #expect(row["errorCode"] as Int? == 30006)
            #expect(try server.rows("SELECT suppressed FROM phones WHERE phone = '+14155550100'").first?["suppressed"] as Bool? == true)
        }
    }

    @Test func unknownSidIs204AndUnsignedIs403() async throws {
        try await TestServer.run { server in
            let r4 = try await server.post("/sms/status", fields: statusFields("SMnope", "delivered"))
            #expect(r4.status == 204)
            let r5 = try await server.post("/sms/status", fields: statusFields("SMnope", "delivered"), signature: .none)
            #expect(r5.status == 403)
            let r6 = try await server.post("/sms/status", fields: [.init("MessageSid", "SM1")])
            #expect(r6.status == 400)
        }
    }

    @Test func aKnownPathAskedWithAnotherMethodIs405NamingItsMethods() async throws {
        try await TestServer.run { server in
            for (method, path, allow) in [
                ("GET", "/sms", "POST"), ("PUT", "/sms", "POST"), ("HEAD", "/sms", "POST"), ("GET", "/sms/status", "POST"),
                ("DELETE", "/sms/status", "POST"), ("POST", "/healthz", "GET, HEAD"), ("OPTIONS", "/healthz", "GET, HEAD"),
            ] {
                let reply = try await server.send(method, path)
                #expect(reply.status == 405 && reply.allow == allow, "\(method) \(path): \(reply.status) \(reply.allow ?? "-")")
            }
            #expect(try await server.send("GET", "/nowhere").status == 404)
            // A monitor probing with HEAD gets GET's status and headers without the body
            let head = try await server.send("HEAD", "/healthz")
            let get = try await server.send("GET", "/healthz")
            #expect(head.status == 200 && head.contentType == "application/json" && head.body.isEmpty)
            #expect(head.contentLength == "\(get.body.utf8.count)" && get.contentLength == head.contentLength)
            #expect(try server.count("inbound") == 0)
        }
    }

    @Test func healthzAnswersJSON() async throws {
        try await TestServer.run { server in
            let reply = try await server.send("GET", "/healthz")
            #expect(reply.status == 200)
            #expect(reply.contentType == "application/json")
            #expect(reply.body.contains(#""status":"ok""#))
        }
    }
}
