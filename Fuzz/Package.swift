// swift-tools-version:5.4
// libFuzzer targets for TwilioKit's form codec and signature validator (issue 6).
// A package of its own so that the root package, `swift test` and CI never see the fuzzer flags.
// `Sources/TwilioKit`, `Sources/CLibCrypto` and `Sources/CCurl` are symlinks to the root package's sources: the fuzzers
// test the real code, not a copy. Build and run with `./run.sh [seconds]`.
import PackageDescription

let fuzzerSettings: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]

let package = Package(
    name: "Action2PhoneFuzz",
    targets: [
        .systemLibrary(name: "CLibCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .target(name: "TwilioKit", dependencies: ["CLibCrypto", "CCurl"]),
        // Each fuzzer is an executable whose `main` comes from libFuzzer (`-sanitize=fuzzer`), so its Swift file
        // must not get a top-level `main`: `-parse-as-library` is set here, and a plain
        // `swift build -Xswiftc -sanitize=fuzzer` links.
        .executableTarget(name: "FuzzFormCodec", dependencies: ["TwilioKit"], swiftSettings: fuzzerSettings),
        .executableTarget(name: "FuzzRequestValidator", dependencies: ["TwilioKit"], swiftSettings: fuzzerSettings),
    ]
)
