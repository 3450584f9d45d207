// swift-tools-version: 6.0
import PackageDescription

// libFuzzer targets for every parser that takes outside input, kept out of the main package so
// that building Switchyard never builds them. Build and run with `Scripts/fuzz` (see README.md).
//
// Each name below is one executable, Sources/NAME/main.swift, with its seed corpus in
// Corpus/NAME/ and an optional libFuzzer dictionary Dictionaries/NAME.dict. To add a target,
// copy Sources/FuzzDuration, change what it parses, add seeds and add its name here.
let fuzzTargets = [
    "FuzzAdminCommand",
    "FuzzAgentReply",
    "FuzzBackendSpec",
    "FuzzClientControls",
    "FuzzClientHello",
    "FuzzConfigFile",
    "FuzzDNSMessage",
    "FuzzDuration",
    "FuzzEndpoint",
    "FuzzHealthEscapes",
    "FuzzHealthSteps",
    "FuzzProxyHeader",
    "FuzzSourceTable",
    "FuzzStatusAction",
]

let package = Package(
    name: "SwitchyardFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        // Named, because a path dependency is otherwise known by its directory name (a worktree
        // or clone may be called anything).
        .package(name: "Switchyard", path: ".."),
    ],
    targets: [
        // Hands a target's entry point to libFuzzer and holds the checks targets share.
        .target(name: "FuzzSupport"),
    ] + fuzzTargets.map { name in
        .executableTarget(
            name: name,
            dependencies: [
                "FuzzSupport",
                .product(name: "SwitchyardCore", package: "Switchyard"),
            ]
        )
    },
    swiftLanguageModes: [.v6]
)
