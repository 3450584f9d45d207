// swift-tools-version: 6.1
import PackageDescription

// Micro-benchmarks for the pure core, kept out of the main package so that building Switchyard
// never fetches the benchmark harness. Run with `swift package benchmark` from this directory.
let package = Package(
    name: "SwitchyardBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        // Named, because a path dependency is otherwise known by its directory name (a worktree
        // or clone may be called anything).
        .package(name: "Switchyard", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "BalancingBenchmarks",
            dependencies: [
                .product(name: "SwitchyardCore", package: "Switchyard"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/BalancingBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
