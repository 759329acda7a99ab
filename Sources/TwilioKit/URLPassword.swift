// SPDX-License-Identifier: Apache-2.0

/// URLs as they may be printed or logged.
public enum URLPassword {
    /// `url` with a password in it (`https://user:pass@host`, which Twilio supports for HTTP basic auth, and which a
    /// proxy in `TWILIO_API_BASE_URL` may hold) replaced by `***`.
    public static func masked(_ url: String) -> String {
        guard let scheme = url.range(of: "://") else { return url }
        let authorityEnd = url[scheme.upperBound...].firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? url.endIndex
        guard let at = url[scheme.upperBound..<authorityEnd].lastIndex(of: "@"),
            let colon = url[scheme.upperBound..<at].firstIndex(of: ":")
        else { return url }
        return String(url[..<url.index(after: colon)]) + "***" + String(url[at...])
    }
}
