// SPDX-License-Identifier: Apache-2.0
// The benchmark's ceiling (Benchmarks/run-webhook.sh): the least a Hummingbird server can do for a webhook,
// read the form body and answer a fixed TwiML document, with none of Action2Phone's work.
import Hummingbird
import Logging
import NIOCore

@main
struct Ceiling {
    static func main() async throws {
        let port = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 18401
        let twiml = ByteBuffer(string: #"<?xml version="1.0" encoding="UTF-8"?><Response><Message>Privet, comrade.</Message></Response>"#)
        let router = Router()
        router.post("/sms") { request, _ -> Response in
            _ = try await request.body.collect(upTo: 64 * 1024)
            return Response(status: .ok, headers: [.contentType: "text/xml"], body: .init(byteBuffer: twiml))
        }
        var logger = Logger(label: "ceiling")
        logger.logLevel = .warning
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: logger)
        try await app.runService()
    }
}
