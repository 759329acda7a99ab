// SPDX-License-Identifier: Apache-2.0
import Hummingbird

/// The request context of every route: bodies are capped at 64 KiB.
public struct AppRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public init(source: ApplicationRequestContextSource) { self.coreContext = .init(source: source) }
    public var maxUploadSize: Int { 64 * 1024 }
}
