import Benchmark
import SwitchyardCore

/// Pick cost per algorithm, through `any Balancer` as workers hold it, and Maglev table build cost.
///
/// Each pick benchmark iteration makes 1000 picks (`scalingFactor: .kilo`), so the reported
/// figures are per pick. Least connections sees uneven open-connection counts and ip-hash sees
/// 1024 different client keys, so neither takes a lucky short path.
let benchmarks: @Sendable () -> Void = {
    let picksPerIteration = 1_000

    for algorithm in BalanceAlgorithm.allCases {
        for count in [4, 64, 1024] {
            Benchmark(
                "pick \(algorithm) \(count) backends",
                configuration: .init(
                    metrics: [.wallClock],
                    timeUnits: .nanoseconds,
                    warmupIterations: 10,
                    scalingFactor: .kilo,
                    maxDuration: .milliseconds(500),
                    maxIterations: 2_000
                )
            ) { benchmark in
                let backends = makeBackends(count: count)
                var balancer = algorithm.makeBalancer(backends)
                let clientKeys = (0..<1024).map { StableHash.hash(low: 0x0A00_0000 + UInt64($0), byteCount: 4) }
                let tried = TriedBackends()
                var next = 0
                benchmark.startMeasurement()
                for _ in 0..<picksPerIteration {
                    blackHole(balancer.pick(clientKey: clientKeys[next & 1023], excluding: tried))
                    next &+= 1
                }
            }
        }
    }

    for count in [10, 100, 1000] {
        Benchmark(
            "maglev build \(count) backends",
            configuration: .init(
                metrics: [.wallClock],
                timeUnits: .microseconds,
                warmupIterations: 2,
                maxDuration: .seconds(2),
                maxIterations: 30
            )
        ) { benchmark in
            let backends = makeBackends(count: count)
            benchmark.startMeasurement()
            blackHole(MaglevTable(backends: backends))
        }
    }
}

/// `count` selectable backends with weights 1 to 4 and uneven open-connection counts.
private func makeBackends(count: Int) -> [BalancerBackend] {
    (0..<count).map { index in
        let stats = BackendStats()
        stats.active.store((index * 7) % 13, ordering: .relaxed)
        return BalancerBackend(
            weight: 1 + index % 4,
            selectable: true,
            stats: stats,
            key: StableHash.hash(Array("10.1.\(index / 256).\(index % 256):80".utf8))
        )
    }
}
