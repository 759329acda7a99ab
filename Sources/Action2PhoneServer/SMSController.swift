// SPDX-License-Identifier: Apache-2.0
import Action2PhoneCore
import Foundation
import Hummingbird
import Logging
import NIOCore
import TwilioKit

/// `POST /sms` (a message comes in) and `POST /sms/status` (delivery status callbacks).
struct SMSController: Sendable {
    let gate: WebhookGate
    let store: any Store
    let handler: any InboundHandler
    let locks: PhoneLocks
    let clock: @Sendable () -> Date

    var endpoints: RouteCollection<AppRequestContext> {
        RouteCollection(context: AppRequestContext.self)
            .post(use: self.inbound)
            .post("status", use: self.status)
    }

    @Sendable func inbound(_ request: Request, context: AppRequestContext) async throws -> Response {
        let fields = try await admitLogging(request, context: context)
        let message = try decoded { () throws(WebhookDecodingError) in try IncomingMessage(fields: fields) }
        let record = InboundRecord(message, idempotencyToken: request.headers[.twilioIdempotencyToken])
        // One phone's texts are handled one at a time, in arrival order. The handler's transaction checks the
        // MessageSid first, so a retry (even one racing its original) gets the original's reply.
        // (Which text, when it cannot be: Twilio logs the 500, and handles it only if it is sent again.)
        let outcome = try await stored("webhook", ["a2p.messageSid": "\(record.messageSid)", "a2p.phone": "\(record.from)"], context) {
            try await locks.withLock(record.from) {
                try await handler.handle(record, now: clock())
            }
        }
        if case .duplicate = outcome {
            context.logger.info("retried webhook answered with the first reply", metadata: ["a2p.messageSid": "\(record.messageSid)"])
        }
        return Response(
            status: .ok,
            headers: [.contentType: TwiML.contentType],
            body: .init(byteBuffer: ByteBuffer(string: outcome.twiml))
        )
    }

    @Sendable func status(_ request: Request, context: AppRequestContext) async throws -> Response {
        let fields = try await admitLogging(request, context: context)
        let callback = try decoded { () throws(WebhookDecodingError) in try StatusCallback(fields: fields) }
        // (Twilio does not send a status callback again: the store keeps one it cannot store, and tries it again.)
        let known = try await stored(
            "status callback",
            ["a2p.messageSid": "\(callback.messageSid)", "a2p.status": "\(callback.messageStatus)"],
            context
        ) {
            try await store.applyStatusCallback(callback, now: clock())
        }
        if !known {
            context.logger.debug("status callback for an unknown message", metadata: ["a2p.messageSid": "\(callback.messageSid)"])
        }
        return Response(status: .noContent)
    }

    /// What `body` returns; when it fails (the database cannot store the request), a 500, logged with `metadata`
    /// saying which request it was. (`ErrorLoggingMiddleware` would log the failure, but not which request.)
    private func stored<T>(
        _ what: String,
        _ metadata: Logger.Metadata,
        _ context: AppRequestContext,
        _ body: () async throws -> T
    ) async throws -> T {
        do {
            return try await body()
        } catch let error as any HTTPResponseError {
            throw error
        } catch {
            let note = error is StatusCallbackHeld ? "; kept in memory, tried again every second" : ""
            context.logger.error("\(what) not stored: answered 500\(note)", metadata: metadata.merging(["error": "\(error)"]) { $1 })
            throw HTTPError(.internalServerError)
        }
    }

    /// A webhook whose required fields are missing is a 400 naming the field.
    private func decoded<T>(_ decode: () throws(WebhookDecodingError) -> T) throws -> T {
        do {
            return try decode()
        } catch {
            throw WebhookRejection(.badRequest, error.description)
        }
    }

    private func admitLogging(_ request: Request, context: AppRequestContext) async throws -> [FormField] {
        do {
            return try await gate.admit(request, context: context)
        } catch let rejection as WebhookRejection {
            context.logger.notice(
                "webhook rejected",
                metadata: ["a2p.status": "\(rejection.status.code)", "a2p.reason": "\(rejection.reason)"]
            )
            throw rejection
        }
    }
}

/// `GET /healthz`: 200 with a small JSON body when the database answers, else 503. While the outbox holds every send
/// because Twilio refused the credentials, the body says `"outbox":"held"` (still 200: the webhooks are answered, and
/// a load balancer must not take the server away for it; a monitor can alert on the field).
struct HealthController: Sendable {
    let store: any Store
    /// Whether the outbox holds every send (`OutboxWorker.sendsHeld`), when there is an outbox.
    let sendsHeld: @Sendable () -> Bool
    /// When a failed check was last logged: at most one a second is (the endpoint needs no signature, and a flood
    /// of checks while the database is in trouble would otherwise fill the log).
    private let lastLogged = Locked<ContinuousClock.Instant?>(nil)

    init(store: any Store, sendsHeld: @escaping @Sendable () -> Bool = { false }) {
        self.store = store
        self.sendsHeld = sendsHeld
    }

    @Sendable func health(_ request: Request, context: AppRequestContext) async -> Response {
        do {
            try await store.ping()
            return json(.ok, sendsHeld() ? #"{"status":"ok","database":"ok","outbox":"held"}"# : #"{"status":"ok","database":"ok"}"#)
        } catch {
            let due = lastLogged.withLock { last in
                guard last.map({ ContinuousClock.now - $0 >= .seconds(1) }) ?? true else { return false }
                last = .now
                return true
            }
            if due {
                context.logger.error("health check failed: the database does not answer or take writes", metadata: ["error": "\(error)"])
            }
            return json(.serviceUnavailable, #"{"status":"unavailable","database":"error"}"#)
        }
    }

    /// `HEAD /healthz`: the status and headers of `GET` (its `Content-Length` included), without the body.
    @Sendable func head(_ request: Request, context: AppRequestContext) async -> Response {
        let get = await health(request, context: context)
        return Response(status: get.status, headers: get.headers)
    }

    private func json(_ status: HTTPResponse.Status, _ body: String) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

/// Logs errors Hummingbird would otherwise log only at debug level, and answers 500 for them.
struct ErrorLoggingMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as any HTTPResponseError {
            throw error
        } catch {
            context.logger.error(
                "request failed",
                metadata: ["a2p.path": "\(request.uri.path)", "error": "\(String(reflecting: type(of: error))): \(error)"]
            )
            throw HTTPError(.internalServerError)
        }
    }
}
