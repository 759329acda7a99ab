import Testing

@testable import TwilioKit

@Suite("application/x-www-form-urlencoded")
struct FormCodecTests {
    @Test func plusIsSpaceAndPercent2BIsPlus() throws {
        let fields = try #require(FormCodec.decode("Body=It%27s+working%21%21%21&From=%2B14155550100"))
        #expect(fields == [.init("Body", "It's working!!!"), .init("From", "+14155550100")])
    }

    @Test func keepsOrderRepeatsEmptiesAndLeadingZeros() throws {
        let fields = try #require(FormCodec.decode("ToZip=02134&Digits=5&Digits=1&Empty=&Flag&&"))
        #expect(fields == [.init("ToZip", "02134"), .init("Digits", "5"), .init("Digits", "1"), .init("Empty", ""), .init("Flag", "")])
    }

    @Test func decodesUTF8() throws {
        let fields = try #require(FormCodec.decode("Body=%D0%9F%D1%80%D0%B8%D0%B2%D0%B5%D1%82+%F0%9F%98%80"))
        #expect(fields.first?.value == "Привет 😀")
    }

    @Test func emptyBodyIsNoFields() {
        #expect(FormCodec.decode("") == [])
    }

    @Test(arguments: ["Body=%", "Body=%4", "Body=%ZZ", "Body=%C3%28", "%FF=x", "Body=abc%E2%82"])
    func brokenEscapesOrInvalidUTF8AreRejected(_ body: String) {
        #expect(FormCodec.decode(body) == nil)
    }

    @Test func rawBytesMustBeUTF8Too() {
        #expect(FormCodec.decode(Array("Body=caf".utf8) + [0xC3, 0xA9]) == [.init("Body", "café")])
        #expect(FormCodec.decode(Array("Body=".utf8) + [0xEF, 0xBF, 0xBD]) == [.init("Body", "\u{FFFD}")])  // a real U+FFFD is kept
        #expect(FormCodec.decode(Array("Body=caf".utf8) + [0xE9]) == nil)  // Latin-1, not UTF-8
        #expect(FormCodec.decode(Array("Body=".utf8) + [0xFF]) == nil)
        #expect(FormCodec.decode(Array("Body=".utf8) + [0xED, 0xA0, 0x80]) == nil)  // a UTF-16 surrogate
    }

    @Test func encodeEscapesEverythingButUnreserved() {
        let encoded = FormCodec.encode([.init("To", "+1 555"), .init("From", "+1666"), .init("Body", "héllo & bye")])
        #expect(encoded == "To=%2B1%20555&From=%2B1666&Body=h%C3%A9llo%20%26%20bye")
    }

    @Test func roundTrip() throws {
        let fields: [FormField] = [.init("Body", "a+b=c&d 😀 ~_.-"), .init("Empty", "")]
        #expect(try #require(FormCodec.decode(FormCodec.encode(fields))) == fields)
    }
}
