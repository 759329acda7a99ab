// SPDX-License-Identifier: Apache-2.0

/// The character encoding an SMS is sent in.
public enum SMSEncoding: String, Sendable, Equatable {
    case gsm7 = "GSM-7"
    case ucs2 = "UCS-2"
}

/// How a text will be cut into SMS segments, counted as Twilio's segment calculator does.
public struct SegmentCount: Sendable, Equatable {
    public var encoding: SMSEncoding
    /// Septets (GSM-7) or UTF-16 code units (UCS-2).
    public var units: Int
    public var segments: Int
    /// The characters that force UCS-2, in order of first appearance (empty for GSM-7).
    public var nonGSMCharacters: [Character]
}

/// Segment counting for SMS (3GPP 23.038 GSM-7 with its extension table, or UCS-2).
///
/// ```swift
/// Segments.count("Privet, comrade")          // GSM-7, 1 segment
/// Segments.count("It’s time").nonGSMCharacters   // ["’"]: the curly quote forces UCS-2
/// ```
public enum Segments {
    static let basic: Set<Unicode.Scalar> = {
        var set = Set<Unicode.Scalar>()
        for s in "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
            .unicodeScalars
        {
            set.insert(s)
        }
        return set
    }()
    static let extended: Set<Unicode.Scalar> = ["\u{0C}", "^", "{", "}", "\\", "[", "~", "]", "|", "€"]

    /// Counts the encoding, units and segments of `text`.
    public static func count(_ text: String) -> SegmentCount {
        var nonGSM: [Character] = []
        for ch in text where !ch.unicodeScalars.allSatisfy({ basic.contains($0) || extended.contains($0) }) {
            if !nonGSM.contains(ch) { nonGSM.append(ch) }
        }
        if nonGSM.isEmpty {
            // Each scalar costs 1 septet, or 2 for an escape; an escape pair never straddles two segments.
            let costs = text.unicodeScalars.map { extended.contains($0) ? 2 : 1 }
            return SegmentCount(encoding: .gsm7, units: costs.reduce(0, +), segments: pack(costs, single: 160, multi: 153), nonGSMCharacters: [])
        }
        // UCS-2: UTF-16 units; a character (surrogate pair or cluster) never straddles two segments.
        let costs = text.map { $0.utf16.count }
        return SegmentCount(encoding: .ucs2, units: costs.reduce(0, +), segments: pack(costs, single: 70, multi: 67), nonGSMCharacters: nonGSM)
    }

    /// The first scalar of `character` outside GSM-7: what forces UCS-2 (the combining accent U+0301 of an "é" typed
    /// as "e" and an accent, not its "e").
    public static func nonGSMScalar(in character: Character) -> Unicode.Scalar {
        character.unicodeScalars.first { !basic.contains($0) && !extended.contains($0) } ?? character.unicodeScalars.first!
    }

    private static func pack(_ costs: [Int], single: Int, multi: Int) -> Int {
        let total = costs.reduce(0, +)
        if total <= single { return 1 }
        var segments = 1
        var used = 0
        for cost in costs {
            if used + cost > multi {
                segments += 1
                used = 0
            }
            used += cost
        }
        return segments
    }
}
