import Testing
@testable import SwitchyardCore

@Suite struct UserDataTests {
    @Test(arguments: RingOperationKind.allCases)
    func everyKindRoundTripsAtTheEdges(kind: RingOperationKind) throws {
        let slots: [UInt32] = [0, 1, 255, 256, 65_535, 1 << 24, UInt32.max - 1, UInt32.max]
        let generations: [UInt32] = [0, 1, 0xFF, 0x100, 0xFFFF, 0x10000, UserData.generationMask - 1, UserData.generationMask]
        for slot in slots {
            for generation in generations {
                let packed = UserData(slot: slot, generation: generation, kind: kind).packed
                let decoded = try #require(UserData(packed: packed))
                #expect(decoded.slot == slot)
                #expect(decoded.generation == generation)
                #expect(decoded.kind == kind)
            }
        }
    }

    @Test func fieldsDoNotOverlap() {
        let a = UserData(slot: 7, generation: 9, kind: .sendToClient).packed
        #expect(a & 0xFF == UInt64(RingOperationKind.sendToClient.rawValue))
        #expect(a >> 32 == 7)
        #expect((a >> 8) & 0xFF_FFFF == 9)
    }

    @Test func unknownKindIsRejected() {
        #expect(UserData(packed: 0) == nil)
        #expect(UserData(packed: 0xFF) == nil)
    }

    @Test func generationWrapsWithinTwentyFourBits() {
        #expect(UserData.nextGeneration(after: 0) == 1)
        #expect(UserData.nextGeneration(after: UserData.generationMask) == 0)
    }

    @Test func aStaleCompletionIsDistinguishable() {
        let old = UserData(slot: 3, generation: 41, kind: .receiveFromClient)
        let current = UserData(slot: 3, generation: UserData.nextGeneration(after: 41), kind: .receiveFromClient)
        #expect(old.packed != current.packed)
        #expect(UserData(packed: old.packed)!.generation != current.generation)
    }
}
