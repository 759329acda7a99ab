import Testing

@testable import TwilioKit

@Suite("SMS segments")
struct SegmentsTests {
    @Test(arguments: [
        (String(repeating: "A", count: 160), SMSEncoding.gsm7, 160, 1),
        (String(repeating: "A", count: 161), .gsm7, 161, 2),
        (String(repeating: "A", count: 306), .gsm7, 306, 2),
        (String(repeating: "1", count: 307), .gsm7, 307, 3),
        (String(repeating: "€", count: 80), .gsm7, 160, 1),
        (String(repeating: "€", count: 81), .gsm7, 162, 2),
        (String(repeating: "😀", count: 35), .ucs2, 70, 1),
        (String(repeating: "😀", count: 36), .ucs2, 72, 2),
        ("Hello 😀", .ucs2, 8, 1),
        ("😜" + String(repeating: "1", count: 133), .ucs2, 135, 3),
    ])
    func countVectors(text: String, encoding: SMSEncoding, units: Int, segments: Int) {
        let c = Segments.count(text)
        #expect(c.encoding == encoding)
        #expect(c.units == units)
        #expect(c.segments == segments)
    }

    @Test func curlyQuoteForcesUCS2AndIsNamed() {
        let c = Segments.count("It’s time, comrade")
        #expect(c.encoding == .ucs2)
        #expect(c.nonGSMCharacters == ["’"])
    }

    @Test func theScalarNamedForADecomposedAccentIsTheAccent() {
        // "Café" typed as e + U+0301: the e is GSM-7, the combining accent forces UCS-2
        let c = Segments.count("Cafe\u{301} at six")
        #expect(c.encoding == .ucs2 && c.nonGSMCharacters == ["e\u{301}"])
        #expect(Segments.nonGSMScalar(in: c.nonGSMCharacters[0]) == "\u{301}")
        #expect(Segments.nonGSMScalar(in: "’") == "\u{2019}")
    }

    @Test func escapePairNeverStraddlesSegments() {
        // 152 septets then a 2-septet € : the € moves whole to segment 2.
        let c = Segments.count(String(repeating: "a", count: 152) + "€" + String(repeating: "a", count: 10))
        #expect(c.units == 164)
        #expect(c.segments == 2)
        // Where that moving costs a segment: 306 septets would fill two segments of 153 if the € could be cut
        let full = Segments.count(String(repeating: "a", count: 152) + "€" + String(repeating: "a", count: 152))
        #expect(full.units == 306 && full.segments == 3)
        // And a surrogate pair likewise: 134 UCS-2 units, 3 segments of at most 67, the emoji never cut in two
        let emoji = Segments.count(String(repeating: "1", count: 66) + "😀" + String(repeating: "1", count: 66))
        #expect(emoji.encoding == .ucs2 && emoji.units == 134 && emoji.segments == 3)
    }

    @Test func lowercaseCCedillaAndBacktickAreNotGSM() {
        #expect(Segments.count("ç").encoding == .ucs2)
        #expect(Segments.count("`").encoding == .ucs2)
        #expect(Segments.count("Ç").encoding == .gsm7)
    }
}
