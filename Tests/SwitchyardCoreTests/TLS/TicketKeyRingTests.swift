import Testing
@testable import SwitchyardCore

/// Session ticket keys (`tls-ticket-rotation`): when a key is due, which are kept, and how
/// they travel in a handover without a secret ever reaching an error message.
@Suite struct TicketKeyRingTests {
    static func key(_ seed: UInt8, at created: Int64) -> TicketKeyRing.Key {
        TicketKeyRing.Key(name: [UInt8](repeating: seed, count: 16), secret: (0..<64).map { UInt8($0) &+ seed }, createdAt: created)!
    }

    @Test func aKeyIsDueWhenThereIsNoneWhenTheNewestIsARotationOldOrWhenTheClockWentBack() {
        let hour = Duration.seconds(3600)
        var ring = TicketKeyRing()
        #expect(ring.isDue(now: 1000, rotation: hour))
        ring.add(Self.key(1, at: 1000))
        #expect(!ring.isDue(now: 1000, rotation: hour))
        #expect(!ring.isDue(now: 4599, rotation: hour))
        #expect(ring.isDue(now: 4600, rotation: hour))
        #expect(!ring.isDue(now: 1000 - 3599, rotation: hour))
        #expect(ring.isDue(now: 1000 - 3600, rotation: hour))
    }

    @Test func theNewestEncryptsAndOnlyTheOneBeforeItIsKept() {
        var ring = TicketKeyRing()
        ring.add(Self.key(1, at: 0))
        ring.add(Self.key(2, at: 10))
        ring.add(Self.key(3, at: 20))
        #expect(ring.keys.map(\.createdAt) == [20, 10])
        // Handed-over keys are sorted newest first and cut to the same two.
        #expect(TicketKeyRing(keys: [Self.key(1, at: 0), Self.key(3, at: 20), Self.key(2, at: 10)]).keys.map(\.createdAt) == [20, 10])
    }

    @Test func keysRetiredByAShorterRotationAreDroppedButNeverTheNewest() {
        var ring = TicketKeyRing(keys: [Self.key(1, at: 0), Self.key(2, at: 100)])
        ring.dropExpired(now: 150, rotation: .seconds(100))
        #expect(ring.keys.count == 2)
        ring.dropExpired(now: 200, rotation: .seconds(100))
        #expect(ring.keys.map(\.createdAt) == [100])
        ring.dropExpired(now: 100_000, rotation: .seconds(100))
        #expect(ring.keys.map(\.createdAt) == [100])
    }

    @Test func aKeyReadsBackFromItsHandoverLineAndBadLinesNeverQuoteTheSecret() throws {
        let key = Self.key(0xAB, at: 1_796_371_200)
        let line = TicketKeyRing.handoverLine(key)
        #expect(line.hasPrefix("tls-ticket-key 1796371200 abababab"))
        let words = line.split(separator: " ").dropFirst()
        #expect(try TicketKeyRing.parseHandoverWords(Array(words)) == key)

        let secret = String(line.split(separator: " ")[3])
        for bad in ["1 \(secret.prefix(31)) \(secret)", "x ab ab", "1 zz\(secret.dropFirst(2)) \(secret)", "1 2"] {
            #expect(throws: ConfigError.self) { try TicketKeyRing.parseHandoverWords(bad.split(separator: " ")) }
            do { _ = try TicketKeyRing.parseHandoverWords(bad.split(separator: " ")) } catch {
                #expect(!error.message.contains(secret.prefix(8)), "\(error.message)")
            }
        }
    }

    @Test func aHandoverCarriesTheKeysAndRefusesABadOneWithoutQuotingIt() throws {
        var message = HandoverMessage(processID: 7, descriptorCount: 0, listeners: [])
        message.ticketKeys = [Self.key(2, at: 20), Self.key(1, at: 10)]
        let read = try HandoverMessage(parsing: message.text, descriptorCount: 0)
        #expect(read.ticketKeys == message.ticketKeys)
        #expect(read == message)

        let broken = message.text.replacingOccurrences(of: "tls-ticket-key 20 ", with: "tls-ticket-key 20 00")
        do {
            _ = try HandoverMessage(parsing: broken, descriptorCount: 0)
            Issue.record("a ticket key of the wrong length was read")
        } catch {
            #expect(error.message.contains("a ticket key"), "\(error.message)")
            #expect(!error.message.contains("0202020202"), "\(error.message)")
        }
        // Without keys, no line: a process that does not terminate TLS hands over as before.
        #expect(!HandoverMessage(processID: 7, descriptorCount: 0, listeners: []).text.contains("tls-ticket-key"))
    }

    @Test func tlsTicketRotationIsReadAndBounded() throws {
        let file = "tls-ticket-rotation: 30m\nservices:\n  a:\n    listen: [127.0.0.1:1]\n    backends: [127.0.0.1:2]\n"
        #expect(try ConfigFile.parse(file, file: "a.yaml").global.tlsTicketRotation == .seconds(1800))
        #expect(try ConfigFile.parse(String(file.dropFirst(25)), file: "a.yaml").global.tlsTicketRotation == .seconds(12 * 3600))
        #expect(throws: (any Error).self) { try ConfigFile.parse("tls-ticket-rotation: 30d\n" + file.dropFirst(25), file: "a.yaml") }
        #expect(throws: (any Error).self) { try ConfigFile.parse("tls-ticket-rotation: 0s\n" + file.dropFirst(25), file: "a.yaml") }
    }
}
