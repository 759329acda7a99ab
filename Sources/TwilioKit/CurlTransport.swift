// SPDX-License-Identifier: Apache-2.0
import CCurl
import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The REST client's HTTP requests, through libcurl's multi interface, driven by a thread of its own that waits in
/// `curl_multi_poll` between socket events. Each client has its own, with its own connections kept for the next
/// request (as each had its own URLSession); the thread starts with the first request and ends once the client is
/// gone and its last request is answered.
///
/// Not URLSession: swift-corelibs-foundation drives the same libcurl with a dispatch source per socket and direction,
/// and keeps the write source it made while a new connection was being set up after libcurl has stopped asking for
/// it. A connected socket is always writable, so until the first answer on each new connection arrived (up to the
/// timeout, 15 s, while Twilio is slow) that source fired without pause, and the server spent a core on it.
///
/// Failures come back as the `URLError` URLSession would throw, which `TwilioRESTClient` classifies.
final class CurlTransport: Sendable {
    /// An answer: its status, its headers (names in lower case; the last of a repeated one) and its body.
    struct Answer {
        var status: Int
        var headers: [String: String]
        var body: Data
    }

    /// Where a `URLError` of this transport's says what happened, when its code alone does not.
    static let detailKey = "a2p.detail"

    /// The most of an answer's body kept: Twilio's pages are tens of kilobytes; past this, the answer is not Twilio's.
    static let bodyLimit = 8 << 20

    /// How long a kept connection may have been idle and still carry a request (libcurl's `CURLOPT_MAXAGE_CONN`, 118 s
    /// by default). A server closing an idle connection over TLS says so first (close_notify), which libcurl's check of
    /// a kept connection takes for a sign of life: the request goes out on the dead connection, libcurl's own resend on a
    /// new one is refused (a POST may have reached Twilio), and the text waits for a lookup. Some servers close idle
    /// connections after 5 s; a burst of sends keeps its connections, a send after a pause makes a new one. (libcurl
    /// counts the idle time in whole seconds and takes a connection while that count is not past this: 3 s is used
    /// again until it has been idle 4 s.)
    static let keptConnectionAge: Duration = .seconds(3)

    private let loop: CurlLoop

    init(keptConnectionAge: Duration) {
        loop = CurlLoop(keptConnectionAge: keptConnectionAge)
    }

    deinit { loop.stop() }

    /// The answer to `request`, or the `URLError` of its failure. `timeout` bounds the whole request; a connection
    /// not made, or an answer silent, for half of it ends it too.
    func perform(_ request: URLRequest, timeout: Duration) async -> Result<Answer, URLError> {
        await loop.perform(request, timeout: timeout)
    }
}

/// `CurlTransport`'s multi handle and the thread that drives it.
private final class CurlLoop: @unchecked Sendable {
    typealias Answer = CurlTransport.Answer

    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    /// One request, from `perform` until its answer: touched by the loop's thread only, but for `cancelRequested`,
    /// under `lock`.
    private final class Transfer: @unchecked Sendable {
        let request: URLRequest
        let timeout: Duration
        var continuation: CheckedContinuation<Result<Answer, URLError>, Never>?
        var easy: UnsafeMutableRawPointer?
        var headerList: UnsafeMutablePointer<curl_slist>?
        var headers: [String: String] = [:]
        var body = Data()
        /// Whether libcurl has started to send the request (`CURLOPT_PREREQFUNCTION`): from then on it may have
        /// reached Twilio.
        var issued = false
        /// When the request went out or the last byte of its answer came: the answer's silence is counted from it.
        var lastHeard: ContinuousClock.Instant?
        var cancelRequested = false

        init(request: URLRequest, timeout: Duration) {
            self.request = request
            self.timeout = timeout
        }
    }

    private let multi: UnsafeMutableRawPointer
    private let keptConnectionAge: Duration
    private let lock = NSLock()
    /// Under `lock`: requests waiting for the loop to start them, every request not finished yet, whether the
    /// thread runs, and whether the client is gone.
    private var incoming: [Transfer] = []
    private var unfinished: [ObjectIdentifier: Transfer] = [:]
    private var started = false
    private var stopping = false
    /// The loop's thread only: the requests libcurl is running, by their easy handle.
    private var running: [UnsafeMutableRawPointer: Transfer] = [:]

    init(keptConnectionAge: Duration) {
        Self.globalInit
        self.keptConnectionAge = keptConnectionAge
        multi = curl_multi_init()
        // As URLSession was set up: up to 64 connections to the API at once, each kept for the next request.
        _ = a2p_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, 64)
    }

    deinit { curl_multi_cleanup(multi) }

    /// The client is gone: the thread ends once the requests it has are answered.
    func stop() {
        lock.withLock { stopping = true }
        curl_multi_wakeup(multi)
    }

    func perform(_ request: URLRequest, timeout: Duration) async -> Result<Answer, URLError> {
        let transfer = Transfer(request: request, timeout: timeout)
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                lock.withLock {
                    transfer.continuation = continuation
                    incoming.append(transfer)
                    unfinished[ObjectIdentifier(transfer)] = transfer
                    if !started {
                        started = true
                        let thread = Thread { [self] in loop() }
                        thread.name = "a2p-curl"
                        thread.start()
                    }
                }
                curl_multi_wakeup(multi)
            }
        } onCancel: {
            lock.withLock { transfer.cancelRequested = true }
            curl_multi_wakeup(multi)
        }
    }

    private func loop() {
        while true {
            let (new, cancelled, done) = lock.withLock {
                defer { incoming.removeAll() }
                return (incoming, unfinished.values.filter(\.cancelRequested), stopping && unfinished.isEmpty)
            }
            if done { return }  // (the thread lets go of this loop: its deinit closes the connections)
            for transfer in new {
                if let failure = start(transfer) { finish(transfer, .failure(failure)) }
            }
            for transfer in cancelled where transfer.continuation != nil {
                if let easy = transfer.easy { curl_multi_remove_handle(multi, easy) }
                finish(transfer, .failure(URLError(.cancelled)))
            }
            var stillRunning: Int32 = 0
            let performed = curl_multi_perform(multi, &stillRunning)
            var left: Int32 = 0
            while let message = curl_multi_info_read(multi, &left) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
                let code = message.pointee.data.result
                curl_multi_remove_handle(multi, easy)
                guard let transfer = running[easy] else { continue }
                finish(transfer, outcome(of: transfer, code))
            }
            // An answer silent for half the timeout is given up (libcurl's LOW_SPEED options average over seconds, and
            // fired about 6 s late). It may have reached Twilio.
            let now = ContinuousClock.now
            for (easy, transfer) in running where transfer.lastHeard.map({ now - $0 >= transfer.timeout / 2 }) == true {
                curl_multi_remove_handle(multi, easy)
                finish(transfer, .failure(Self.failure(.timedOut, "no answer for \(Self.seconds(transfer.timeout / 2))")))
            }
            // (The client gone and its last request answered: not another 10 s of waiting with its connections open.)
            if lock.withLock({ stopping && unfinished.isEmpty }) { return }
            // Woken by a socket, libcurl's own timers, `curl_multi_wakeup` (a new request or a cancellation), or each
            // second while a request runs (its silence is checked then). A failing multi handle is not polled in a
            // tight loop: a pause, and the transfers end by their timeouts.
            let wait: Int32 = running.isEmpty ? 10_000 : 1_000
            if performed != CURLM_OK || curl_multi_poll(multi, nil, 0, wait, nil) != CURLM_OK { usleep(50_000) }
        }
    }

    /// Sets `transfer` up and hands it to libcurl; the failure when it cannot be.
    private func start(_ transfer: Transfer) -> URLError? {
        let request = transfer.request
        guard let url = request.url?.absoluteString, let scheme = request.url?.scheme?.lowercased(), scheme == "http" || scheme == "https"
        else { return URLError(.unsupportedURL) }
        guard !lock.withLock({ transfer.cancelRequested }) else { return URLError(.cancelled) }
        guard let easy = curl_easy_init() else { return URLError(.unknown) }
        transfer.easy = easy
        let me = Unmanaged.passUnretained(transfer).toOpaque()
        let milliseconds = Int(transfer.timeout / .milliseconds(1))
        _ = url.withCString { a2p_easy_setopt_pointer(easy, CURLOPT_URL, $0) }  // (libcurl copies strings it is given)
        _ = "http,https".withCString { a2p_easy_setopt_pointer(easy, CURLOPT_PROTOCOLS_STR, $0) }
        _ = a2p_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        // HTTP/1.1, the protocol the tests' fake Twilio speaks (libcurl would offer HTTP/2 over TLS).
        _ = a2p_easy_setopt_long(easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1)
        // A DNS lookup that hangs past the timeout is left to its thread: ending the transfer does not wait for it,
        // which would hold every other request of this client.
        _ = a2p_easy_setopt_long(easy, CURLOPT_QUICK_EXIT, 1)
        // libcurl sends a request again by itself on a new connection when a kept one dies before any answer: a
        // POST that Twilio may have had would go out twice. The second time is refused (then the request may have
        // been sent: the client looks the message up before sending it again).
        _ = a2p_easy_setopt_prereq(easy, CURLOPT_PREREQFUNCTION, Self.aboutToSend)
        _ = a2p_easy_setopt_pointer(easy, CURLOPT_PREREQDATA, me)
        // No redirect is followed (libcurl's default, said here): the credentials go to TWILIO_API_BASE_URL alone.
        _ = a2p_easy_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 0)
        _ = a2p_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, max(1, milliseconds))
        _ = a2p_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, max(1, milliseconds / 2))
        _ = a2p_easy_setopt_long(easy, CURLOPT_MAXAGE_CONN, max(1, Int(keptConnectionAge / .seconds(1))))
        _ = "action2phone (libcurl)".withCString { a2p_easy_setopt_pointer(easy, CURLOPT_USERAGENT, $0) }
        _ = a2p_easy_setopt_callback(easy, CURLOPT_WRITEFUNCTION, Self.receiveBody)
        _ = a2p_easy_setopt_pointer(easy, CURLOPT_WRITEDATA, me)
        _ = a2p_easy_setopt_callback(easy, CURLOPT_HEADERFUNCTION, Self.receiveHeader)
        _ = a2p_easy_setopt_pointer(easy, CURLOPT_HEADERDATA, me)
        // "Expect:" empty: no 100-continue round trip before a body is sent.
        for line in (request.allHTTPHeaderFields ?? [:]).sorted(by: { $0.key < $1.key }).map({ "\($0.key): \($0.value)" }) + ["Expect:"] {
            transfer.headerList = curl_slist_append(transfer.headerList, line)
        }
        _ = a2p_easy_setopt_pointer(easy, CURLOPT_HTTPHEADER, transfer.headerList)
        let method = request.httpMethod?.uppercased() ?? "GET"
        if method == "POST" {
            let body = request.httpBody ?? Data()
            _ = a2p_easy_setopt_long(easy, CURLOPT_POSTFIELDSIZE, body.count)
            _ = body.withUnsafeBytes { a2p_easy_setopt_pointer(easy, CURLOPT_COPYPOSTFIELDS, $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1)) }
        } else if method != "GET" {
            _ = method.withCString { a2p_easy_setopt_pointer(easy, CURLOPT_CUSTOMREQUEST, $0) }
        }
        guard curl_multi_add_handle(multi, easy) == CURLM_OK else { return URLError(.unknown) }
        running[easy] = transfer
        return nil
    }

    /// The answer, or the `URLError` URLSession would have thrown for `code`: a failure before libcurl began to send
    /// the request is a connection that was never made, which cannot have reached Twilio; any failure after may have.
    private func outcome(of transfer: Transfer, _ code: CURLcode) -> Result<Answer, URLError> {
        if code == CURLE_OK {
            var status = 0
            if let easy = transfer.easy { _ = a2p_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status) }
            return .success(Answer(status: status, headers: transfer.headers, body: transfer.body))
        }
        if transfer.issued && code == CURLE_OPERATION_TIMEDOUT {
            return .failure(Self.failure(.timedOut, "no whole answer within \(Self.seconds(transfer.timeout))"))
        }
        if transfer.issued && code == CURLE_ABORTED_BY_CALLBACK {
            return .failure(Self.failure(.networkConnectionLost, "a kept connection closed before the answer; libcurl's own resend refused"))
        }
        let error: URLError.Code =
            if !transfer.issued {
                // Never sent: a connection that was not made (URLSession's codes for it, which `classify` calls not sent).
                switch code {
                case CURLE_URL_MALFORMAT: .badURL
                case CURLE_UNSUPPORTED_PROTOCOL: .unsupportedURL
                case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY: .cannotFindHost
                case CURLE_SSL_CONNECT_ERROR: .secureConnectionFailed
                case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE: .serverCertificateUntrusted
                default: .cannotConnectToHost  // refused, or timed out connecting
                }
            } else {
                // Sent, or being sent: Twilio may have the message (codes `classify` calls maybe sent).
                switch code {
                case CURLE_OPERATION_TIMEDOUT: .timedOut
                case CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_PARTIAL_FILE: .networkConnectionLost
                // (UNSUPPORTED_PROTOCOL once sent: an answer that is not HTTP/1.x.)
                case CURLE_GOT_NOTHING, CURLE_UNSUPPORTED_PROTOCOL, CURLE_WRITE_ERROR: .badServerResponse
                default: .unknown
                }
            }
        return .failure(URLError(error))
    }

    /// A failure with what happened in words, which `TwilioRESTClient.describe` adds to the code's.
    private static func failure(_ code: URLError.Code, _ detail: String) -> URLError {
        URLError(code, userInfo: [CurlTransport.detailKey: detail])
    }

    /// `duration` in whole seconds, or tenths below ten.
    private static func seconds(_ duration: Duration) -> String {
        let seconds = duration / .seconds(1)
        return seconds >= 10 || seconds == seconds.rounded() ? "\(Int(seconds.rounded())) s" : String(format: "%.1f s", seconds)
    }

    /// Ends `transfer`: frees what libcurl held for it and resumes its caller.
    private func finish(_ transfer: Transfer, _ result: Result<Answer, URLError>) {
        if let easy = transfer.easy {
            running[easy] = nil
            curl_easy_cleanup(easy)
            transfer.easy = nil
        }
        curl_slist_free_all(transfer.headerList)
        transfer.headerList = nil
        let continuation = lock.withLock {
            unfinished[ObjectIdentifier(transfer)] = nil
            defer { transfer.continuation = nil }
            return transfer.continuation
        }
        continuation?.resume(returning: result)
    }

    /// Called by libcurl right before it sends the request: the first time, it may go; a second time is libcurl
    /// resending it on a new connection, refused for a POST (`CURLE_ABORTED_BY_CALLBACK`).
    private static let aboutToSend: curl_prereq_callback = { context, _, _, _, _ in
        let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
        defer {
            transfer.issued = true
            transfer.lastHeard = .now
        }
        return transfer.issued && transfer.request.httpMethod?.uppercased() == "POST" ? CURL_PREREQFUNC_ABORT : CURL_PREREQFUNC_OK
    }

    private static let receiveBody: curl_write_callback = { data, size, count, context in
        let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
        let bytes = size * count
        // (Past the limit, 0: libcurl ends the transfer with CURLE_WRITE_ERROR.)
        guard transfer.body.count + bytes <= CurlTransport.bodyLimit else { return 0 }
        transfer.lastHeard = .now
        if let data, bytes > 0 { transfer.body.append(UnsafeRawPointer(data).assumingMemoryBound(to: UInt8.self), count: bytes) }
        return bytes
    }

    /// One header line: a status line starts the headers again (an interim `100 Continue` has its own), a field is kept.
    private static let receiveHeader: curl_write_callback = { data, size, count, context in
        let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
        let bytes = size * count
        guard let data, bytes > 0 else { return bytes }
        transfer.lastHeard = .now
        let line = String(decoding: UnsafeRawBufferPointer(start: data, count: bytes), as: UTF8.self)
        if line.hasPrefix("HTTP/") {
            transfer.headers = [:]
        } else if let colon = line.firstIndex(of: ":") {
            let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            transfer.headers[name] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return bytes
    }
}
