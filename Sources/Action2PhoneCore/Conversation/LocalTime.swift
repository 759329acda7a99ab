// SPDX-License-Identifier: Apache-2.0
import Foundation

/// The organisation's time zone (`ACTION2PHONE_TIME_ZONE`), for the times and dates the bot texts: when a lock ends,
/// member since, an inbox message's day. JSON and the command-line tool stay in UTC (SPEC §6).
///
/// ```swift
/// LocalTime(named: "america/new_york")!.clock(lockEnd)   // "09:45 New York time"
/// LocalTime.utc.clock(lockEnd)                           // "14:45 UTC"
/// ```
public struct LocalTime: Sendable, Equatable {
    public let zone: TimeZone
    /// As the configuration named it, in IANA's spelling: for the startup banner.
    public let name: String
    /// The zone's city for an Area/City name (`New York`), else nil and the label is its offset (`GMT-5`, `UTC`).
    let city: String?

    public static let utc = LocalTime(zone: TimeZone(identifier: "UTC")!, name: "UTC", city: nil)

    private init(zone: TimeZone, name: String, city: String?) {
        self.zone = zone
        self.name = name
        self.city = city
    }

    /// An IANA time zone name in any case (`America/New_York`, `europe/london`, `UTC`); nil when it names none.
    public init?(named name: String) {
        // Linux's list of known zones leaves out UTC itself.
        let spelled = (["UTC"] + TimeZone.knownTimeZoneIdentifiers).first { $0.caseInsensitiveCompare(name) == .orderedSame } ?? name
        guard let zone = TimeZone(identifier: spelled) else { return nil }
        let parts = spelled.split(separator: "/")
        let isCity = parts.count >= 2 && parts[0] != "Etc"
        self.init(zone: zone, name: spelled, city: isCity ? String(parts.last!).replacing("_", with: " ") : nil)
    }

    /// `09:45 UTC`, `09:45 New York time`, `09:45 GMT+3`: at most 5 characters more than the time and a city.
    func clock(_ date: Date) -> String {
        let c = calendar.dateComponents([.hour, .minute], from: date)
        return String(format: "%02d:%02d ", c.hour ?? 0, c.minute ?? 0) + label(at: date)
    }

    /// `2026-11-25`
    func day(_ date: Date) -> String {
        let c = calendar.dateComponents([.year, .month, .day], from: date)
        return String(format: "%04d-%02d-%02d", c.year ?? 0, c.month ?? 0, c.day ?? 0)
    }

    /// `Nov 25`
    func shortDay(_ date: Date) -> String {
        let c = calendar.dateComponents([.month, .day], from: date)
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        return "\(months[((c.month ?? 1) - 1) % 12]) \(c.day ?? 0)"
    }

    private var calendar: Calendar {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        return calendar
    }

    /// A city's time, or the offset then in force (Linux names none of the zones' abbreviations: `GMT-5`, not `EST`).
    private func label(at date: Date) -> String {
        if let city { return city + " time" }
        let abbreviation = zone.abbreviation(for: date) ?? "UTC"
        return abbreviation == "GMT" ? "UTC" : abbreviation
    }
}
