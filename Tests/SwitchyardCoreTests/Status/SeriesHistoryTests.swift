import Testing
@testable import SwitchyardCore

@Suite struct SeriesRingTests {
    @Test func aFullRingOverwritesItsOldestPointAndKeepsOrder() {
        var ring = SeriesRing(resolution: 1, capacity: 3, width: 2)
        for second in 1...5 { ring.append(time: Int64(second), [Float(second), Float(second * 10)]) }
        #expect(ring.count == 3)
        #expect(ring.points.map(\.time) == [3, 4, 5])
        #expect(ring.points.map(\.values) == [[3, 30], [4, 40], [5, 50]])
        #expect(ring.latestTime == 5)
        #expect(ring.point(age: 0)?.time == 5)
        #expect(ring.point(age: 2)?.time == 3)
        #expect(ring.point(age: 3) == nil)
    }

    @Test func aShortPointIsPaddedWithZerosAndALongOneCut() {
        var ring = SeriesRing(resolution: 1, capacity: 2, width: 2)
        ring.append(time: 1, [7])
        ring.append(time: 2, [1, 2, 3])
        #expect(ring.points.map(\.values) == [[7, 0], [1, 2]])
    }

    @Test func anEmptyRingHasNoPoints() {
        let ring = SeriesRing(resolution: 60, capacity: 4, width: 1)
        #expect(ring.count == 0)
        #expect(ring.latestTime == nil)
        #expect(ring.points.isEmpty)
    }
}

@Suite struct SeriesHistoryTests {
    @Test func secondsRollIntoMinutesByMeanAndMaximum() {
        var history = SeriesHistory(fields: ["cps", "p99"], rollups: [.mean, .maximum])
        // Minute 600..659: cps 1...60 (mean 30.5), p99 peaks at 9 on second 610.
        for second in 0..<60 {
            history.record(time: Int64(600 + second), [Float(second + 1), second == 10 ? 9 : 1])
        }
        #expect(history.minutes.count == 0, "a minute is folded when the next one starts")
        #expect(history.currentMinute?.time == 600)
        history.record(time: 660, [100, 2])
        #expect(history.minutes.points.map(\.time) == [600])
        #expect(history.minutes.points[0].values == [30.5, 9])
        #expect(history.currentMinute?.values == [100, 2])
    }

    @Test func aMinuteWithMissingSecondsAveragesTheSecondsItHas() {
        var history = SeriesHistory(fields: ["cps"])
        history.record(time: 120, [10])
        history.record(time: 150, [20])
        history.record(time: 300, [0])  // minutes 180 and 240 had no sample at all
        #expect(history.minutes.points.map(\.time) == [120])
        #expect(history.minutes.points[0].values == [15])
    }

    @Test func theSecondRingKeepsFifteenMinutesAndTheMinuteRingADay() {
        var history = SeriesHistory(fields: ["cps"])
        let start: Int64 = 1_800_000_000 - 1_800_000_000 % 60
        for second in 0..<(25 * 3600) { history.record(time: start + Int64(second), [1]) }
        #expect(history.seconds.count == 900)
        #expect(history.seconds.points.first?.time == start + 25 * 3600 - 900)
        #expect(history.minutes.count == 1440)
        #expect(history.minutes.points.last?.time == start + 25 * 3600 - 120)
        // Fixed storage: 2,340 points of 8 + 4 bytes, whatever the uptime.
        #expect(history.storageBytes == 2340 * 12)
    }

    @Test func aTimeNotAfterTheLastIsIgnored() {
        var history = SeriesHistory(fields: ["cps"])
        history.record(time: 100, [1])
        history.record(time: 100, [2])
        history.record(time: 99, [3])
        #expect(history.seconds.points.map(\.values) == [[1]])
    }

    @Test func theJSONExportNamesItsFieldsAndResolution() {
        var history = SeriesHistory(fields: ["cps", "p99_ms"], rollups: [.mean, .maximum])
        history.record(time: 60, [1.5, 0.25])
        history.record(time: 61, [2, 1.0 / 3])
        #expect(history.json(resolution: 1)
            == #"{"resolution_seconds":1,"fields":["cps","p99_ms"],"points":[[60,1.5,0.25],[61,2,0.333]]}"#)
        #expect(history.json(resolution: 60)
            == #"{"resolution_seconds":60,"fields":["cps","p99_ms"],"points":[[60,1.75,0.333]]}"#)
    }

    @Test func numbersJSONCannotHoldBecomeZero() {
        #expect(SeriesHistory.number(.nan) == "0")
        #expect(SeriesHistory.number(.infinity) == "0")
        #expect(SeriesHistory.number(-2) == "-2")
        #expect(SeriesHistory.number(1e20) == "1e+20")
    }
}
