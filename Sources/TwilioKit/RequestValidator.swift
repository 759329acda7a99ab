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
        // The URL as given (without its fragment) first; the variants are built only when it fails. Stopping at
        // a match tells a caller nothing they did not have: they sent a valid signature. A wrong signature is
        // checked against every variant.
        let asGiven = TwilioSignature.withoutFragment(url)
        return matches(asGiven) || TwilioSignature.urlVariants(url).contains { $0 != asGiven && matches($0) }
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
        // Every name and value side by side in one buffer, and the fields sorted as ranges of it: strings
        // compare by Unicode rules, not bytes, and copying each into its own array cost more than the HMAC.
        var bytes = [UInt8]()
        bytes.reserveCapacity(params.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count })
        var spans: [(name: Range<Int>, value: Range<Int>)] = []
        spans.reserveCapacity(params.count)
        for field in params {
            let nameStart = bytes.count
            bytes += field.name.utf8
            let valueStart = bytes.count
            bytes += field.value.utf8
            spans.append((nameStart..<valueStart, valueStart..<bytes.count))
        }
        return bytes.withUnsafeBufferPointer { all in
            func order(_ a: Range<Int>, _ b: Range<Int>) -> Int {
                let common = min(a.count, b.count)
                for i in 0..<common where all[a.lowerBound + i] != all[b.lowerBound + i] {
                    return Int(all[a.lowerBound + i]) - Int(all[b.lowerBound + i])
                }
                return a.count - b.count
            }
            spans.sort {
                let names = order($0.name, $1.name)
                return names == 0 ? order($0.value, $1.value) < 0 : names < 0
            }
            var out = [UInt8]()
            out.reserveCapacity(all.count)
            var previous: (name: Range<Int>, value: Range<Int>)? = nil
            for span in spans {
                // A repeated value counts once.
                if let previous, order(previous.name, span.name) == 0 && order(previous.value, span.value) == 0 { continue }
                out += all[span.name.lowerBound..<span.value.upperBound]
                previous = span
            }
            return out
        }
    }

    /// `s` with every occurrence of the bytes of `target` replaced by those of `replacement`.
    static func replacingBytes(_ s: String, _ target: String, with replacement: String) -> String {
        let bytes = Array(s.utf8)
        let pattern = Array(target.utf8)
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            if bytes[i...].starts(with: pattern) {
                out += replacement.utf8
                i += pattern.count
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `url` up to its `#`, if it has one.
    static func withoutFragment(_ url: String) -> String {
        guard let hash = url.utf8.firstIndex(of: UInt8(ascii: "#")) else { return url }
        return String(url[..<hash])
    }

    /// The URLs the SDKs try for one request URL, without duplicates, the URL as given first.
    public static func urlVariants(_ url: String) -> [String] {
        let base = withoutFragment(url)
        var out: [String] = []
        func add(_ s: String) { if !out.contains(s) { out.append(s) } }
        guard let parts = URLParts(base) else {
            add(base)
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
        for s in out where s.utf8.contains(UInt8(ascii: "'")) || s.utf8.firstRange(of: "%27".utf8) != nil {
            add(replacingBytes(s, "'", with: "%27"))
            add(replacingBytes(s, "%27", with: "'"))
        }
        return out
    }

    /// The raw value of the first query parameter `name` in `url`, percent-decoded, or `nil`.
    static func queryValue(named name: String, in url: String) -> String? {
        let bytes = Array(withoutFragment(url).utf8)
        guard let q = bytes.firstIndex(of: UInt8(ascii: "?")) else { return nil }
        for pair in bytes[(q + 1)...].split(separator: UInt8(ascii: "&")) {
            let kv = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            if kv[0].elementsEqual(name.utf8) {
                return FormCodec.percentDecode(kv.count > 1 ? kv[1] : [])
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
        // Cut at bytes, not characters: a combining mark after `/` or `:` must not hide it.
        let bytes = Array(url.utf8)
        func text(_ slice: ArraySlice<UInt8>) -> String { String(decoding: slice, as: UTF8.self) }
        guard let sep = bytes.firstRange(of: "://".utf8) else { return nil }
        scheme = text(bytes[..<sep.lowerBound])
        let afterScheme = bytes[sep.upperBound...]
        let authorityEnd = afterScheme.firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") } ?? afterScheme.endIndex
        var authority = afterScheme[..<authorityEnd]
        rest = text(afterScheme[authorityEnd...])
        if let at = authority.lastIndex(of: UInt8(ascii: "@")) {
            userinfo = text(authority[..<at])
            authority = authority[(at + 1)...]
        }
        // An IPv6 literal keeps its colons inside the brackets.
        let portSearchStart = authority.lastIndex(of: UInt8(ascii: "]")) ?? authority.startIndex
        if let colon = authority[portSearchStart...].lastIndex(of: UInt8(ascii: ":")) {
            host = text(authority[..<colon])
            port = text(authority[(colon + 1)...])
        } else {
            host = text(authority)
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

/// The tokens never show, however the validator or what holds it is printed.
extension RequestValidator: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String { "RequestValidator(\(keys.count) token(s))" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["tokens": keys.count]) }
}
