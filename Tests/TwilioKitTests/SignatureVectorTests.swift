import Testing

@testable import TwilioKit

/// Every vector of twilio.md §2, checked both ways: our signer reproduces the expected signature over the
/// signed URL, and the validator accepts it for the input URL (the one a server would see).
@Suite("X-Twilio-Signature official vectors")
struct SignatureVectorTests {
    static let token = "12345"
    static let u = "https://mycompany.com/myapp.php?foo=1&bar=2"
    static let p: [FormField] = [
        .init("CallSid", "CA1234567890ABCDE"), .init("Caller", "+14158675309"), .init("Digits", "1234"),
        .init("From", "+14158675309"), .init("To", "+18005551212"),
    ]
    static let g: [FormField] = p + [.init("ReasonConferenceEnded", "test"), .init("Reason", "Participant")]

    struct Vector: Sendable, CustomTestStringConvertible {
        var number: Int
        var signature: String
        var signedURL: String
        var inputURL: String
        var params: [FormField]
        var token: String = SignatureVectorTests.token
        var testDescription: String { "vector \(number)" }
    }

    static let formVectors: [Vector] = [
        .init(number: 1, signature: "RSOYDt4T1cUTdK1PDd93/VVr8B8=", signedURL: u, inputURL: u, params: p),
        .init(
            number: 2,
            signature: "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
            signedURL: u,
            inputURL: "https://mycompany.com:1234/myapp.php?foo=1&bar=2",
            params: p
        ),
        .init(
            number: 3,
            signature: "kvajT1Ptam85bY51eRf/AJRuM3w=",
            signedURL: "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            inputURL: u,
            params: p
        ),
        .init(
            number: 4,
            signature: "0ZXoZLH/DfblKGATFgpif+LLRf4=",
            signedURL: "http://mycompany.com:80/myapp.php?foo=1&bar=2",
            inputURL: "http://mycompany.com/myapp.php?foo=1&bar=2",
            params: p
        ),
        .init(
            number: 5,
            signature: "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=",
            signedURL: "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
            inputURL: "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
            params: p
        ),
        .init(
            number: 6,
            signature: "CYn1h0gLBdNxDGkKJg6hYohgeD8=",
            signedURL: "https://mycompany.com:1234/myapp.php?foo=1&bar=2",
            inputURL: "https://mycompany.com:1234/myapp.php?foo=1&bar=2",
            params: p
        ),
        .init(
            number: 7,
            signature: "IK+Dwps556ElfBT0I3Rgjkr1wJU=",
            signedURL: u,
            inputURL: u,
            params: [
                .init("Sid", "CA123"), .init("SidAccount", "AC123"), .init("Digits", "5678"), .init("Digits", "1234"), .init("Digits", "1234"),
            ]
        ),
        .init(
            number: 8,
            signature: "83O6e2vORAoJHUNzJjDWN1jz+BA=",
            signedURL: u,
            inputURL: u,
            params: [
                .init("MessagingBinding.Address", "+1415xxxxxxx"), .init("MessagingBinding.Address", "+1325xxxxxxx"),
            ]
        ),
        .init(
            number: 12,
            signature: "CukzLTc1tT5dXEDIHm/tKBanW10=",
            signedURL: "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2",
            inputURL: "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2",
            params: p
        ),
        .init(
            number: 13,
            signature: "ZQFR1PTIZXF2MXB8ZnKCvnnA+rI=",
            signedURL: "https://user:pass@mycompany.com:443/myapp.php?foo=1&bar=2",
            inputURL: "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2",
            params: p
        ),
        .init(
            number: 14,
            signature: "2YRLlVAflCqxaNicjMpJcSTgzSs=",
            signedURL: "https://user@mycompany.com/myapp.php?foo=1&bar=2",
            inputURL: "https://user@mycompany.com/myapp.php?foo=1&bar=2",
            params: p
        ),
        .init(
            number: 15,
            signature: "aZfj4hyX1MLZhSS6QIL18Vn2/RA=",
            signedURL: "https://user@mycompany.com:443/myapp.php?foo=1&bar=2",
            inputURL: "https://user@mycompany.com/myapp.php?foo=1&bar=2",
            params: p
        ),
        .init(
            number: 16,
            signature: "TfZzewPq8wqrGlMfyAud8+/IvJ0=",
            signedURL: u + "&Body=It%27s+amazing",
            inputURL: u + "&Body=It's+amazing",
            params: p
        ),
        .init(
            number: 17,
            signature: "vOEb5UThFn24KEfnOFLQY2AE5FY=",
            signedURL: u,
            inputURL: "https://mycompany.com:1234/myapp.php?foo=1&bar=2",
            params: g
        ),
        .init(
            number: 18,
            signature: "n2xBNyzSW7rfYStDtOFiFMv7qNo=",
            signedURL: "http://mycompany.com/myapp.php?foo=1&bar=2",
            inputURL: "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
            params: g
        ),
        .init(
            number: 20,
            signature: "NBdBDr/T/lgjI+tlgpXjKZQZs/k=",
            signedURL: u,
            inputURL: u,
            params: FormCodec.decode("property=value&boolean=true")!
        ),
        .init(number: 21, signature: "zYQTYrRWXE7LtzbG4PfP7/bkkGo=", signedURL: u, inputURL: u, params: []),
        .init(
            number: 22,
            signature: "1xaxFBvyzXYvWplzNOSs28HWO94=",
            signedURL: "https://mycompany.com/myapp.php",
            inputURL: "https://mycompany.com/myapp.php",
            params: p
        ),
        .init(
            number: 23,
            signature: "hYkNsTBttoNGkyCS0p+wWmQoRTg=",
            signedURL: "https://mycompany.com/myapp.php?foo=1&bar=2&type=thiswontbeusedinthesignaturegeneratorandsoshouldbeignored",
            inputURL: "https://mycompany.com/myapp.php?foo=1&bar=2&type=thiswontbeusedinthesignaturegeneratorandsoshouldbeignored",
            params: p
        ),
        .init(
            number: 24,
            signature: "er2tvAP1Wx+iuTTE2BPgvEaN1cs=",
            signedURL: "https://mycompany.com/myapp.php?foo=hello%20world&bar=test%2Bvalue",
            inputURL: "https://mycompany.com/myapp.php?foo=hello%20world&bar=test%2Bvalue",
            params: p
        ),
        .init(
            number: 25,
            signature: "dCPiR4WtQ6QFN6pJh81CtlCcWLQ=",
            signedURL: u,
            inputURL: u,
            params: [
                .init("Message", "Hello & goodbye! @#$%^*()"), .init("From", "+1 (415) 867-5309"), .init("Special", "unicode: ñáéíóú"),
            ]
        ),
        .init(
            number: 26,
            signature: "9HHp/OqQMEwdrVebHDdA/+tqjX8=",
            signedURL: u,
            inputURL: u,
            params: [
                .init("Digits", ""), .init("CallSid", "CA1234567890ABCDE"), .init("EmptyParam", ""),
            ]
        ),
        .init(
            number: 27,
            signature: "L9lTTwIlxM1xGAtLRwhOSZggRhM=",
            signedURL: u,
            inputURL: u,
            params: [
                .init("Digits", ""), .init("CallSid", "CA1234567890ABCDE"), .init("NullParam", ""),
            ]
        ),
        .init(
            number: 28,
            signature: "enveUe73ZTVLAekHxez3Qx6JuuQ=",
            signedURL: u,
            inputURL: u,
            params: [
                .init("Zebra", "last"), .init("Alpha", "first"), .init("Beta", "second"), .init("Gamma", "third"),
            ]
        ),
        .init(
            number: 29,
            signature: "G/Hx6mqqnjUNlPAoi2Sp9bGst0g=",
            signedURL: "https://mycompany.com/webhook/España?año=2023",
            inputURL: "https://mycompany.com/webhook/España?año=2023",
            params: p
        ),
        .init(
            number: 30,
            signature: "jDK7WKT8wiNrwggd4ceTv4e1MJ4=",
            signedURL: u,
            inputURL: u,
            params: [
                .init("callSid", "lowercase"), .init("CallSid", "uppercase"), .init("CALLSID", "allcaps"),
            ]
        ),
        .init(
            number: 31,
            signature: "A9lH3u16NjyiiM/+wylw5rirFUs=",
            signedURL: "https://mycompany.com:443//myapp.php?foo=1&bar=2",
            inputURL: "https://mycompany.com:443//myapp.php?foo=1&bar=2",
            params: p
        ),
        .init(
            number: 32,
            signature: "g9IN/x4Cft2g517EjYvEvM/W7LU=",
            signedURL: "https://MyCompany.com/myapp.php?foo=1&bar=2",
            inputURL: "https://MyCompany.com/myapp.php?foo=1&bar=2",
            params: p
        ),
        .init(
            number: 33,
            signature: "PCqOZm8cnu/L6+u5i5fuEd+Iac4=",
            signedURL: "https://MyCompany.com:1234/myapp.php?foo=1&bar=2",
            inputURL: "https://MyCompany.com:1234/myapp.php?foo=1&bar=2",
            params: p
        ),
        .init(
            number: 34,
            signature: "XY7AlKOKL6im4yWyX84gldUrtis=",
            signedURL: "http://MyCompany.com/myapp.php?foo=1&bar=2",
            inputURL: "http://MyCompany.com/myapp.php?foo=1&bar=2",
            params: p
        ),
        .init(
            number: 35,
            signature: "PJ08CxXr7KLPjEQCTc8LkUSMwSM=",
            signedURL: "http://username:password@MyCompany.com/myapp.php?foo=1&bar=2",
            inputURL: "http://username:password@MyCompany.com/myapp.php?foo=1&bar=2",
            params: p
        ),
        .init(
            number: 36,
            signature: "hy/l8pca+LFms4cvRdv8uiP6NGc=",
            signedURL: "HTTP://username:password@MyCompany.com/myapp.php?foo=1&bar=2",
            inputURL: "HTTP://username:password@MyCompany.com/myapp.php?foo=1&bar=2",
            params: p
        ),
        .init(
            number: 37,
            signature: "SkTSKyDJH9kUlhItI0slbgZ1UsI=",
            signedURL: "http://Username:Password@MyCompany.com/myapp.php?foo=1&bar=2",
            inputURL: "http://Username:Password@MyCompany.com/myapp.php?foo=1&bar=2",
            params: p
        ),
        .init(
            number: 38,
            signature: "L/OH5YylLD5NRKLltdqwSvS0BnU=",
            signedURL: "https://example.com/myapp.php?foo=1&bar=2",
            inputURL: "https://example.com/myapp.php?foo=1&bar=2",
            params: [
                .init("CallSid", "CA1234567890ABCDE"), .init("Caller", "+14158675310"), .init("Digits", "1234"),
                .init("From", "+14158675310"), .init("To", "+18005551212"),
            ]
        ),
        .init(
            number: 39,
            signature: "fF+xx6dTinOaCdZ0aIeNkHr/ZAA=",
            signedURL: "http://www.postbin.org/1ed898x",
            inputURL: "http://www.postbin.org/1ed898x",
            params: [
                .init("AccountSid", "AC9a9f9392lad99kla0sklakjs90j092j3"), .init("ApiVersion", "2010-04-01"),
                .init("CallSid", "CAd800bb12c0426a7ea4230e492fef2a4f"), .init("CallStatus", "ringing"),
                .init("Called", "+15306384866"), .init("CalledCity", "OAKLAND"), .init("CalledCountry", "US"),
                .init("CalledState", "CA"), .init("CalledZip", "94612"), .init("Caller", "+15306666666"),
                .init("CallerCity", "SOUTH LAKE TAHOE"), .init("CallerCountry", "US"), .init("CallerName", "CA Wireless Call"),
                .init("CallerState", "CA"), .init("CallerZip", "89449"), .init("Direction", "inbound"),
                .init("From", "+15306666666"), .init("FromCity", "SOUTH LAKE TAHOE"), .init("FromCountry", "US"),
                .init("FromState", "CA"), .init("FromZip", "89449"), .init("To", "+15306384866"), .init("ToCity", "OAKLAND"),
                .init("ToCountry", "US"), .init("ToState", "CA"), .init("ToZip", "94612"),
            ],
            token: "1c892n40nd03kdnc0112slzkl3091j20"
        ),
    ]

    @Test(arguments: formVectors)
    func signerReproducesVector(_ v: Vector) {
        #expect(TwilioSignature.compute(authToken: v.token, url: v.signedURL, params: v.params) == v.signature)
    }

    @Test(arguments: formVectors)
    func validatorAcceptsVectorForInputURL(_ v: Vector) {
        let validator = RequestValidator(authTokens: [v.token])
        #expect(validator.isValid(signature: v.signature, url: v.inputURL, params: v.params))
    }

    @Test(arguments: formVectors)
    func validatorRejectsVectorWithOtherToken(_ v: Vector) {
        let validator = RequestValidator(authTokens: ["not-the-token"])
        #expect(!validator.isValid(signature: v.signature, url: v.inputURL, params: v.params))
    }

    @Test func vector7SignedTailIsDistinctSortedValues() {
        let params: [FormField] = [
            .init("Sid", "CA123"), .init("SidAccount", "AC123"), .init("Digits", "5678"), .init("Digits", "1234"), .init("Digits", "1234"),
        ]
        #expect(String(decoding: TwilioSignature.signedParams(params), as: UTF8.self) == "Digits1234Digits5678SidCA123SidAccountAC123")
    }

    @Test func signedTailIsInUTF8ByteOrderNotUnicodeOrder() {
        // "é" precomposed (C3 A9) and decomposed (65 CC 81) are equal as Swift strings but not as bytes: both
        // count, each in byte order, and "Z" (5A) comes before "a" (61) and "é" (C3).
        let params: [FormField] = [.init("\u{E9}", "1"), .init("e\u{301}", "2"), .init("a", "x"), .init("Z", "\u{E9}"), .init("Z", "e\u{301}")]
        #expect(String(decoding: TwilioSignature.signedParams(params), as: UTF8.self) == "Ze\u{301}Z\u{E9}axe\u{301}2\u{E9}1")
    }

    @Test func aPasswordInTheURLIsLeftOutOfWhatIsSignedAsTheSDKsLeaveItOut() {
        // Given the server's URL with a user and password in it (a proxy's basic auth), which Twilio does not sign
        let v = RequestValidator(authTokens: [Self.token])
        let signedBare = TwilioSignature.compute(authToken: Self.token, url: "https://bot.example.org:8443/sms", params: Self.p)
        // Then the signature over the URL without them is valid for it, with or without the port
        #expect(v.isValid(signature: signedBare, url: "https://u:pw@bot.example.org:8443/sms", params: Self.p))
        let noPort = TwilioSignature.compute(authToken: Self.token, url: "https://bot.example.org/sms", params: Self.p)
        #expect(v.isValid(signature: noPort, url: "https://u:pw@bot.example.org:443/sms", params: Self.p))
        // And one over another host or port is not
        #expect(!v.isValid(signature: signedBare, url: "https://u:pw@bot.example.org:9443/sms", params: Self.p))
        #expect(!v.isValid(signature: signedBare, url: "https://u:pw@other.example.org:8443/sms", params: Self.p))
    }

    @Test func vector8AcceptsEitherValueOrder() {
        let v = RequestValidator(authTokens: [Self.token])
        let a: [FormField] = [.init("MessagingBinding.Address", "+1325xxxxxxx"), .init("MessagingBinding.Address", "+1415xxxxxxx")]
        #expect(v.isValid(signature: "83O6e2vORAoJHUNzJjDWN1jz+BA=", url: Self.u, params: a))
        #expect(v.isValid(signature: "83O6e2vORAoJHUNzJjDWN1jz+BA=", url: Self.u, params: a.reversed()))
    }

    @Test func signedStringMatchesDocumentedExample() {
        let signed = Self.u + String(decoding: TwilioSignature.signedParams(Self.p), as: UTF8.self)
        #expect(
            signed == "https://mycompany.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDECaller+14158675309Digits1234From+14158675309To+18005551212"
        )
    }

    // MARK: - Vectors that must fail

    @Test func vector19WrongSortOrderMustFail() {
        let v = RequestValidator(authTokens: [Self.token])
        #expect(!v.isValid(signature: "95+Bu0JVPi0r/SsESZCVf0dWAjw=", url: Self.u, params: Self.g))
    }

    @Test func vector32HostCaseMatters() {
        let v = RequestValidator(authTokens: [Self.token])
        #expect(!v.isValid(signature: "RSOYDt4T1cUTdK1PDd93/VVr8B8=", url: "https://MyCompany.com/myapp.php?foo=1&bar=2", params: Self.p))
    }

    @Test(arguments: ["WRONG_SIGNATURE", "NOTRSOYDt4T1cUTdK1PDd93/VVr8B8=", "", "RSOYDt4T1cUTdK1PDd93/VVr8B8"])
    func wrongSignaturesFail(_ signature: String) {
        let v = RequestValidator(authTokens: [Self.token])
        #expect(!v.isValid(signature: signature, url: Self.u, params: Self.p))
    }

    @Test func missingSignatureFails() {
        #expect(!RequestValidator(authTokens: [Self.token]).isValid(signature: nil, url: Self.u, params: Self.p))
    }

    @Test func unexpectedExtraQueryParamFails() {
        let v = RequestValidator(authTokens: [Self.token])
        #expect(!v.isValid(signature: "RSOYDt4T1cUTdK1PDd93/VVr8B8=", url: Self.u + "&somethingUnexpected=true", params: Self.p))
    }

    @Test func changedParamValueFails() {
        var params = Self.p
        params[2].value = "1235"
        #expect(!RequestValidator(authTokens: [Self.token]).isValid(signature: "RSOYDt4T1cUTdK1PDd93/VVr8B8=", url: Self.u, params: params))
    }

    @Test func noTokenConfiguredRejectsEverything() {
        #expect(!RequestValidator(authTokens: []).isValid(signature: "RSOYDt4T1cUTdK1PDd93/VVr8B8=", url: Self.u, params: Self.p))
        #expect(!RequestValidator(authTokens: [""]).isValid(signature: "zYQTYrRWXE7LtzbG4PfP7/bkkGo=", url: Self.u, params: []))
    }

    @Test func secondaryTokenIsAccepted() {
        let v = RequestValidator(authTokens: ["primary-token", Self.token])
        #expect(v.isValid(signature: "RSOYDt4T1cUTdK1PDd93/VVr8B8=", url: Self.u, params: Self.p))
    }

    @Test func fragmentIsExcluded() {
        let v = RequestValidator(authTokens: [Self.token])
        #expect(v.isValid(signature: "RSOYDt4T1cUTdK1PDd93/VVr8B8=", url: Self.u + "#rc=2&rp=all", params: Self.p))
    }

    /// Found by the libFuzzer target: `#`, `?` and the other separators are bytes, even when a combining mark
    /// (U+0301) follows or a prepended-concatenation mark (U+0600) precedes them and merges them into one character.
    @Test func separatorsAreFoundAsBytesNotCharacters() {
        let v = RequestValidator(authTokens: [Self.token])
        let fragmentAfterMark = "https://a/b#\u{0301}"
        #expect(
            v.isValid(
                signature: TwilioSignature.compute(authToken: Self.token, url: "https://a/b", params: Self.p),
                url: fragmentAfterMark,
                params: Self.p
            )
        )
        let portAfterMark = "https://a\u{0600}:443/b"
        #expect(TwilioSignature.urlVariants(portAfterMark) == [portAfterMark, "https://a\u{0600}/b"])
        let quote = "https://a/b?x='\u{0301}"
        #expect(TwilioSignature.urlVariants(quote).contains("https://a/b?x=%27\u{0301}"))
        let body = Array("{}".utf8)
        let jsonURL = "https://a/b\u{0600}?bodySHA256=" + Crypto.hex(Crypto.sha256(body))
        #expect(v.isValid(signature: TwilioSignature.compute(authToken: Self.token, url: jsonURL, params: []), url: jsonURL, body: body))
    }

    // MARK: - JSON body (bodySHA256)

    static let b = Array(#"{"property": "value", "boolean": true}"#.utf8)
    static let h = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"

    @Test func vector9BodyHashWithQuery() {
        #expect(Crypto.hex(Crypto.sha256(Self.b)) == Self.h)
        let v = RequestValidator(authTokens: [Self.token])
        #expect(v.isValid(signature: "a9nBmqA0ju/hNViExpshrM61xv4=", url: Self.u + "&bodySHA256=" + Self.h, body: Self.b))
    }

    @Test func vector10BodyHashAlone() {
        let v = RequestValidator(authTokens: [Self.token])
        #expect(v.isValid(signature: "y77kIzt2vzLz71DgmJGsen2scGs=", url: "https://mycompany.com/myapp.php?bodySHA256=" + Self.h, body: Self.b))
    }

    @Test func vector11BodyHashWithDefaultPortAdded() {
        let v = RequestValidator(authTokens: [Self.token])
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256=44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        #expect(v.isValid(signature: "Ldidvp12m26NI7eqEvxnEpkd9Hc=", url: url, body: Array("{}".utf8)))
    }

    @Test func bodyWithoutHashOrWithWrongHashFails() {
        let v = RequestValidator(authTokens: [Self.token])
        #expect(!v.isValid(signature: "zYQTYrRWXE7LtzbG4PfP7/bkkGo=", url: Self.u, body: Self.b))
        #expect(!v.isValid(signature: "a9nBmqA0ju/hNViExpshrM61xv4=", url: Self.u + "&bodySHA256=" + Self.h, body: Array("{}".utf8)))
    }

    // MARK: - twilio-node webhooks.spec (token s3cr3t), quotes either way

    @Test(arguments: [
        ("loLgTitFAoWx57yy5oEU4Hlddzw=", "https://example.com/path?test=param"),
        ("IdwMFypqvNxti3YgvWWmfcNL26M=", "https://example.com/path?test=param"),
        ("GfI7onHX/KQ2k1oVS3cUTVk4IEw=", "https://example.com/path?test=param'WithQuote"),
        ("GfI7onHX/KQ2k1oVS3cUTVk4IEw=", "https://example.com/path?test=param%27WithQuote"),
        ("HkuXLxVQ7zHv9LmGpzlLuGaxhJY=", "https://example.com/path?test=param'WithQuote"),
        ("HkuXLxVQ7zHv9LmGpzlLuGaxhJY=", "https://example.com/path?test=param%27WithQuote"),
    ])
    func nodeDerivedVectors(signature: String, url: String) {
        #expect(RequestValidator(authTokens: ["s3cr3t"]).isValid(signature: signature, url: url, params: []))
    }
}
