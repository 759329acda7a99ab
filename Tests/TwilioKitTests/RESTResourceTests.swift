import Foundation
import Testing

@testable import TwilioKit

@Suite("REST resources")
struct RESTResourceTests {
    @Test func messageFromTheOpenAPIExample() throws {
        let json =
            #"{"account_sid":"ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX","api_version":"2010-04-01","body":"body","date_created":"Thu, 30 Jul 2015 20:12:31 +0000","date_sent":"Thu, 30 Jul 2015 20:12:33 +0000","date_updated":"Thu, 30 Jul 2015 20:12:33 +0000","direction":"outbound-api","error_code":null,"error_message":null,"from":"+14155552345","messaging_service_sid":null,"num_media":"0","num_segments":"1","price":null,"price_unit":null,"sid":"SMXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX","status":"queued","subresource_uris":{"media":"/2010-04-01/Accounts/ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX/Messages/SMXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX/Media.json"},"to":"+14155552345","uri":"/2010-04-01/Accounts/ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX/Messages/SMXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX.json"}"#
        let m = try JSONDecoder().decode(MessageResource.self, from: Data(json.utf8))
        #expect(m.sid == "SMXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX")
        #expect(m.status == "queued")
        #expect(m.numSegments == "1")
        #expect(m.errorCode == nil)
        #expect(m.created == Date(timeIntervalSince1970: 1_438_287_151))
    }

    @Test func errorJSON() throws {
        let e = try JSONDecoder().decode(
            APIError.self,
            from: Data(
                #"{"code":21211,"message":"Invalid 'To' Phone Number","more_info":"https://www.twilio.com/docs/errors/21211","status":400}"#.utf8
            )
        )
        #expect(e.code == 21211)
        #expect(e.message == "Invalid 'To' Phone Number")
        #expect(e.moreInfo == "https://www.twilio.com/docs/errors/21211")
    }

    @Test func aPasswordInTheAPIBaseURLNeverShows() {
        // (`serve` at debug level logs each service, the worker holding this client, as "\(service)")
        let client = TwilioRESTClient(
            baseURL: "http://proxyuser:ProxyPassw0rd@127.0.0.1:8999",
            accountSid: "AC1",
            authToken: "t",
            sender: .number("+15005550006")
        )
        for shown in ["\(client)", String(reflecting: client), "\(Mirror(reflecting: client).children.map { "\($0.value)" })"] {
            #expect(!shown.contains("ProxyPassw0rd") && shown.contains("http://proxyuser:***@127.0.0.1:8999"), "\(shown)")
        }
    }

    @Test func theMessagingServicesAPIIsBesideTwiliosOwnAPIHost() {
        func base(_ url: String) -> String {
            TwilioRESTClient(baseURL: url, accountSid: "AC", authToken: "t", sender: .messagingService("MG")).messagingBaseURL
        }
        #expect(base("https://api.twilio.com") == "https://messaging.twilio.com")
        #expect(base("https://API.twilio.com/") == "https://messaging.twilio.com")
        #expect(base("https://api.dublin.ie1.twilio.com") == "https://messaging.dublin.ie1.twilio.com")
        // A local stand-in serves both; so does any host that is not Twilio's
        #expect(base("http://127.0.0.1:8999") == "http://127.0.0.1:8999")
        #expect(base("https://api.example.com") == "https://api.example.com")
        #expect(base("https://api.twilio.com.example.org") == "https://api.twilio.com.example.org")
    }
}
