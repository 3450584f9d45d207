import SwitchyardCore
import Testing

@Suite struct LatencyHistogramTests {
    @Test func everyBucketHoldsItsUpperBoundAndPassesTheNextValueOn() {
        for index in 0..<(LatencyHistogram.bucketCount - 1) {
            let upper = LatencyHistogram.upperBoundNanoseconds(ofBucket: index)!
            var atBound = LatencyHistogram()
            atBound.record(nanoseconds: Int64(upper))
            #expect(atBound.count(inBucket: index) == 1, "bucket \(index) must hold its bound \(upper) ns")
            var above = LatencyHistogram()
            above.record(nanoseconds: Int64(upper) + 1)
            #expect(above.count(inBucket: index + 1) == 1, "\(upper + 1) ns belongs to bucket \(index + 1)")
        }
    }

    @Test func boundsAreLogLinearFromEightMicrosecondsToSixtyEightSeconds() {
        #expect(LatencyHistogram.bucketCount == 94)
        #expect(LatencyHistogram.upperBoundNanoseconds(ofBucket: 0) == 8192)
        #expect(LatencyHistogram.upperBoundNanoseconds(ofBucket: 1) == 10240)
        #expect(LatencyHistogram.upperBoundNanoseconds(ofBucket: 4) == 16384)
        #expect(LatencyHistogram.upperBoundNanoseconds(ofBucket: 92) == 1 << 36)
        #expect(LatencyHistogram.upperBoundNanoseconds(ofBucket: 93) == nil)
        // No bucket is wider than a quarter of its lower bound.
        for index in 2..<(LatencyHistogram.bucketCount - 1) {
            let lower = Double(LatencyHistogram.upperBoundNanoseconds(ofBucket: index - 1)!)
            let upper = Double(LatencyHistogram.upperBoundNanoseconds(ofBucket: index)!)
            #expect(upper / lower <= 1.25 + 1e-12)
        }
    }

    @Test func extremesLandInTheFirstAndOverflowBuckets() {
        var histogram = LatencyHistogram()
        histogram.record(nanoseconds: -5)
        histogram.record(nanoseconds: 0)
        histogram.record(nanoseconds: 10_000_000_000_000)
        histogram.record(nanoseconds: .max)
        #expect(histogram.count(inBucket: 0) == 2)
        #expect(histogram.count(inBucket: LatencyHistogram.bucketCount - 1) == 2)
        #expect(histogram.count == 4)
    }

    @Test func recordsCountAndSum() {
        var histogram = LatencyHistogram()
        histogram.record(nanoseconds: 1_500_000)
        histogram.record(.milliseconds(2))
        #expect(histogram.count == 2)
        #expect(histogram.sumNanoseconds == 3_500_000)
        #expect(histogram.sumSeconds == 0.0035)
    }

    @Test func mergingEqualsRecordingEverythingInOne() {
        let values: [Int64] = [1, 9_000, 12_345, 250_000, 1_000_000, 7_777_777, 3_000_000_000, 99_000_000_000]
        var all = LatencyHistogram()
        var even = LatencyHistogram()
        var odd = LatencyHistogram()
        for (index, value) in values.enumerated() {
            all.record(nanoseconds: value)
            if index % 2 == 0 { even.record(nanoseconds: value) } else { odd.record(nanoseconds: value) }
        }
        #expect(even != all)
        var merged = even
        merged.merge(odd)
        #expect(merged == all)
        #expect(merged.count == UInt64(values.count))
        #expect(merged.sumNanoseconds == UInt64(values.reduce(0, +)))
        var empty = LatencyHistogram()
        empty.merge(all)
        #expect(empty == all)
    }

    @Test func quantilesInterpolateInsideTheRightBucket() {
        var histogram = LatencyHistogram()
        #expect(histogram.quantileSeconds(0.5) == nil)
        for _ in 0..<99 { histogram.record(.milliseconds(1)) }
        histogram.record(.seconds(1))
        // 1 ms lies in (917504, 1048576] ns.
        let p50 = histogram.quantileNanoseconds(0.5)!
        #expect(p50 > 917_504 && p50 <= 1_048_576)
        let p99 = histogram.quantileNanoseconds(0.99)!
        #expect(p99 > 917_504 && p99 <= 1_048_576)
        // The largest observation, 1 s, lies in (939524096, 1073741824] ns.
        let p100 = histogram.quantileNanoseconds(1)!
        #expect(p100 > 939_524_096 && p100 <= 1_073_741_824)
    }

    @Test func quantileOfOneValueIsWithinAQuarterOctave() {
        for value: Int64 in [20_000, 123_456, 5_000_000, 42_000_000_000] {
            var histogram = LatencyHistogram()
            histogram.record(nanoseconds: value)
            let estimate = histogram.quantileNanoseconds(0.99)!
            #expect(abs(estimate - Double(value)) <= Double(value) * 0.25, "p99 of \(value) ns was \(estimate)")
        }
    }

    @Test func exposedBucketsAreOnePerOctaveAndCumulative() {
        var histogram = LatencyHistogram()
        histogram.record(nanoseconds: 5_000)            // <= 8.192 µs
        histogram.record(nanoseconds: 16_384)           // <= 16.384 µs exactly
        histogram.record(nanoseconds: 1_000_000)        // <= 1.048576 ms
        histogram.record(nanoseconds: 100_000_000_000)  // above 68.7 s: only in +Inf
        let buckets = histogram.exposedBuckets
        #expect(buckets.count == 24)
        #expect(buckets[0].upperBoundSeconds == 0.000008192)
        #expect(buckets[1].upperBoundSeconds == 0.000016384)
        #expect(buckets[23].upperBoundSeconds == 68.719476736)
        #expect(buckets[0].cumulativeCount == 1)
        #expect(buckets[1].cumulativeCount == 2)
        #expect(buckets[6].cumulativeCount == 2)   // 2^19 ns
        #expect(buckets[7].cumulativeCount == 3)   // 2^20 ns
        #expect(buckets[23].cumulativeCount == 3)
        #expect(histogram.count == 4)
        for pair in zip(buckets, buckets.dropFirst()) {
            #expect(pair.0.upperBoundSeconds * 2 == pair.1.upperBoundSeconds)
        }
    }
}

@Suite struct ConnectionFiguresTests {
    @Test func accountingAddsUpToAccepted() {
        var figures = ConnectionFigures()
        figures.accepted = 10
        figures.recordClose(.refused)
        figures.recordClose(.clientClose, sessionNanoseconds: 2_000_000)
        figures.recordClose(.backendReset, sessionNanoseconds: 3_000_000)
        figures.recordClose(.noBackend)
        #expect(figures.refused == 1)
        #expect(figures.closedTotal == 3)
        #expect(figures.open == 6)
        #expect(figures.closed(.clientClose) == 1)
        #expect(figures.closed(.gracefulStop) == 0)
        #expect(figures.sessionDuration.count == 2)
    }

    @Test func mergeSumsEveryField() {
        var a = ConnectionFigures()
        a.accepted = 3
        a.connectAttempts = 4
        a.connectFailures = 1
        a.connectRetries = 1
        a.bytesFromClients = 100
        a.bytesToClients = 1000
        a.acceptBackoffs = 2
        a.starvedReceives = 5
        a.recordClose(.idleTimeout, sessionNanoseconds: 1_000)
        a.connectTime.record(nanoseconds: 50_000)
        var b = ConnectionFigures()
        b.accepted = 7
        b.connectAttempts = 7
        b.bytesFromClients = 1
        b.bytesToClients = 2
        b.recordClose(.idleTimeout, sessionNanoseconds: 9_000_000)
        b.recordClose(.adminShutdown)
        b.connectTime.record(nanoseconds: 70_000)
        let sum = ConnectionFigures.merged([a, b])
        #expect(sum.accepted == 10)
        #expect(sum.connectAttempts == 11)
        #expect(sum.connectFailures == 1)
        #expect(sum.connectRetries == 1)
        #expect(sum.bytesFromClients == 101)
        #expect(sum.bytesToClients == 1002)
        #expect(sum.acceptBackoffs == 2)
        #expect(sum.starvedReceives == 5)
        #expect(sum.closed(.idleTimeout) == 2)
        #expect(sum.closed(.adminShutdown) == 1)
        #expect(sum.sessionDuration.count == 2)
        #expect(sum.connectTime.count == 2)
        #expect(sum.connectTime.sumNanoseconds == 120_000)
        #expect(sum.open == 7)
    }

    @Test func openNeverGoesNegative() {
        var figures = ConnectionFigures()
        figures.recordClose(.clientClose)
        #expect(figures.open == 0)
    }

    @Test func figuresAreAPlainValueWithoutReferences() {
        // Copying must be a memcpy: no class, array or string inside.
        #expect(_isPOD(ConnectionFigures.self))
        #expect(_isPOD(LatencyHistogram.self))
        #expect(MemoryLayout<ConnectionFigures>.size < 2048)
    }
}

@Suite struct TerminationCauseTests {
    @Test func labelsAreStableSnakeCase() {
        #expect(TerminationCause.allCases.map(\.label) == [
            "client_close", "backend_close", "client_reset", "backend_reset", "connect_failure",
            "no_backend", "idle_timeout", "admin_shutdown", "graceful_stop", "refused", "queue_full", "queue_timeout",
            "rejected_deny", "rejected_not_allowed", "rejected_source_limit", "rejected_source_rate",
            "backend_down", "backup_preempted", "removal_grace",
        ])
        for cause in TerminationCause.allCases {
            #expect(TerminationCause(label: cause.label) == cause)
        }
        #expect(TerminationCause(label: "Client_Close") == nil)
        #expect(!TerminationCause.servedCases.contains(.refused))
        #expect(TerminationCause.servedCases.count == 14)
    }
}
