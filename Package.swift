// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "Switchyard",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "switchyard", targets: ["switchyard"]),
        // For the micro-benchmarks package in Benchmarks/.
        .library(name: "SwitchyardCore", targets: ["SwitchyardCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        // The metrics endpoint: HTTP/1 on one event-loop thread, and the exposition format.
        .package(url: "https://github.com/apple/swift-nio", from: "2.81.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
    ],
    targets: [
        // The only C: what Swift cannot import from liburing, OpenSSL and glibc. No logic.
        .target(
            name: "CSwitchyard",
            linkerSettings: [
                .linkedLibrary(":liburing.a"),
                // OpenSSL 3 (Debian's libssl-dev): TLS health checks (issue 22).
                .linkedLibrary("ssl"), .linkedLibrary("crypto"),
            ]
        ),
        // Pure logic: parsing, balancing, health state, admin protocol, snapshots. No Glibc, no io_uring.
        .target(name: "SwitchyardCore", dependencies: [.product(name: "Yams", package: "Yams")]),
        // Owns every syscall, io_uring call and unsafe pointer: rings, workers, health and admin threads.
        .target(
            name: "SwitchyardIO",
            dependencies: [
                "CSwitchyard",
                "SwitchyardCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            // The workers' state is confined to one thread each; in release builds, skip the
            // run-time exclusivity checks that otherwise guard every access to a class's stored
            // property (about 2% of a worker's CPU per request). Debug builds and tests keep them.
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        .executableTarget(
            name: "switchyard",
            dependencies: [
                "SwitchyardCore",
                "SwitchyardIO",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            plugins: ["GitCommitPlugin"]
        ),
        // Writes the source tree's git commit into the executable (`switchyard --version`).
        .plugin(name: "GitCommitPlugin", capability: .buildTool()),
        .testTarget(name: "SwitchyardCoreTests", dependencies: ["SwitchyardCore"]),
        .testTarget(name: "EndToEndTests", dependencies: ["SwitchyardCore"]),
        // The health checker and admin socket against real loopback sockets.
        .testTarget(name: "SwitchyardIOTests", dependencies: ["SwitchyardIO", "SwitchyardCore"]),
    ],
    swiftLanguageModes: [.v6]
)
