import Testing
@testable import SwitchyardCore

@Suite struct BufferPostingPolicyTests {
    @Test func startsWithTheFloorPostedAndNeverMoreThanThePool() {
        #expect(BufferPostingPolicy(capacity: 1024).target == 32)
        #expect(BufferPostingPolicy(capacity: 16).target == 16, "a pool smaller than the floor posts every buffer")
        #expect(BufferPostingPolicy(capacity: 1024, floor: 0).target == 1, "the floor is at least one buffer")
    }

    @Test func eachStarvedReceiveAddsAStepUpToThePool() {
        var policy = BufferPostingPolicy(capacity: 64)
        #expect(policy.growthStep == 8, "a quarter of the floor")
        var targets: [Int] = []
        for _ in 0..<6 {
            policy.ringRanDry()
            targets.append(policy.target)
        }
        #expect(targets == [40, 48, 56, 64, 64, 64])
    }

    @Test func aQuietWorkerHalvesItsTargetEachTickDownToTheFloor() {
        var policy = BufferPostingPolicy(capacity: 1024, growthStep: 992)
        policy.ringRanDry()
        #expect(policy.target == 1024)
        _ = policy.tick(posted: 1024)  // the period in which it starved keeps its target
        var targets: [Int] = []
        for _ in 0..<7 { targets.append(policy.tick(posted: policy.target)) }
        #expect(targets == [512, 256, 128, 64, 32, 32, 32])
    }

    @Test func aPeriodThatStarvedKeepsItsTarget() {
        var policy = BufferPostingPolicy(capacity: 1024)
        policy.ringRanDry()
        #expect(policy.tick(posted: 40) == 40)
        policy.ringRanDry()
        #expect(policy.tick(posted: 48) == 48)
    }

    @Test func buffersTakenDuringThePeriodStayInTheTarget() {
        var policy = BufferPostingPolicy(capacity: 1024, growthStep: 224)
        policy.ringRanDry()  // 256
        _ = policy.tick(posted: 256)
        // The kernel took buffers down to 16 posted: 240 were needed, 16 were not.
        policy.noteLowWater(100)
        policy.noteLowWater(16)
        policy.noteLowWater(40)
        #expect(policy.tick(posted: 256) == 248, "half of the 16 never taken leave the target")
        // Fully busy (the ring reached zero without running dry): the target holds.
        policy.noteLowWater(0)
        #expect(policy.tick(posted: 248) == 248)
    }

    @Test func aSpareIsReleasedOnlyAfterItsWait() {
        let policy = BufferPostingPolicy(capacity: 64, releaseAfter: 5_000)
        #expect(!policy.shouldRelease(pushedAt: 10_000, now: 10_000))
        #expect(!policy.shouldRelease(pushedAt: 10_000, now: 14_999))
        #expect(policy.shouldRelease(pushedAt: 10_000, now: 15_000))
    }
}
