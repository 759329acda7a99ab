// SPDX-License-Identifier: Apache-2.0
import Action2PhoneCore
import Foundation
import NIOCore

/// The webhook bodies being read, each with the time by which it must have arrived. A sweep every `sweepEvery`
/// (while any is being read) closes the input of a connection whose body is late: its collection ends, and
/// `WebhookGate` answers 408. (One sweep for all of them rather than a timer per request, which would be set and
/// cancelled on the connection's event loop from another thread, waking it twice for every webhook.)
///
/// ```swift
/// let reading = deadlines.begin(context.channel)
/// let body = try? await request.body.collect(upTo: limit)
/// if deadlines.end(reading) { /* 408: the connection was closed for being late */ }
/// ```
final class BodyDeadlines: Sendable {
    private struct Reading {
        let channel: any Channel
        let until: ContinuousClock.Instant
        var late = false
    }

    private struct State {
        var next = 0
        var reading: [Int: Reading] = [:]
        var sweeping = false
    }

    private let state = Locked(State())
    let limit: Duration
    let sweepEvery: Duration

    init(limit: Duration) {
        self.limit = limit
        self.sweepEvery = min(limit / 5, .seconds(1))
    }

    /// `limit` as a reply says it ("10 s", "0.5 s").
    var limitText: String {
        let seconds = Double(limit.components.seconds) + Double(limit.components.attoseconds) / 1e18
        return "\(seconds.formatted(.number.precision(.fractionLength(0...1)))) s"
    }

    /// Starts the clock on a body read from `channel`; `end` with what it returns.
    func begin(_ channel: any Channel) -> Int {
        let (id, startSweeping) = state.withLock { s -> (Int, Bool) in
            s.next += 1
            s.reading[s.next] = Reading(channel: channel, until: .now + limit)
            defer { s.sweeping = true }
            return (s.next, !s.sweeping)
        }
        if startSweeping { Task { await self.sweepWhileReading() } }
        return id
    }

    /// Whether the body was late, its connection's input closed.
    func end(_ id: Int) -> Bool {
        state.withLock { $0.reading.removeValue(forKey: id)?.late ?? false }
    }

    private func sweepWhileReading() async {
        while true {
            try? await Task.sleep(for: sweepEvery)
            let now = ContinuousClock.now
            let (late, done) = state.withLock { s -> ([any Channel], Bool) in
                var late: [any Channel] = []
                for (id, reading) in s.reading where !reading.late && reading.until <= now {
                    s.reading[id]?.late = true
                    late.append(reading.channel)
                }
                if s.reading.isEmpty { s.sweeping = false }
                return (late, s.reading.isEmpty)
            }
            for channel in late { channel.close(mode: .input, promise: nil) }
            if done { return }
        }
    }
}
