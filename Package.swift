// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Action2Phone",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "action2phone", targets: ["action2phone"])
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
    ],
    targets: [
        // OpenSSL's libcrypto from the system (libssl-dev): HMAC, SHA-256, PBKDF2, RAND_bytes, CRYPTO_memcmp.
        .systemLibrary(name: "CLibCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // libcurl from the system (libcurl4-openssl-dev): the REST client's transport, driven by a thread of its own
        // (URLSession's libcurl driver spins while a new connection's first answer is awaited: README, "Dependencies").
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // The Twilio protocol: knows nothing of the bot, imports neither GRDB nor Hummingbird.
        .target(name: "TwilioKit", dependencies: ["CLibCrypto", "CCurl"]),
        // The bot: conversation engine, store, outbox.
        .target(
            name: "Action2PhoneCore",
            dependencies: [
                "TwilioKit",
                .product(name: "GRDB", package: "GRDB.swift"),
                // GRDB's own module for the system SQLite's C API (FastStatement, the webhook's hot path).
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The HTTP server: Hummingbird routes, the webhook gate, services.
        .target(
            name: "Action2PhoneServer",
            dependencies: [
                "Action2PhoneCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "action2phone",
            dependencies: [
                "Action2PhoneServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Benchmarks/run-webhook.sh's ceiling: a fixed-TwiML Hummingbird app, measured beside the real server.
        .executableTarget(
            name: "a2p-ceiling",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"), .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "TwilioKitTests", dependencies: ["TwilioKit"]),
        .testTarget(
            name: "Action2PhoneCoreTests",
            dependencies: [
                "Action2PhoneCore", .product(name: "GRDB", package: "GRDB.swift"), .product(name: "InMemoryLogging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "Action2PhoneServerTests",
            dependencies: [
                "Action2PhoneServer",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "InMemoryLogging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
    ]
)
