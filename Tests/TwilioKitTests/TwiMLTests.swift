import Testing

@testable import TwilioKit

@Suite("TwiML writer")
struct TwiMLTests {
    @Test func emptyResponse() {
        #expect(TwiML.messagingResponse([]) == #"<?xml version="1.0" encoding="UTF-8"?><Response/>"#)
        #expect(TwiML.messagingResponse(["", "  \n"]) == TwiML.empty)
        // Control characters are dropped, and a text of nothing else is not an empty <Message> (Twilio error 14103)
        #expect(TwiML.messagingResponse(["\u{1}\u{7}", " \u{0} "]) == TwiML.empty)
        #expect(TwiML.messagingResponse(["ok", "\u{1}"]) == #"<?xml version="1.0" encoding="UTF-8"?><Response><Message>ok</Message></Response>"#)
    }

    @Test func oneMessageEscapedWithoutAddedWhitespace() {
        #expect(
            TwiML.messagingResponse(["Tom & Jerry <3 > all"])
                == #"<?xml version="1.0" encoding="UTF-8"?><Response><Message>Tom &amp; Jerry &lt;3 &gt; all</Message></Response>"#
        )
    }

    @Test func severalMessagesInOrder() {
        #expect(
            TwiML.messagingResponse(["one", "two"])
                == #"<?xml version="1.0" encoding="UTF-8"?><Response><Message>one</Message><Message>two</Message></Response>"#
        )
    }

    @Test func controlCharactersAreDroppedNewlinesKept() {
        #expect(TwiML.escape("a\u{0}b\u{7}c\nd\te") == "abc\nd\te")
    }

    @Test func longTextSplitsAtWordBoundaries() {
        let word = "comrade"  // 7 letters + 1 space
        let text = Array(repeating: word, count: 400).joined(separator: " ")  // 3199 characters
        let parts = TwiML.split(text)
        #expect(parts.count == 2)
        #expect(parts.allSatisfy { $0.utf16.count <= 1600 })
        #expect(parts.allSatisfy { !$0.hasPrefix(" ") && !$0.hasSuffix(" ") })
        #expect(parts.allSatisfy { $0.split(separator: " ").allSatisfy { $0 == "comrade" } })
        #expect(parts.joined(separator: " ") == text)
        let xml = TwiML.messagingResponse([text])
        #expect(xml.ranges(of: "<Message>").count == 2)
    }

    @Test func aPartThatEndsAtASpaceIsNotCutShort() {
        // The first 1600 characters end just before a space: they are one whole message, not "x" and the rest
        let text = "x " + String(repeating: "a", count: 1598) + " bbb"
        #expect(TwiML.split(text).map(\.count) == [1600, 3])
        let words = String(repeating: "comrade ", count: 200)  // exactly 1600 characters, then more words
        #expect(TwiML.split(words + "tovarishch").map(\.count) == [1599, 10])
    }

    @Test func exactly1600StaysOneMessage() {
        let text = String(repeating: "a", count: 1600)
        #expect(TwiML.split(text) == [text])
    }

    @Test func unbrokenWordIsCutHard() {
        let text = String(repeating: "x", count: 3500)
        let parts = TwiML.split(text)
        #expect(parts.map(\.count) == [1600, 1600, 300])
    }

    @Test func emojiCountAsTwoUnitsAndAreNeverCut() {
        let text = String(repeating: "😀", count: 801)  // 1602 UTF-16 units
        let parts = TwiML.split(text)
        #expect(parts.map(\.count) == [800, 1])
    }
}
