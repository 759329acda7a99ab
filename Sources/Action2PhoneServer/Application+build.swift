// SPDX-License-Identifier: Apache-2.0
import Action2PhoneCore
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import TwilioKit

/// Builds the webhook server; `serve` and the tests call this same function.
///
/// ```swift
/// let app = buildApplication(config: config, store: store, handler: handler, logger: logger)
/// try await app.runService()   // SIGINT/SIGTERM: drain requests, stop services, exit 0
/// ```
public func buildApplication(
    config: ServerConfig,
    store: any Store,
    handler: any InboundHandler,
    services: [any Service] = [],
    logger: Logger,
    clock: @escaping @Sendable () -> Date = { Date() },
    onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
) -> some ApplicationProtocol {
    let router = Router(context: AppRequestContext.self)
    router.addMiddleware { ErrorLoggingMiddleware() }
    // (The outbox, when one of the services is the outbox worker: `/healthz` says when it holds every send.)
    let worker = services.lazy.compactMap { $0 as? OutboxWorker }.first
    let health = HealthController(store: store, sendsHeld: { worker?.sendsHeld ?? false })
    router.get("/healthz", use: health.health)
    router.head("/healthz", use: health.head)  // monitors that probe with HEAD
    let sms = SMSController(gate: WebhookGate(config: config), store: store, handler: handler, locks: PhoneLocks(), clock: clock)
    router.addRoutes(sms.endpoints, atPath: "/sms")
    // A known path asked with another method: 405 naming the methods it takes, not 404.
    for (path, allowed) in [("/sms", "POST"), ("/sms/status", "POST"), ("/healthz", "GET, HEAD")] {
        for method in [HTTPRequest.Method.get, .head, .post, .put, .delete, .patch, .options] where !allowed.contains(method.rawValue) {
            router.on(RouterPath(path), method: method) { _, _ in
                Response(status: .methodNotAllowed, headers: [.allow: allowed])
            }
        }
    }
    var app = Application(
        router: router,
        server: .http1(configuration: .init(idleTimeout: .seconds(75))),
        configuration: .init(address: .hostname(config.host, port: config.port), serverName: "action2phone"),
        onServerRunning: onServerRunning,
        logger: logger
    )
    app.addServices(services)
    return app
}

/// Runs the server `buildApplication` builds on a loopback port the system picks, for as long as `body` runs
/// (given the port), then stops it gracefully: `replay --raw` without `--url`, and the HTTP tests.
public func withLoopbackServer<T>(
    config: ServerConfig,
    store: any Store,
    handler: any InboundHandler,
    services: [any Service] = [],
    logger: Logger,
    clock: @escaping @Sendable () -> Date = { Date() },
    _ body: (Int) async throws -> T
) async throws -> T {
    var config = config
    config.host = "127.0.0.1"
    config.port = 0
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    let app = buildApplication(config: config, store: store, handler: handler, services: services, logger: logger, clock: clock) { channel in
        continuation.yield(channel.localAddress?.port ?? 0)
        continuation.finish()
    }
    let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask {
            defer { continuation.finish() }  // a server that stopped before it listened (a failed bind) ends the wait below
            try await group.run()
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else {
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()  // the server's own error (a failed bind), when it has one
            throw LoopbackServerError()
        }
        let result: T
        do {
            result = try await body(port)
        } catch {
            await group.triggerGracefulShutdown()
            throw error
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
        return result
    }
}

/// The loopback server stopped before it listened, without saying why.
public struct LoopbackServerError: Error, CustomStringConvertible {
    public var description: String { "the server did not start listening on a loopback port" }
}

extension ConversationService {
    /// The conversation as `serve` configures it.
    public init(config: ServerConfig, store: any Store, upgradesInBackground: Bool = true, logger: Logger = Logger(label: "action2phone")) {
        self.init(
            store: store,
            engine: ConversationEngine(
                settings: .init(sessionTTL: config.sessionTTL, adminPhones: Set(config.adminPhones), localTime: config.localTime)
            ),
            hasher: PasscodeHasher(iterations: config.passcodeIterations),
            replyMode: config.replyMode,
            upgradesInBackground: upgradesInBackground,
            logger: logger
        )
    }
}

extension OutboxWorker {
    /// The worker as `serve` configures it: Twilio's REST API, or the simulated sender in local mode.
    public init(config: ServerConfig, store: any Store, logger: Logger) {
        self.init(store: store, sender: makeSender(config: config, logger: logger), rate: config.sendRate, logger: logger)
    }
}

/// The sender for `config`: simulated in local mode, else Twilio with `StatusCallback` when the public URL is known.
public func makeSender(config: ServerConfig, logger: Logger) -> any MessageSender {
    guard !config.isLocalMode, let accountSid = config.accountSid else { return SimulatedSender(logger: logger) }
    let sender: TwilioRESTClient.Sender =
        if let from = config.fromNumber { .number(from) } else { .messagingService(config.messagingServiceSid ?? "") }
    let client = TwilioRESTClient(
        baseURL: config.apiBaseURL,
        accountSid: accountSid,
        authToken: config.authToken.reveal(),
        sender: sender,
        statusCallback: config.publicURL.map { $0 + "/sms/status" }
    )
    return TwilioSender(client: client)
}
