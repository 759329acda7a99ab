// SPDX-License-Identifier: Apache-2.0

/// Validates `X-Twilio-Signature` exactly as Twilio's official SDKs do.
///
/// The signed string is the URL Twilio requested (raw bytes, query included, fragment excluded)
/// followed by `name + value` for every POST field, names in byte order and, for a repeated name,
/// each distinct value in byte order. The signature is base64(HMAC-SHA1(auth token, signed string)).
/// Like the SDKs, a request is accepted when any URL variant matches: as given, without its port,
/// with the scheme's default port, without `user:pass@`, and with `'` and `%27` swapped.
///
/// ```swift
/// let validator = RequestValidator(authTokens: [primary, secondary])
/// guard validator.isValid(signature: header, url: "https://bot.example.org/sms", params: fields) else { … }
/// ```
public struct RequestValidator: Sendable {
    private let keys: [[UInt8]]

    /// Accepts signatures made with any of `authTokens` (primary first, then a secondary during rotation).
    public init(authTokens: [String]) {
        self.keys = authTokens.filter { !$0.isEmpty }.map { Array($0.utf8) }
    }

    /// Checks a form-encoded request. A missing or empty signature is never valid.
    public func isValid(signature: String?, url: String, params: [FormField]) -> Bool {
        guard let signature, !signature.isEmpty, !keys.isEmpty else { return false }
        let given = Array(signature.utf8)
        let tail = TwilioSignature.signedParams(params)
        func matches(_ candidate: String) -> Bool {
            let message = Array(candidate.utf8) + tail
            return keys.contains { key in
                Crypto.constantTimeEqual(given, Array(Crypto.base64(Crypto.hmac(.sha1, key: key, message: message)).utf8))
            }
        }
        // The URL as given first, the variants only when it fails. Stopping at a match tells a caller nothing
        // they did not have: they sent a valid signature. A wrong signature is checked against every variant.
        let variants = TwilioSignature.urlVariants(url)
        return variants.contains(where: matches)
    }

    /// Checks a request with a JSON body: the URL must carry `bodySHA256` (lower-case hex SHA-256 of the raw
    /// body) and the signature covers the URL alone. Without `bodySHA256` the request is invalid.
    public func isValid(signature: String?, url: String, body: [UInt8]) -> Bool {
        guard let declared = TwilioSignature.queryValue(named: "bodySHA256", in: url) else { return false }
        let actual = Crypto.hex(Crypto.sha256(body))
        guard Crypto.constantTimeEqual(Array(declared.lowercased().utf8), Array(actual.utf8)) else { return false }
        return isValid(signature: signature, url: url, params: [])
    }
}

/// The pieces of Twilio's signature scheme, exposed for signing test and replay traffic.
public enum TwilioSignature {
    /// The signature Twilio would send for `url` and `params` under `authToken`.
    public static func compute(authToken: String, url: String, params: [FormField]) -> String {
        let message = Array(url.utf8) + signedParams(params)
        return Crypto.base64(Crypto.hmac(.sha1, key: Array(authToken.utf8), message: message))
    }

    /// `name + value` for every field: names in byte order, each distinct value once, in byte order.
    public static func signedParams(_ params: [FormField]) -> [UInt8] {
        let pairs = params.map { (name: Array($0.name.utf8), value: Array($0.value.utf8)) }.sorted {
            $0.name == $1.name ? $0.value.lexicographicallyPrecedes($1.value) : $0.name.lexicographicallyPrecedes($1.name)
        }
        var out = [UInt8]()
        out.reserveCapacity(pairs.reduce(0) { $0 + $1.name.count + $1.value.count })
        var previous: (name: [UInt8], value: [UInt8])? = nil
        for pair in pairs {
            if let previous, previous.name == pair.name && previous.value == pair.value { continue }  // a repeated value counts once
            out += pair.name
            out += pair.value
            previous = pair
        }
        return out
    }

    /// The URLs the SDKs try for one request URL, without duplicates, the URL as given first.
    public static func urlVariants(_ url: String) -> [String] {
        let withoutFragment = url.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? url
        var out: [String] = []
        func add(_ s: String) { if !out.contains(s) { out.append(s) } }
        guard let parts = URLParts(withoutFragment) else {
            add(withoutFragment)
            return out
        }
        var authorities: [URLParts] = [parts]
        if parts.userinfo != nil {
            var bare = parts
            bare.userinfo = nil
            authorities.append(bare)
        }
        for p in authorities {
            add(p.string)
            if p.port != nil {
                var stripped = p
                stripped.port = nil
                add(stripped.string)
            } else if let port = p.defaultPort {
                var explicit = p
                explicit.port = String(port)
                add(explicit.string)
            }
        }
        // twilio-node's legacy fallback: Twilio has signed `'` both raw and as `%27`.
        for s in out where s.contains("'") || s.contains("%27") {
            add(s.replacing("'", with: "%27"))
            add(s.replacing("%27", with: "'"))
        }
        return out
    }

    /// The raw value of the first query parameter `name` in `url`, percent-decoded, or `nil`.
    static func queryValue(named name: String, in url: String) -> String? {
        guard let q = url.firstIndex(of: "?") else { return nil }
        var query = url[url.index(after: q)...]
        if let hash = query.firstIndex(of: "#") { query = query[..<hash] }
        for pair in query.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if kv.first.map(String.init) == name {
                return FormCodec.percentDecode(ArraySlice(Array((kv.count > 1 ? kv[1] : "").utf8)))
            }
        }
        return nil
    }
}

/// A URL cut into the pieces the port and userinfo variants need, without re-encoding anything.
struct URLParts {
    var scheme: String
    var userinfo: String?
    var host: String
    var port: String?
    var rest: String

    init?(_ url: String) {
        guard let sep = url.firstRange(of: "://") else { return nil }
        scheme = String(url[..<sep.lowerBound])
        let afterScheme = url[sep.upperBound...]
        let authorityEnd = afterScheme.firstIndex { $0 == "/" || $0 == "?" } ?? afterScheme.endIndex
        var authority = afterScheme[..<authorityEnd]
        rest = String(afterScheme[authorityEnd...])
        if let at = authority.lastIndex(of: "@") {
            userinfo = String(authority[..<at])
            authority = authority[authority.index(after: at)...]
        }
        // An IPv6 literal keeps its colons inside the brackets.
        let portSearchStart = authority.lastIndex(of: "]") ?? authority.startIndex
        if let colon = authority[portSearchStart...].lastIndex(of: ":") {
            host = String(authority[..<colon])
            port = String(authority[authority.index(after: colon)...])
        } else {
            host = String(authority)
        }
        if host.isEmpty { return nil }
    }

    var defaultPort: Int? {
        switch scheme.lowercased() {
        case "https": 443
        case "http": 80
        default: nil
        }
    }

    var string: String {
        var s = scheme + "://"
        if let userinfo { s += userinfo + "@" }
        s += host
        if let port { s += ":" + port }
        return s + rest
    }
}
