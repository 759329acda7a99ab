import Testing

@testable import TwilioKit

@Suite("Webhook decoding")
struct WebhookDecodingTests {
    @Test func realCapturedPayloadDecodes() throws {
        let body =
            "ToCountry=US&ToState=MI&SmsMessageSid=SM0123&NumMedia=0&ToCity=&FromZip=02134&SmsSid=SM0123&FromState=MA&SmsStatus=received&FromCity=BOSTON&Body=It%27s+working%21%21%21&FromCountry=US&To=%2B15005550006&ToZip=&NumSegments=1&ReferralNumMedia=0&MessageSid=SM0123&AccountSid=AC123&From=%2B14155550100&ApiVersion=2010-04-01&FutureField=x"
        let m = try IncomingMessage(fields: #require(FormCodec.decode(body)))
        #expect(m.messageSid == "SM0123")
        #expect(m.from == "+14155550100")
        #expect(m.to == "+15005550006")
        #expect(m.body == "It's working!!!")
        #expect(m.numMedia == 0)
        #expect(m.numSegments == 1)
        #expect(m[field: "FromZip"] == "02134")
        #expect(m[field: "FutureField"] == "x")
        #expect(m.fields.count == 21)
    }

    @Test func onlySidFromToRequired() throws {
        let m = try IncomingMessage(fields: [.init("MessageSid", "SM1"), .init("From", "12345"), .init("To", "+15005550006")])
        #expect(m.body == "")
        #expect(m.from == "12345")
    }

    @Test(arguments: ["MessageSid", "From", "To"])
    func missingRequiredFieldIsNamed(_ name: String) {
        var fields: [FormField] = [.init("MessageSid", "SM1"), .init("From", "+14155550100"), .init("To", "+15005550006")]
        fields.removeAll { $0.name == name }
        #expect(throws: WebhookDecodingError.missingField(name)) { try IncomingMessage(fields: fields) }
    }

    @Test func aMessageSidWithMoreAfterItIsRefusedAndOtherSidsAreTakenAsTheyAre() throws {
        let sid = "SM" + String(repeating: "0a", count: 16)
        func message(_ sid: String) throws -> IncomingMessage {
            try IncomingMessage(fields: [.init("MessageSid", sid), .init("From", "+14155550100"), .init("To", "+15005550006")])
        }
        // A real SID, and a test's own short or odd ones, are taken as they are
        for taken in [sid, "MM" + String(repeating: "f", count: 32), "SM1", "SMdup1", "SM-a-test-sid-longer-than-34-characters"] {
            #expect(try message(taken).messageSid == taken)
        }
        // A real SID with a later field folded into it (the same signed string as MessageSid=…&NumMedia=0) is not
        #expect(throws: WebhookDecodingError.extendedSid("MessageSid")) { try message(sid + "NumMedia0") }
        #expect(throws: WebhookDecodingError.extendedSid("MessageSid")) {
            try StatusCallback(fields: [.init("MessageSid", sid + "MessageStatusdelivered"), .init("MessageStatus", "sent")])
        }
    }

    @Test func fieldsLongerThanAnyRealOneAreRefused() throws {
        func message(sid: String = "SM1", from: String = "+14155550100", to: String = "+15005550006") throws -> IncomingMessage {
            try IncomingMessage(fields: [.init("MessageSid", sid), .init("From", from), .init("To", to)])
        }
        // The longest taken are taken
        #expect(try message(sid: String(repeating: "s", count: 64), from: "whatsapp:" + String(repeating: "1", count: 247)).from.utf8.count == 256)
        // One byte more is refused, naming the field and its limit
        #expect(throws: WebhookDecodingError.tooLong("MessageSid", limit: 64)) { try message(sid: String(repeating: "s", count: 65)) }
        #expect(throws: WebhookDecodingError.tooLong("From", limit: 256)) { try message(from: String(repeating: "1", count: 257)) }
        #expect(throws: WebhookDecodingError.tooLong("To", limit: 256)) { try message(to: String(repeating: "é", count: 129)) }
        #expect(throws: WebhookDecodingError.tooLong("MessageSid", limit: 64)) {
            try StatusCallback(fields: [.init("MessageSid", String(repeating: "s", count: 10_000)), .init("MessageStatus", "sent")])
        }
        #expect(WebhookDecodingError.tooLong("From", limit: 256).description == "From is longer than 256 bytes")
        // And so is a line break or another control character, which would forge a line of the log they are written to
        let forged = "\n2026-12-02T09:00:00+0000 critical action2phone: forged"
        #expect(throws: WebhookDecodingError.controlCharacter("From")) { try message(from: "+1415" + forged) }
        #expect(throws: WebhookDecodingError.controlCharacter("MessageSid")) { try message(sid: "SM1\r") }
        #expect(throws: WebhookDecodingError.controlCharacter("MessageStatus")) {
            try StatusCallback(fields: [.init("MessageSid", "SM1"), .init("MessageStatus", "sent" + forged.prefix(20))])
        }
        #expect(throws: WebhookDecodingError.tooLong("MessageStatus", limit: 32)) {
            try StatusCallback(fields: [.init("MessageSid", "SM1"), .init("MessageStatus", String(repeating: "x", count: 33))])
        }
        #expect(
            try StatusCallback(fields: [.init("MessageSid", "SM1"), .init("MessageStatus", "partially_delivered")]).messageStatus
                == "partially_delivered"
        )
    }

    @Test func statusCallback() throws {
        let s = try StatusCallback(fields: #require(FormCodec.decode("MessageSid=SM9&MessageStatus=undelivered&ErrorCode=30006&AccountSid=AC1")))
        #expect(s.messageSid == "SM9")
        #expect(s.messageStatus == "undelivered")
        #expect(s.errorCode == 30006)
        #expect(throws: WebhookDecodingError.missingField("MessageStatus")) { try StatusCallback(fields: [.init("MessageSid", "SM1")]) }
    }
}
