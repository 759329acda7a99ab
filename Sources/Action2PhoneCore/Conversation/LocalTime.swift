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
    /// The zone's city for an Area/City name (`New York`), else nil and the label is its offset (`GMT-6`, `UTC`).
    let city: String?

    public static let utc = LocalTime(zone: TimeZone(identifier: "UTC")!, name: "UTC", city: nil)

    private init(zone: TimeZone, name: String, city: String?) {
        self.zone = zone
        self.name = name
        self.city = city
    }

    /// An IANA time zone name (`America/New_York`, `Asia/Kolkata`, `UTC`), in any case (`europe/london`); nil for any
    /// other. Foundation would also read abbreviations and offsets (`PST`, `GMT+5`, `UTC+3`), which do not mean
    /// what they seem to (`PST` follows Los Angeles' summer time), so only `UTC`, `GMT` and Area/Location names are
    /// taken.
    public init?(named name: String) {
        // The system's list, which leaves out UTC itself and some current names (Asia/Kolkata), gives the spelling;
        // a name not on it is tried as IANA capitalises it.
        let spelled =
            (["UTC"] + TimeZone.knownTimeZoneIdentifiers).first { $0.caseInsensitiveCompare(name) == .orderedSame } ?? Self.capitalised(name)
        let parts = spelled.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        let areaName = parts.count >= 2 && Self.areas.contains(parts[0]) && parts.allSatisfy { !$0.isEmpty }
        guard spelled == "UTC" || spelled == "GMT" || areaName, let zone = TimeZone(identifier: spelled) else { return nil }
        let city = areaName && parts[0] != "Etc" ? parts.last!.replacing("_", with: " ") : nil
        // A city longer than Bahia Banderas would push a lockout's HELP past one text with the longest first name:
        // those (East-Saskatchewan) are labelled with their offset instead.
        self.init(zone: zone, name: spelled, city: city.flatMap { $0.count <= 14 ? $0 : nil })
    }

    /// The first parts of IANA's Area/Location names, with the old country ones (`US/Eastern`).
    private static let areas: Set<String> = [
        "Africa", "America", "Antarctica", "Arctic", "Asia", "Atlantic", "Australia", "Europe", "Indian", "Pacific", "Etc",
        "US", "Canada", "Brazil", "Chile", "Mexico",
    ]

    /// `asia/ho_chi_minh` as IANA writes it, `Asia/Ho_Chi_Minh`; `etc/gmt+5` as `Etc/GMT+5`.
    private static func capitalised(_ name: String) -> String {
        name.split(separator: "/", omittingEmptySubsequences: false).map { part -> String in
            let upper = part.uppercased()
            if ["US", "GMT", "UTC"].contains(where: { upper.hasPrefix($0) }) && upper.count <= 6 { return upper }
            var out = ""
            var startOfWord = true
            for ch in part {
                out += startOfWord ? ch.uppercased() : ch.lowercased()
                startOfWord = ch == "_" || ch == "-"
            }
            return out
        }.joined(separator: "/")
    }

    /// `09:45 UTC`, `09:45 New York time`, `09:45 GMT-6`: the label is at most 19 characters. The time a lock ends,
    /// rounded up to the minute: at the time said, it has ended (09:44:50 is told as 09:45, not 09:44).
    func clock(_ date: Date) -> String {
        let shown = Date(timeIntervalSince1970: (date.timeIntervalSince1970 / 60).rounded(.up) * 60)
        let c = calendar.dateComponents([.hour, .minute], from: shown)
        return String(format: "%02d:%02d ", c.hour ?? 0, c.minute ?? 0) + label(at: shown)
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
