import Testing

@testable import TwilioKit

@Suite("libcrypto wrappers")
struct CryptoTests {
    let fox = Array("The quick brown fox jumps over the lazy dog".utf8)

    @Test func hmacSHA1() {
        #expect(Crypto.hex(Crypto.hmac(.sha1, key: Array("key".utf8), message: fox)) == "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9")
    }

    @Test func hmacSHA256() {
        #expect(
            Crypto.hex(Crypto.hmac(.sha256, key: Array("key".utf8), message: fox))
                == "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        )
    }

    @Test func sha256() {
        #expect(Crypto.hex(Crypto.sha256(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func pbkdf2RFC7914Vectors() {
        #expect(
            Crypto.hex(Crypto.pbkdf2SHA256(password: Array("passwd".utf8), salt: Array("salt".utf8), iterations: 1, length: 64))
                == "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"
        )
        #expect(
            Crypto.hex(Crypto.pbkdf2SHA256(password: Array("Password".utf8), salt: Array("NaCl".utf8), iterations: 80000, length: 64))
                == "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d"
        )
    }

    @Test func randomBytesDiffer() {
        let a = Crypto.randomBytes(16)
        let b = Crypto.randomBytes(16)
        #expect(a.count == 16)
        #expect(a != b)
    }

    @Test func constantTimeEqual() {
        #expect(Crypto.constantTimeEqual([1, 2, 3], [1, 2, 3]))
        #expect(!Crypto.constantTimeEqual([1, 2, 3], [1, 2, 4]))
        #expect(!Crypto.constantTimeEqual([1, 2, 3], [1, 2]))
        #expect(Crypto.constantTimeEqual([], []))
    }

    @Test(arguments: [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")])
    func base64RFC4648(input: String, expected: String) {
        #expect(Crypto.base64(Array(input.utf8)) == expected)
    }
}
