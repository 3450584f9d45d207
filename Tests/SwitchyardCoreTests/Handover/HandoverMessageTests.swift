import Testing
@testable import SwitchyardCore

private func endpoint(_ text: String) -> Endpoint { try! Endpoint(parsing: text, allowPortZero: true) }

private func sampleMessage() throws -> HandoverMessage {
    var overrides = RuntimeOverrides()
    overrides.record(service: "pg", try AdminCommand(parsing: "drain pg/10.0.0.1:5432"))
    overrides.record(service: "pg", try AdminCommand(parsing: "add pg/10.0.0.4:5432,weight=2"))
    overrides.record(service: "redis", try AdminCommand(parsing: "weight redis/10.0.1.1:6379 7"))
    return HandoverMessage(
        processID: 4242, descriptorCount: 5,
        listeners: [
            .init(service: "pg", configured: endpoint("0.0.0.0:5000"), bound: endpoint("0.0.0.0:5000"), descriptors: [0, 1]),
            .init(service: "redis", configured: endpoint("[::1]:0"), bound: endpoint("[::1]:40211"), descriptors: [3, 2]),
        ],
        adminSocket: .init(descriptor: 4, path: "/run/switchyard/admin sock"),
        overrides: overrides)
}

@Test func handoverMessageTextIsPinnedAndReadsBack() throws {
    let message = try sampleMessage()
    try message.validate()
    #expect(message.text == """
        switchyard-handover 1
        pid 4242
        descriptors 5
        listener pg 0.0.0.0:5000 0.0.0.0:5000 0,1
        listener redis [::1]:0 [::1]:40211 3,2
        admin 4 /run/switchyard/admin sock
        state drain pg/10.0.0.1:5432
        state add pg/10.0.0.4:5432,weight=2
        state weight redis/10.0.1.1:6379 7
        end

        """)
    let read = try HandoverMessage(parsing: message.text, descriptorCount: 5)
    #expect(read == message)
    #expect(read.overrides.fileText == message.overrides.fileText)
}

@Test func aHandoverWithoutAdminSocketOrStateReadsBack() throws {
    let message = HandoverMessage(processID: 1, descriptorCount: 1, listeners: [
        .init(service: "default", configured: endpoint("localhost:80"), bound: endpoint("127.0.0.1:80"), descriptors: [0]),
    ])
    #expect(try HandoverMessage(parsing: message.text, descriptorCount: 1) == message)
}

private func handoverError(_ text: String, descriptors: Int = 2) -> String? {
    do { _ = try HandoverMessage(parsing: text, descriptorCount: descriptors); return nil } catch { return error.message }
}

private let validLines = [
    "switchyard-handover 1", "pid 10", "descriptors 2", "listener web 127.0.0.1:80 127.0.0.1:80 0,1", "end",
]

private func text(_ lines: [String]) -> String { lines.joined(separator: "\n") + "\n" }

@Test func aCutOrForeignHandoverTextIsRefused() {
    #expect(handoverError(text(validLines)) == nil)
    #expect(handoverError(String(text(validLines).dropLast())) == "handover: message does not end with a newline (cut short?)")
    #expect(handoverError(text(Array(validLines.dropLast()))) == "handover: message has no 'end' line (cut short?)")
    #expect(handoverError("") == "handover: empty message")
    #expect(handoverError("ERROR: unknown command 'takeover'\n") == "handover: not a handover message (first line 'ERROR: unknown command 'takeover'')")
    #expect(handoverError(text(["switchyard-handover 2"] + validLines.dropFirst()))
        == "handover: the running process speaks version 2 of the handover; this binary reads version 1 only")
}

@Test func everyDescriptorMustBeNamedOnceAndArrive() {
    #expect(handoverError(text(validLines), descriptors: 3) == "handover: message names 2 descriptors but 3 arrived")
    var lines = validLines
    lines[3] = "listener web 127.0.0.1:80 127.0.0.1:80 0,0"
    #expect(handoverError(text(lines)) == "handover: descriptor 0 is named twice (again by listener web 127.0.0.1:80)")
    lines[3] = "listener web 127.0.0.1:80 127.0.0.1:80 0,2"
    #expect(handoverError(text(lines)) == "handover: listener web 127.0.0.1:80 names descriptor 2, but 2 were passed")
    lines[3] = "listener web 127.0.0.1:80 127.0.0.1:80 0"
    #expect(handoverError(text(lines)) == "handover: descriptor 1 of 2 is not named by any line")
    lines[3] = "listener web 127.0.0.1:80 127.0.0.1:80 0,x"
    #expect(handoverError(text(lines)) == "handover: line 4 'listener web 127.0.0.1:80 127.0.0.1:80 0,x': 'x' is not a descriptor position")
    lines[3] = "listener web 127.0.0.1:80 localhost:80 0,1"
    #expect(handoverError(text(lines)) == "handover: listener web localhost:80 must be bound to an IP address and a port")
    lines[3] = "listener we/b 127.0.0.1:80 127.0.0.1:80 0,1"
    #expect(handoverError(text(lines)) == "handover: 'we/b' is not a service name")
}

@Test func unknownOrMalformedHandoverLinesNameTheirLine() {
    var lines = validLines
    lines.insert("frobnicate 1", at: 3)
    #expect(handoverError(text(lines)) == "handover: line 4 'frobnicate 1': unknown line")
    lines = validLines
    lines.insert("pid 11", at: 2)
    #expect(handoverError(text(lines)) == "handover: line 3 'pid 11': expected 'pid N' once")
    lines = validLines
    lines.insert("state frobnicate default/127.0.0.1:1", at: 4)
    #expect(handoverError(text(lines))?.hasPrefix("handover: handover state:1:1: not a state line") == true)
    lines = validLines
    lines.remove(at: 1)
    #expect(handoverError(text(lines)) == "handover: message has no 'pid' line")
    lines = validLines
    lines[3] = "listener web 127.0.0.1:80 0,1"
    #expect(handoverError(text(lines)) == "handover: line 4 'listener web 127.0.0.1:80 0,1': expected 'listener SERVICE CONFIGURED BOUND POSITIONS'")
}

@Test func anAdminPathWithALineBreakFailsValidation() {
    let message = HandoverMessage(processID: 1, descriptorCount: 1, listeners: [], adminSocket: .init(descriptor: 0, path: "/run/a\nstate x"))
    #expect(throws: HandoverError.self) { try message.validate() }
}

// MARK: - Frame header

@Test func frameHeaderBytesArePinnedAndDecode() throws {
    let header = DescriptorFrame.Header(descriptorCount: 300, payloadLength: 70_000)
    #expect(header.bytes == [0x53, 0x57, 0x59, 0x46, 1, 0, 0, 0, 0, 0, 0x01, 0x2C, 0, 0x01, 0x11, 0x70])
    #expect(header.batchCount == 2)
    #expect(DescriptorFrame.Header(descriptorCount: 253, payloadLength: 0).batchCount == 1)
    #expect(DescriptorFrame.Header(descriptorCount: 0, payloadLength: 0).batchCount == 0)
    #expect(try DescriptorFrame.Header(decoding: header.bytes, maximumDescriptors: 4096, maximumPayload: 1 << 20) == header)
}

@Test func frameHeadersBeyondTheLimitsOrFromAnotherProtocolAreRefused() {
    func message(_ bytes: [UInt8], descriptors: Int = 10, payload: Int = 100) -> String? {
        do { _ = try DescriptorFrame.Header(decoding: bytes, maximumDescriptors: descriptors, maximumPayload: payload); return nil }
        catch { return error.message }
    }
    #expect(message(DescriptorFrame.Header(descriptorCount: 11, payloadLength: 0).bytes) == "handover frame carries 11 descriptors; at most 10 are accepted")
    #expect(message(DescriptorFrame.Header(descriptorCount: 1, payloadLength: 101).bytes) == "handover frame payload is 101 bytes; at most 100 are accepted")
    #expect(message(Array("ERROR: unknown c".utf8)) == "the peer did not send a handover frame; it sent 'ERROR: unknown c...'")
    var future = DescriptorFrame.Header(descriptorCount: 1, payloadLength: 1).bytes
    future[4] = 2
    #expect(message(future) == "handover frame version 2 is not supported (this binary reads version 1)")
}

// MARK: - Worker descriptor plan

@Test func handedOverSocketsMapOntoWorkersWithoutLeavingOneUnaccepted() {
    typealias S = WorkerDescriptorSource
    #expect(WorkerDescriptorPlan.entries(received: 2, workers: 2, canBindFresh: true) == [[S.received(0), .received(1)]])
    #expect(WorkerDescriptorPlan.entries(received: 1, workers: 3, canBindFresh: true) == [[S.received(0), .fresh, .fresh]])
    #expect(WorkerDescriptorPlan.entries(received: 1, workers: 3, canBindFresh: false) == [[S.received(0), .duplicate(0), .duplicate(0)]])
    #expect(WorkerDescriptorPlan.entries(received: 2, workers: 4, canBindFresh: false) == [[S.received(0), .received(1), .duplicate(0), .duplicate(1)]])
    #expect(WorkerDescriptorPlan.entries(received: 5, workers: 2, canBindFresh: true) == [
        [S.received(0), .received(1)], [.received(2), .received(3)], [.received(4), .duplicate(4)],
    ])
    #expect(WorkerDescriptorPlan.entries(received: 0, workers: 2, canBindFresh: true).isEmpty)
}

@Test func everyReceivedSocketIsAcceptedOnForEveryShape() {
    for received in 1...9 {
        for workers in 1...9 {
            for fresh in [false, true] {
                let entries = WorkerDescriptorPlan.entries(received: received, workers: workers, canBindFresh: fresh)
                #expect(entries.allSatisfy { $0.count == workers })
                var taken: [Int] = []
                for entry in entries {
                    for source in entry {
                        if case let .received(index) = source { taken.append(index) }
                        if case let .duplicate(index) = source { #expect(entry.contains(.received(index))) }
                    }
                }
                #expect(taken.sorted() == Array(0..<received), "received \(received), workers \(workers)")
            }
        }
    }
}

// MARK: - Matching handed-over listeners to the new configuration

private func handed(_ service: String, _ configured: String, _ bound: String, _ positions: [Int]) -> HandoverMessage.Listener {
    .init(service: service, configured: endpoint(configured), bound: endpoint(bound), descriptors: positions)
}

private func newListener(_ service: String, _ address: String) -> ActivationMatch.ConfiguredListener {
    .init(service: service, endpoint: endpoint(address))
}

@Test func handedOverListenersAreKeptByConfiguredAddressThenByBoundAddress() {
    let old = [
        handed("web", "127.0.0.1:0", "127.0.0.1:40001", [0, 1]),
        handed("pg", "0.0.0.0:5432", "0.0.0.0:5432", [2, 3]),
        handed("cache", "127.0.0.1:6379", "127.0.0.1:6379", [4, 5]),
        handed("gone", "127.0.0.1:7000", "127.0.0.1:7000", [6, 7]),
    ]
    let match = HandoverMatch(handed: old, listeners: [
        newListener("web", "127.0.0.1:0"),          // port 0 keeps the port it had
        newListener("pg", "0.0.0.0:5432"),
        newListener("redis", "127.0.0.1:6379"),     // moved to another service: the socket moves too
        newListener("web", "127.0.0.1:8080"),       // new: bound fresh
    ])
    #expect(match.kept.map { "\($0.listener.service) \($0.listener.endpoint) <- \($0.handed.bound) \($0.handed.descriptors)" } == [
        "web 127.0.0.1:0 <- 127.0.0.1:40001 [0, 1]",
        "pg 0.0.0.0:5432 <- 0.0.0.0:5432 [2, 3]",
        "redis 127.0.0.1:6379 <- 127.0.0.1:6379 [4, 5]",
    ])
    #expect(match.toBind == [newListener("web", "127.0.0.1:8080")])
    #expect(match.toClose == [old[3]])
    #expect(match.summary == [
        "service web: 127.0.0.1:8080 was not handed over; binding it",
        "service gone: 127.0.0.1:7000 is not in the new configuration; closing it after the takeover",
    ])
}

@Test func aNewPortZeroListenerOrAnUnresolvedOneIsBoundFresh() {
    let old = [handed("web", "127.0.0.1:8080", "127.0.0.1:8080", [0])]
    let match = HandoverMatch(handed: old, listeners: [newListener("api", "127.0.0.1:0"), newListener("api", "localhost:8080")])
    #expect(match.kept.isEmpty)
    #expect(match.toBind.count == 2)
    #expect(match.toClose == old)
}
