import Foundation
import Testing
@testable import SwitchyardCore

@Suite struct StatusRecorderTests {
    static let service = StatusSubject(service: "db")
    static let backend = StatusSubject(service: "db", backend: "10.0.0.1:5432")

    static func counters(_ connections: UInt64, bytes: UInt64 = 0, errors: UInt64 = 0, connects: [Int64] = []) -> StatusCounters {
        var histogram = LatencyHistogram()
        for nanoseconds in connects { histogram.record(nanoseconds: nanoseconds) }
        return StatusCounters(connections: connections, bytesIn: bytes, bytesOut: bytes * 2, errors: errors, connectTime: histogram)
    }

    @Test func ratesComeFromTheDifferenceOfTwoReadings() throws {
        var recorder = StatusRecorder(secondPoints: 10, minutePoints: 10)
        recorder.record(time: 100, [Self.service: Self.counters(10, bytes: 1000, errors: 1)])
        #expect(recorder.latest.isEmpty)  // One reading makes no rate.
        recorder.record(time: 102, [Self.service: Self.counters(30, bytes: 5000, errors: 5)])
        #expect(recorder.latest[Self.service] == [10, 2000, 4000, 0, 2])
        let history = try #require(recorder.histories[Self.service])
        #expect(history.seconds.points.map(\.time) == [102])
    }

    @Test func theConnectP99IsThatOfTheSecondNotOfTheWholeRun() {
        var recorder = StatusRecorder(secondPoints: 10, minutePoints: 10)
        // A slow connect (about 0.5 s) long ago, then only fast ones (about 1 ms).
        recorder.record(time: 1, [Self.backend: Self.counters(1, connects: [500_000_000])])
        recorder.record(time: 2, [Self.backend: Self.counters(101, connects: [500_000_000] + Array(repeating: 1_000_000, count: 100))])
        let p99 = recorder.latest[Self.backend]![3]
        #expect(p99 > 0.5 && p99 < 2, "p99 \(p99) ms should be that of the 1 ms connects")
    }

    @Test func aCounterThatStartsOverGivesZeroNotAWrap() {
        var recorder = StatusRecorder(secondPoints: 10, minutePoints: 10)
        recorder.record(time: 1, [Self.service: Self.counters(1000, connects: [1_000_000, 1_000_000])])
        recorder.record(time: 2, [Self.service: Self.counters(5, connects: [1_000_000])])
        #expect(recorder.latest[Self.service] == [0, 0, 0, 0, 0])
    }

    @Test func aSubjectNoLongerReportedLosesItsHistory() {
        var recorder = StatusRecorder(secondPoints: 10, minutePoints: 10)
        recorder.record(time: 1, [Self.service: Self.counters(0), Self.backend: Self.counters(0)])
        recorder.record(time: 2, [Self.service: Self.counters(1), Self.backend: Self.counters(1)])
        #expect(recorder.histories.count == 2)
        recorder.record(time: 3, [Self.service: Self.counters(2)])
        #expect(recorder.histories.keys.sorted() == [Self.service])
        #expect(recorder.latest[Self.backend] == nil)
    }

    @Test func subjectsPastTheLimitHaveRatesButNoHistory() {
        var recorder = StatusRecorder(maximumSubjects: 2, secondPoints: 10, minutePoints: 10)
        let subjects = (1...4).map { StatusSubject(service: "s", backend: "10.0.0.\($0):80") }
        recorder.record(time: 1, Dictionary(uniqueKeysWithValues: subjects.map { ($0, Self.counters(0)) }))
        recorder.record(time: 2, Dictionary(uniqueKeysWithValues: subjects.map { ($0, Self.counters(3)) }))
        #expect(recorder.histories.count == 2)
        #expect(recorder.subjectsWithoutHistory == 2)
        #expect(recorder.latest.count == 4)
    }

    @Test func theRingsWrapAndTheMinutesFoldTheirSeconds() {
        var recorder = StatusRecorder(secondPoints: 90, minutePoints: 3)
        var total: UInt64 = 0
        recorder.record(time: 0, [Self.service: Self.counters(0)])
        // 5 minutes at 6 connections a second: 300 seconds into 90 second points and 3 minutes.
        for second in 1...300 {
            total += 6
            recorder.record(time: Int64(second), [Self.service: Self.counters(total)])
        }
        let history = recorder.histories[Self.service]!
        #expect(history.seconds.count == 90)
        #expect(history.seconds.points.first?.time == 211)
        // Minutes 0 to 240 are folded (300 is still gathering); the ring keeps the last 3.
        #expect(history.minutes.points.map(\.time) == [120, 180, 240])
        #expect(history.minutes.points.allSatisfy { $0.values[0] == 6 })
    }

    @Test func theJSONExportHasEverySubjectAndOnlyThePointsAfterSince() throws {
        var recorder = StatusRecorder(secondPoints: 10, minutePoints: 10)
        for second in 0...3 {
            recorder.record(time: Int64(100 + second), [Self.service: Self.counters(UInt64(second) * 2), Self.backend: Self.counters(0)])
        }
        let all = try #require(try JSONSerialization.jsonObject(with: Data(recorder.json(resolution: 1).utf8)) as? [String: Any])
        #expect(all["resolution_seconds"] as? Int == 1)
        #expect(all["fields"] as? [String] == StatusRecorder.fields)
        let subjects = try #require(all["subjects"] as? [[String: Any]])
        #expect(subjects.count == 2)
        #expect(subjects[0]["service"] as? String == "db")
        #expect(subjects[0]["backend"] is NSNull)
        #expect(subjects[1]["backend"] as? String == "10.0.0.1:5432")
        #expect((subjects[0]["points"] as? [[Double]])?.map { $0[0] } == [101, 102, 103])
        let recent = try #require(try JSONSerialization.jsonObject(with: Data(recorder.json(resolution: 1, since: 102).utf8)) as? [String: Any])
        let points = try #require((recent["subjects"] as? [[String: Any]])?.first?["points"] as? [[Double]])
        #expect(points == [[103, 2, 0, 0, 0, 0]])
    }
}
