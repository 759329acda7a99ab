// SPDX-License-Identifier: Apache-2.0
import Hummingbird
import NIOCore

/// The request context of every route: bodies are capped at 64 KiB; the connection is kept for `WebhookGate`, which
/// stops reading one whose body does not arrive in time.
public struct AppRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    let channel: any Channel
    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }
    public var maxUploadSize: Int { Self.bodyLimit }
    /// The largest body a request may have: 64 KiB (Twilio's webhooks are a few hundred bytes).
    public static let bodyLimit = 64 * 1024
}
