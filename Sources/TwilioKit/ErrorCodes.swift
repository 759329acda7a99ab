// SPDX-License-Identifier: Apache-2.0

/// What Twilio's delivery error codes mean (twilio.md §6). A status callback carries the code alone
/// (`ErrorCode`, no message): these say what it was to an operator reading the outbox.
public enum TwilioErrorCodes {
    /// A few words on what `code` means; `nil` for a code not listed here.
    public static func meaning(_ code: Int) -> String? {
        switch code {
        case 21211: "invalid 'To' number"
        case 21610: "the recipient replied STOP"
        case 21611: "the sender's queue at Twilio is full"
        case 21612: "'To' not reachable by SMS"
        case 21614: "'To' is not a mobile number"
        case 30001: "queue overflow"
        case 30002: "account suspended"
        case 30003: "unreachable handset"
        case 30004: "message blocked"
        case 30005: "unknown handset"
        case 30006: "landline or unreachable carrier"
        case 30007: "filtered by the carrier"
        case 30008: "unknown error"
        case 30032: "toll-free number not verified"
        case 30034: "unregistered A2P 10DLC number"
        case 30036: "validity period expired in the queue"
        default: nil
        }
    }
}
