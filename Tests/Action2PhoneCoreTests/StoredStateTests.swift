import Foundation
import GRDB
import Testing

@testable import Action2PhoneCore

@Suite("Stored state and dates")
struct StoredStateTests {
    static let pending = PasscodeHash(hash: Array(0...31), salt: [0, 255, 7, 128], iterations: 600_000)
    static let steps: [Step] = [
        .idle, .askedFirstName, .askedLastName(first: "Ivan"), .askedEmail(first: "Анна", last: "O'Neil"),
        .askedPasscode(first: "Ivan", last: "Petrov", email: "ivan@example.org"),
        .askedPasscodeAgain(first: "Ivan", last: "Petrov", email: "ivan@example.org", pending: pending),
        .askedLoginPasscode, .askedCurrentPasscode, .askedNewPasscode, .askedNewPasscodeAgain(pending: pending), .confirmingDelete,
        .confirmingBroadcast(text: "Meeting at 6 — bring 🍞 & \"tea\"\\\n"),
        .confirmingBroadcast(text: "a/b \u{8}\u{c}\u{1}\u{7f}\u{2028} é"),
        .askedLastName(first: "tab\there"), .askedLastName(first: ""),
    ]
    static let states: [ConversationState] = steps.flatMap { step in
        [
            ConversationState(step: step),
            ConversationState(step: step, lastActivity: Date(timeIntervalSince1970: 1_764_069_980.123_456)),
            ConversationState(
                step: step,
                loggedInAt: Date(timeIntervalSince1970: 1_764_000_000.5),
                lastActivity: Date(timeIntervalSince1970: 1_764_069_981)
            ),
            ConversationState(step: step, lastActivity: Date(timeIntervalSince1970: 1_764_069_982), passcodeMayFollow: true),
            ConversationState(step: step, passcodeMayFollow: false),
        ]
    }

    @Test(arguments: states)
    func handWrittenJSONIsWhatCodableReadsAndWrites(state: ConversationState) throws {
        // Given a state, written by hand and by JSONEncoder
        let mine = StoredState.encode(state)
        let codable = String(decoding: try JSONEncoder.store.encode(state), as: UTF8.self)
        // Then they wrote the same bytes
        #expect(mine == codable)
        // And each reader reads each writer's text back to the same state
        #expect(try JSONDecoder.store.decode(ConversationState.self, from: Data(mine.utf8)) == state)
        #expect(StoredState.decode(mine) == state)
        #expect(StoredState.decode(codable) == state)
        // And SQLite's JSON functions see the same keys (userCounts asks for $.loggedInAt)
        let queue = try DatabaseQueue()
        let loggedIn = try queue.read { try Double.fetchOne($0, sql: "SELECT json_extract(?, '$.loggedInAt')", arguments: [mine]) }
        #expect(loggedIn == state.loggedInAt?.timeIntervalSince1970)
    }

    @Test(arguments: [
        "", "{}", "null", #"{"step":{}}"#, #"{"step":{"idle":{},"askedFirstName":{}}}"#, #"{"step":{"flying":{}}}"#,
        #"{"step":{"askedLastName":{}}}"#, #"{"step":{"idle":{}},"lastActivity":"2026-11-25T11:26:20Z"}"#,
        #"{"step":{"idle":{}}} trailing"#, #"{"step":{"askedLastName":{"first":"Iv"#, "[1,2", #"{"step":{"idle":{}},"loggedInAt":1e999}"#,
        // A pending passcode hash that cannot be checked (PBKDF2 would trap on it): the state starts afresh
        #"{"step":{"askedPasscodeAgain":{"first":"A","last":"B","email":"a@b.c","pending":{"hash":[1,2],"salt":[3],"iterations":0}}}}"#,
        #"{"step":{"askedPasscodeAgain":{"first":"A","last":"B","email":"a@b.c","pending":{"hash":[],"salt":[3],"iterations":1000}}}}"#,
        #"{"step":{"askedPasscodeAgain":{"first":"A","last":"B","email":"a@b.c","pending":{"hash":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16],"salt":[3],"iterations":1e18}}}}"#,
        #"{"step":{"askedNewPasscodeAgain":{"pending":{"hash":[1,2],"salt":[3],"iterations":0}}}}"#, #"{"step":{"askedNewPasscodeAgain":{}}}"#,
        #"{"step":{"idle":{}},"passcodeQuestionExpired":1}"#, #"{"step":{"idle":{}},"passcodeQuestionExpired":tru}"#,
    ])
    func textThatIsNotAStateDecodesToNil(text: String) {
        #expect(StoredState.decode(text) == nil)
    }

    @Test func unknownKeysAreIgnoredAsCodableDoes() {
        let text = #"{"future":[1,{"a":null}],"step":{"askedLastName":{"first":"Ivan","middle":"I."}},"lastActivity":1764069980.25}"#
        #expect(
            StoredState.decode(text)
                == ConversationState(step: .askedLastName(first: "Ivan"), lastActivity: Date(timeIntervalSince1970: 1_764_069_980.25))
        )
    }

    @Test func datesAreFormattedExactlyAsGRDBFormatsThem() {
        // Given dates across centuries, leap days, and milliseconds on both sides of each boundary
        var dates: [Date] = [
            Date(timeIntervalSince1970: 0), Date(timeIntervalSince1970: -0.0005), Date(timeIntervalSince1970: 951_782_400),  // 2000-02-29
            Date(timeIntervalSince1970: 1_764_069_980.9999), Date(timeIntervalSince1970: 4_102_444_799.999),
            Date(timeIntervalSince1970: -2_208_988_800.25),
        ]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 { dates.append(Date(timeIntervalSince1970: Double.random(in: -2_000_000_000...4_000_000_000, using: &generator))) }
        // Then the hand-written text is GRDB's, byte for byte, and reads back as the same millisecond
        for date in dates {
            #expect(StoredDate.text(date) == String.fromDatabaseValue(date.databaseValue), "\(date.timeIntervalSince1970)")
        }
    }
}
