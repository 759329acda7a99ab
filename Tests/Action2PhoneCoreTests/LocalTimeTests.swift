import Foundation
import Testing
import TwilioKit

@testable import Action2PhoneCore

@Suite("The organisation's time zone in texts")
struct LocalTimeTests {
    @Test(arguments: [
        ("America/New_York", "America/New_York", "04:00 New York time"), ("america/new_york", "America/New_York", "04:00 New York time"),
        ("Europe/London", "Europe/London", "09:00 London time"), ("Asia/Kolkata", "Asia/Kolkata", "14:30 Kolkata time"),
        ("America/Argentina/Buenos_Aires", "America/Argentina/Buenos_Aires", "06:00 Buenos Aires time"), ("UTC", "UTC", "09:00 UTC"),
        ("utc", "UTC", "09:00 UTC"), ("GMT", "GMT", "09:00 UTC"),
        // Current names the system's list leaves out, and the old country ones, in any case
        ("asia/kolkata", "Asia/Kolkata", "14:30 Kolkata time"), ("us/pacific", "US/Pacific", "01:00 Pacific time"),
        ("etc/gmt+5", "Etc/GMT+5", "04:00 GMT-5"), ("Etc/UTC", "Etc/UTC", "09:00 UTC"),
    ])
    func aZoneIsNamedAsIANASpellsItAndLabelsItsTimes(name: String, spelled: String, clock: String) throws {
        // t0 is 2026-11-25 09:00 UTC
        let time = try #require(LocalTime(named: name))
        #expect(time.name == spelled)
        #expect(time.clock(t0) == clock)
    }

    // Abbreviations and offsets too: Foundation reads them, but PST follows summer time and GMT+5 is the opposite
    // of IANA's Etc/GMT+5
    @Test(arguments: [
        "Mars/Olympus_Mons", "New York", "+03:00", "EST5EDT6", "America/", "PST", "GMT+5", "UTC+3", "GMT-0500", "Factory", "", "SystemV/EST5",
        "Asia//Kolkata",
    ])
    func aNameThatIsNoZoneIsRefused(name: String) {
        #expect(LocalTime(named: name) == nil)
    }

    @Test func aLockEndIsToldRoundedUpToTheMinute() throws {
        // At the time said, the lock has ended: 09:14:50 is told as 09:15, and a whole minute as itself
        #expect(LocalTime.utc.clock(t0.addingTimeInterval(14 * 60 + 50)) == "09:15 UTC")
        #expect(LocalTime.utc.clock(t0.addingTimeInterval(15 * 60)) == "09:15 UTC")
        #expect(LocalTime.utc.clock(t0.addingTimeInterval(15 * 60 + 1)) == "09:16 UTC")
        // And so a member told the time, and trying LOGIN then, is let in
        var locked = facts()
        locked.accounts[0].lockedUntil = t0.addingTimeInterval(14 * 60 + 50)
        var state = ConversationState(lastActivity: t0)
        let told = try engine.reduce(&state, Inbound(text: "LOGIN"), facts: locked, now: t0)
        #expect(told.replies[0].contains("locked until 09:15 UTC"))
        // (And JOIN, from someone who forgot they are registered, says so too)
        let join = try engine.reduce(&state, Inbound(text: "JOIN"), facts: locked, now: t0)
        #expect(join.replies[0].hasSuffix("Reply LOGIN after 09:15 UTC."), "\(join.replies)")
        #expect(
            engine.passcodeWork(for: Inbound(text: "LOGIN secret1"), state: state, account: locked.accounts[0], now: t0.addingTimeInterval(15 * 60))
                != nil
        )
    }

    @Test func aCityLongerThanBahiaBanderasIsLabelledWithItsOffset() throws {
        // Whichever such names this system's list has (Canada/East-Saskatchewan here)
        let long = TimeZone.knownTimeZoneIdentifiers.filter { $0.contains("/") && $0.split(separator: "/").last!.count > 14 }
        for name in long {
            let clock = try #require(LocalTime(named: name)).clock(t0)
            #expect(clock.wholeMatch(of: /\d\d:\d\d (GMT[+-]\d{1,2}(:\d\d)?|UTC)/) != nil, "\(name): \(clock)")
        }
        // and a city of 14 is named
        #expect(try #require(LocalTime(named: "America/Bahia_Banderas")).clock(t0) == "03:00 Bahia Banderas time")
    }

    @Test func inEveryZoneALockoutsHelpFitsOneTextWithTheLongestName() throws {
        var locked = facts()
        locked.accounts[0].firstName = String(repeating: "W", count: 40)
        locked.accounts[0].lockedUntil = t0.addingTimeInterval(600)
        for name in TimeZone.knownTimeZoneIdentifiers + ["UTC"] {
            let time = try #require(LocalTime(named: name), "\(name)")
            var state = ConversationState(lastActivity: t0)
            let engine = ConversationEngine(settings: .init(localTime: time))
            let help = try engine.reduce(&state, Inbound(text: "HELP"), facts: locked, now: t0)
            #expect(help.replies.count == 1 && Segments.count(help.replies[0]).segments == 1, "\(name): \(help.replies)")
            // and so does the fifth wrong passcode in a passcode change, which also logs out
            var tried = facts()
            tried.accounts[0].firstName = String(repeating: "W", count: 40)
            tried.accounts[0].recentFailedLogins = [t0, t0, t0, t0]
            var changing = ConversationState(step: .askedCurrentPasscode, loggedInAt: t0, lastActivity: t0)
            let lock = try engine.reduce(&changing, Inbound(text: "guess-5"), evidence: .verified(false, against: storedHash), facts: tried, now: t0)
            #expect(lock.replies.count == 1 && Segments.count(lock.replies[0]).segments == 1, "\(name): \(lock.replies)")
        }
    }

    @Test func summerTimeIsFollowed() throws {
        // 2026-07-01 12:00 UTC is 08:00 in New York (UTC-4 then), 13:00 in London
        let july = Date(timeIntervalSince1970: 1_782_907_200)
        #expect(try #require(LocalTime(named: "America/New_York")).clock(july) == "08:00 New York time")
        #expect(try #require(LocalTime(named: "Europe/London")).clock(july) == "13:00 London time")
    }

    @Test func aLockAProfileAndAnInboxSayTheOrganisationsTimeAndDay() throws {
        // Given an organisation in New York, and Ivan, who joined at 03:00 UTC on Nov 25 (22:00 on Nov 24 there)
        let newYork = ConversationEngine(settings: .init(adminPhones: [adminPhone], localTime: LocalTime(named: "America/New_York")!))
        let lateEvening = t0.addingTimeInterval(-6 * 3600)
        var f = facts()
        f.accounts[0].createdAt = lateEvening
        f.inbox[1] = [InboxItem(id: 1, senderName: "Vera Commissar", kind: "direct", body: "Meeting at 8", createdAt: lateEvening)]
        // When he is locked out until 09:15 UTC
        var locked = f
        locked.accounts[0].lockedUntil = t0.addingTimeInterval(900)
        var state = ConversationState(lastActivity: t0)
        let lock = try newYork.reduce(&state, Inbound(text: "LOGIN"), facts: locked, now: t0)
        // Then the lock ends at 04:15 New York time
        #expect(lock.replies.count == 1 && lock.replies[0].contains("locked until 04:15 New York time."), "\(lock.replies)")
        // And, logged in, his profile and inbox give New York's day
        var loggedIn = ConversationState(loggedInAt: t0, lastActivity: t0)
        let profile = try newYork.reduce(&loggedIn, Inbound(text: "PROFILE"), facts: f, now: t0)
        #expect(profile.replies[0].contains("Member since 2026-11-24\n"), "\(profile.replies)")
        let inbox = try newYork.reduce(&loggedIn, Inbound(text: "MESSAGES"), facts: f, now: t0)
        #expect(inbox.replies[0].hasPrefix("1) Vera Commissar, Nov 24: Meeting at 8"), "\(inbox.replies)")
        // While in UTC they are Nov 25, as before
        let utc = try engine.reduce(&loggedIn, Inbound(text: "PROFILE"), facts: f, now: t0)
        #expect(utc.replies[0].contains("Member since 2026-11-25\n"), "\(utc.replies)")
    }
}
