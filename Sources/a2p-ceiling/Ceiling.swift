// SPDX-License-Identifier: Apache-2.0
// The benchmark's ceiling (Benchmarks/run-webhook.sh): the least a Hummingbird server can do for a webhook,
// read the form body and answer a fixed TwiML document, with none of Action2Phone's work.
//
// Two more modes measure what a durable answer costs before any work (Benchmarks/run-floor.sh):
// `a2p-ceiling PORT grouped` makes each request wait for a group commit on a serial queue that does nothing;
// `a2p-ceiling PORT durable FILE` has that commit write about what `serve`'s batches write to the WAL (6 KB a
// request) to FILE and sync it (`fdatasync`) before the requests in it are answered.
import Dispatch
import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization

@main
struct Ceiling {
    static func main() async throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        let port = Int(arguments.first ?? "") ?? 18401
        let commits: GroupCommit?
        switch arguments.dropFirst().first ?? "plain" {
        case "plain": commits = nil
        case "grouped": commits = GroupCommit(log: nil)
        case "durable" where arguments.count == 3: commits = try GroupCommit(log: LogFile(path: arguments[2]))
        default:
            FileHandle.standardError.write(Data("usage: a2p-ceiling [PORT] [plain | grouped | durable FILE]\n".utf8))
            exit(2)
        }
        let twiml = ByteBuffer(string: #"<?xml version="1.0" encoding="UTF-8"?><Response><Message>Privet, comrade.</Message></Response>"#)
        let router = Router()
        router.post("/sms") { request, _ -> Response in
            _ = try await request.body.collect(upTo: 64 * 1024)
            await commits?.join()
            return Response(status: .ok, headers: [.contentType: "text/xml"], body: .init(byteBuffer: twiml))
        }
        var logger = Logger(label: "ceiling")
        logger.logLevel = .warning
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: logger)
        try await app.runService()
    }
}

/// `serve`'s group commit (`InboundBatcher`) with no work in it: requests that arrive while a commit runs wait for
/// the next, which runs on a serial queue (as GRDB's writer does) and answers them all.
final class GroupCommit: Sendable {
    private struct Waiting {
        var requests: [CheckedContinuation<Void, Never>] = []
        var committing = false
    }

    private let waiting = Mutex(Waiting())
    private let writer = DispatchQueue(label: "a2p-ceiling.writer")
    private let log: LogFile?

    init(log: LogFile?) {
        self.log = log
    }

    /// Returns once a commit that began after this call has ended.
    func join() async {
        await withCheckedContinuation { request in
            let start = waiting.withLock { waiting -> Bool in
                waiting.requests.append(request)
                defer { waiting.committing = true }
                return !waiting.committing
            }
            if start { Task { await self.commitUntilIdle() } }
        }
    }

    private func commitUntilIdle() async {
        while let batch = nextBatch() {
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                writer.async {
                    self.log?.append(requests: batch.count)
                    done.resume()
                }
            }
            for request in batch { request.resume() }
        }
    }

    private func nextBatch() -> [CheckedContinuation<Void, Never>]? {
        waiting.withLock { waiting in
            guard !waiting.requests.isEmpty else {
                waiting.committing = false
                return nil
            }
            defer { waiting.requests = [] }
            return waiting.requests
        }
    }
}

/// A file written as a WAL is: appended to, synced at each commit, and started again from the top once it holds
/// 32 MB (so its size, once reached, stops changing, as a WAL's does between checkpoints). Used only on the
/// commit queue.
final class LogFile: @unchecked Sendable {
    private static let bytesPerRequest = 6 * 1024
    private static let size = 32 << 20
    private let descriptor: Int32
    private var offset = 0
    private let bytes = [UInt8](repeating: 0x5A, count: 64 * LogFile.bytesPerRequest)

    init(path: String) throws {
        descriptor = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    }

    func append(requests: Int) {
        var left = requests * Self.bytesPerRequest
        while left > 0 {
            let chunk = min(left, bytes.count, Self.size - offset)
            let written = bytes.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, chunk, off_t(offset)) }
            guard written > 0 else { fatalError("a2p-ceiling: cannot write its log file (errno \(errno))") }
            offset = (offset + written) % Self.size
            left -= written
        }
        guard fdatasync(descriptor) == 0 else { fatalError("a2p-ceiling: cannot sync its log file (errno \(errno))") }
    }
}
