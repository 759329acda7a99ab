// SPDX-License-Identifier: Apache-2.0
import TwilioKit

/// libFuzzer entry point for `RequestValidator` and `TwilioSignature`.
///
/// The input is cut into a request: byte 0 is the URL's length, byte 1 the signature header's length
/// (0–63), byte 2 picks which signature byte to flip, then come the URL, the header, and a form body
/// (decoded with `FormCodec`, or split on `&` and `=` when it does not decode). Checked:
///
/// - validating the fuzzed header never traps, and it passes only if it equals the signature of one of
///   `urlVariants(url)` under a configured token;
/// - the signature `TwilioSignature.compute` makes over the URL without its fragment passes, under the
///   primary and the secondary token, and fails under another token or with any one byte flipped;
/// - a JSON-body request (`bodySHA256` appended to the URL) signed the same way passes, and fails when
///   the body changes;
/// - `signedParams` gives the bytes of a naive reference (sort by name bytes, then value bytes; exact
///   repeats once).
///
/// A failed property prints what broke and stops, so libFuzzer saves the input as a crash artifact.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRequestValidator(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = Array(UnsafeRawBufferPointer(start: start, count: count))
    guard input.count >= 3 else { return 0 }
    let request = FuzzedRequest(input)
    checkFuzzedSignature(request)
    checkComputedSignature(request)
    checkJSONBody(request)
    checkSignedParams(request.params)
    return 0
}

/// `signedParams` agrees with the rule written the slow, obvious way: every (name, value) as bytes, sorted
/// by name bytes then value bytes, exact repeats once, concatenated.
private func checkSignedParams(_ params: [FormField]) {
    var pairs = params.map { (name: Array($0.name.utf8), value: Array($0.value.utf8)) }
    pairs.sort { $0.name == $1.name ? $0.value.lexicographicallyPrecedes($1.value) : $0.name.lexicographicallyPrecedes($1.name) }
    var expected: [UInt8] = []
    for (i, pair) in pairs.enumerated() where i == 0 || pairs[i - 1].name != pair.name || pairs[i - 1].value != pair.value {
        expected += pair.name + pair.value
    }
    let actual = TwilioSignature.signedParams(params)
    require(actual == expected, "signedParams disagrees with the reference", params, actual, expected)
}

private let primary = "fixture-auth-token-0123456789abcdef"
private let secondary = "secondary-token-during-rotation"
private let validator = RequestValidator(authTokens: [primary, secondary])

/// A webhook request cut out of fuzz bytes.
private struct FuzzedRequest {
    var url: String
    var signature: String
    var params: [FormField]
    var body: [UInt8]
    var flip: Int

    init(_ input: [UInt8]) {
        var rest = input[3...]
        let urlBytes = rest.prefix(Int(input[0]))
        rest = rest.dropFirst(urlBytes.count)
        let signatureBytes = rest.prefix(Int(input[1] & 0x3f))
        rest = rest.dropFirst(signatureBytes.count)
        url = String(decoding: urlBytes, as: UTF8.self)
        signature = String(decoding: signatureBytes, as: UTF8.self)
        body = Array(rest)
        params = FormCodec.decode(body) ?? Self.rawFields(body)
        flip = Int(input[2])
    }

    /// Fields from a body that is not a valid form: split on `&` then at the first `=`, bytes repaired to UTF-8.
    static func rawFields(_ body: [UInt8]) -> [FormField] {
        body.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: false).map { piece in
            let parts = piece.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            return FormField(String(decoding: parts[0], as: UTF8.self), String(decoding: parts.count == 2 ? parts[1] : [], as: UTF8.self))
        }
    }

    /// The URL up to its first `#` byte: what Twilio signs (a fragment is never sent).
    var urlWithoutFragment: String {
        String(decoding: url.utf8.prefix { $0 != UInt8(ascii: "#") }, as: UTF8.self)
    }
}

// MARK: - Properties

private func checkFuzzedSignature(_ r: FuzzedRequest) {
    let valid = validator.isValid(signature: r.signature, url: r.url, params: r.params)
    let expected =
        !r.signature.isEmpty
        && TwilioSignature.urlVariants(r.url).contains { variant in
            [primary, secondary].contains { TwilioSignature.compute(authToken: $0, url: variant, params: r.params).utf8.elementsEqual(r.signature.utf8) }
        }
    require(valid == expected, "isValid(\(valid)) disagrees with the URL variants' signatures (\(expected))", r.url, r.signature, r.params)
    require(!validator.isValid(signature: nil, url: r.url, params: r.params), "a missing signature passed", r.url)
    require(!validator.isValid(signature: "", url: r.url, params: r.params), "an empty signature passed", r.url)
}

private func checkComputedSignature(_ r: FuzzedRequest) {
    let signedURL = r.urlWithoutFragment
    for token in [primary, secondary] {
        let signature = TwilioSignature.compute(authToken: token, url: signedURL, params: r.params)
        require(validator.isValid(signature: signature, url: r.url, params: r.params), "a correct signature failed", r.url, signature, r.params)
        var flipped = Array(signature.utf8)
        flipped[r.flip % flipped.count] ^= UInt8(truncatingIfNeeded: r.flip >> 5) | 1
        let tampered = String(decoding: flipped, as: UTF8.self)
        require(!validator.isValid(signature: tampered, url: r.url, params: r.params), "a signature with a flipped byte passed", r.url, tampered, r.params)
    }
    let foreign = TwilioSignature.compute(authToken: "someone-else's-token", url: signedURL, params: r.params)
    require(!validator.isValid(signature: foreign, url: r.url, params: r.params), "another account's signature passed", r.url, foreign, r.params)
}

private func checkJSONBody(_ r: FuzzedRequest) {
    let base = r.urlWithoutFragment
    guard !base.utf8.contains(UInt8(ascii: "?")) else { return }  // keeps `bodySHA256` the first query parameter
    let url = base + "?bodySHA256=" + Crypto.hex(Crypto.sha256(r.body))
    let signature = TwilioSignature.compute(authToken: primary, url: url, params: [])
    require(validator.isValid(signature: signature, url: url, body: r.body), "a correctly signed JSON body failed", url, signature, r.body)
    require(!validator.isValid(signature: signature, url: url, body: r.body + [0]), "a changed JSON body passed", url, r.body)
}

// MARK: - Reporting

/// Stops with `message` and the values involved when `condition` is false (`precondition` drops its
/// message in release builds; `fatalError` keeps it).
private func require(_ condition: Bool, _ message: String, _ values: Any?...) {
    guard !condition else { return }
    var text = "FUZZ PROPERTY FAILED: \(message)\n"
    for value in values { text += "  \(String(reflecting: value))\n" }
    fatalError(text)
}
