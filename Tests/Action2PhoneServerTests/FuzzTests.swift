import Action2PhoneCore
import Foundation
import Testing
import TwilioKit

#if canImport(Glibc)
import Glibc
#endif

/// One raw HTTP exchange over a loopback socket, for requests no HTTP client library would send.
/// Returns the response's status code, or nil when the server closed without answering.
func rawExchange(port: Int, _ request: [UInt8], timeout: Int = 5) async -> Int? {
    await onOwnThread { () -> Int? in
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return nil }
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }  // the server may close early (413, 431): read what it said
            sent += n
        }
        shutdown(fd, Int32(SHUT_WR))
        var response = [UInt8](repeating: 0, count: 4096)
        let got = recv(fd, &response, response.count, 0)
        guard got >= 12 else { return nil }
        let line = String(decoding: response[0..<min(got, 64)], as: UTF8.self)
        let parts = line.split(separator: " ")
        return parts.count >= 2 ? Int(parts[1]) : nil
    }
}

/// A small deterministic generator, so a failing case can be reproduced from its seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("Malformed requests over HTTP")
struct FuzzTests {
    static func malformed(_ i: Int, rng: inout SplitMix64) -> [UInt8] {
        let form = "application/x-www-form-urlencoded"
        func request(_ body: [UInt8], type: String? = form, extraHeaders: String = "", declaredLength: Int? = nil, path: String = "/sms") -> [UInt8] {
            var head = "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            if let type { head += "Content-Type: \(type)\r\n" }
            head += "X-Twilio-Signature: \(Crypto.base64(Crypto.randomBytes(20)))\r\n"
            head += extraHeaders
            head += "Content-Length: \(declaredLength ?? body.count)\r\n\r\n"
            return Array(head.utf8) + body
        }
        func randomBytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) } }
        let valid = Array(FormCodec.encode(WebhookFields.inboundSMS(from: "+14155550100", to: "+15005550006", body: "HELP")).utf8)
        switch i % 14 {
        case 0: return request(randomBytes(Int.random(in: 0...2000, using: &rng)))
        case 1: return request(Array("MessageSid=SM1&From=%2B1&To=%2B1&Body=%\(["", "4", "ZZ", "G1", "%"].randomElement(using: &rng)!)".utf8))
        case 2: return request(Array("Body=".utf8) + [0xC3, 0x28, 0xFF, 0xFE] + Array("&From=x".utf8))
        case 3: return request(Array(("Body=" + String(repeating: "A", count: 60_000)).utf8))
        case 4: return request(Array(String(repeating: "From=%2B14155550100&", count: 3000).utf8))
        case 5:
            return request(
                valid,
                type: ["application/json", "text/plain", "multipart/form-data", "", "x/y; charset=\u{1}"].randomElement(using: &rng)!
            )
        case 6: return request(valid, type: nil)
        case 7:  // truncated: more declared than sent
            return request(Array(valid.prefix(valid.count / 2)), declaredLength: valid.count)
        case 8: return request(valid, extraHeaders: "X-Huge: \(String(repeating: "h", count: 200_000))\r\n")
        case 9: return request(valid, extraHeaders: (0..<2000).map { "X-Many-\($0): v\r\n" }.joined())
        case 10: return request(randomBytes(70_000))
        case 11: return request(valid, path: "/sms?\(String(repeating: "%zz", count: 3000))")
        case 12: return Array("GARBAGE \(String(decoding: randomBytes(30).map { $0 & 0x7F | 0x20 }, as: UTF8.self))\r\n\r\n".utf8)
        default:  // a correct form with the wrong signature and random extra fields
            var fields = WebhookFields.inboundSMS(from: "+14155550100", to: "+15005550006", body: String(decoding: randomBytes(40), as: UTF8.self))
            for n in 0..<Int.random(in: 0...50, using: &rng) { fields.append(.init("Extra\(n)", String(decoding: randomBytes(20), as: UTF8.self))) }
            return request(Array(FormCodec.encode(fields).utf8))
        }
    }

    @Test func thousandsOfMalformedRequestsGet4xxNever5xx() async throws {
        try await TestServer.run { server in
            let port = Int(server.base.split(separator: ":").last!)!
            var rng = SplitMix64(state: 20_261_125)
            let requests = (0..<2100).map { Self.malformed($0, rng: &rng) }
            var fiveHundreds: [String] = []
            var answered = 0
            for start in stride(from: 0, to: requests.count, by: 16) {
                let batch = Array(requests[start..<min(start + 16, requests.count)].enumerated())
                let results = await withTaskGroup(of: (Int, Int?).self) { group in
                    for (offset, request) in batch { group.addTask { (start + offset, await rawExchange(port: port, request)) } }
                    return await group.reduce(into: []) { $0.append($1) }
                }
                for (i, status) in results {
                    guard let status else { continue }  // closed without an answer: never a 5xx
                    answered += 1
                    if status >= 500 { fiveHundreds.append("case \(i % 14) (request \(i)): \(status)") }
                    #expect((400..<500).contains(status), "case \(i % 14) (request \(i)) got \(status)")
                }
            }
            #expect(fiveHundreds.isEmpty, "\(fiveHundreds.prefix(10))")
            #expect(answered > 1500)
            #expect(try server.count("inbound") == 0)
            let health = try await server.send("GET", "/healthz")
            #expect(health.status == 200)
        }
    }
}
