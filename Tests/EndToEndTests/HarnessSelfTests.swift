import Testing

/// The harness's own pure pieces, so a failing end-to-end test points at the proxy, not at them.
@Suite struct HarnessSelfTests {
    @Test func checksumDoesNotDependOnHowTheBytesAreSplit() {
        var generator = DeterministicBytes(seed: 3)
        let bytes = generator.next(1_000)
        var whole = Checksum()
        whole.update(bytes)
        for split in [1, 3, 7, 8, 9, 500, 999] {
            var pieces = Checksum()
            pieces.update(Array(bytes[..<split]))
            pieces.update(Array(bytes[split...]))
            #expect(pieces == whole, "split at \(split)")
        }
    }

    @Test func checksumDetectsOneFlippedBitAndTrailingZeroes() {
        let bytes = DeterministicBytes(seed: 5).withNext(4_096)
        var flipped = bytes
        flipped[1_234] ^= 0x10
        #expect(Checksum.of(bytes) != Checksum.of(flipped))
        #expect(Checksum.of(bytes) != Checksum.of(bytes + [0]))
        #expect(Checksum.of([]) != Checksum.of([0]))
    }

    @Test func generatedStreamDoesNotDependOnFillSizes() {
        var oneGo = DeterministicBytes(seed: 11)
        var inPieces = DeterministicBytes(seed: 11)
        let expected = oneGo.next(100)
        let pieces = [3, 8, 1, 13, 75].flatMap { inPieces.next($0) }
        #expect(pieces == expected)
        #expect(DeterministicBytes.checksum(seed: 11, count: 100) == {
            var checksum = Checksum()
            checksum.update(expected)
            return checksum
        }())
    }

    @Test func droppingTheLastReferenceToABackendStopsItAndFreesItsPort() throws {
        var backend: TestBackend? = try TestBackend(.silent)
        let endpoint = try #require(backend?.endpoint)
        let held = try TCPConnection(to: endpoint)
        #expect(eventually(timeout: 2) { backend?.openConnectionCount == 1 })

        backend = nil

        #expect(held.readToEnd(timeout: 2).end.isClosed)
        #expect(throws: SocketError.self) { try TCPConnection(to: endpoint, timeout: 1) }
        _ = try TestBackend(.echo, at: endpoint)
    }

    @Test func differentSeedsGiveDifferentStreams() {
        #expect(DeterministicBytes(seed: 1).withNext(64) != DeterministicBytes(seed: 2).withNext(64))
    }
}

extension DeterministicBytes {
    /// The first `count` bytes of a fresh copy of this generator.
    fileprivate func withNext(_ count: Int) -> [UInt8] {
        var copy = self
        return copy.next(count)
    }
}
