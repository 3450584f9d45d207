import Testing
@testable import SwitchyardCore

@Suite struct ConnectionStateMachineTests {
    typealias Machine = ConnectionStateMachine

    private func relaying() -> Machine {
        var machine = Machine()
        let connectedResult = machine.connected()
        #expect(connectedResult == .startRelay)
        return machine
    }

    @Test func connectingThenConnectedStartsTheRelay() {
        var machine = Machine()
        #expect(machine.phase == .connecting)
        let connectedResult = machine.connected()
        #expect(connectedResult == .startRelay)
        #expect(machine.phase == .relaying)
        let connectedResult2 = machine.connected()
        #expect(connectedResult2 == .none)
    }

    @Test func connectFailureRetriesWhileBackendsRemain() {
        var machine = Machine()
        let connectFailedResult = machine.connectFailed(canRetry: true)
        #expect(connectFailedResult == .retryConnect)
        #expect(machine.phase == .connecting)
        let connectFailedResult2 = machine.connectFailed(canRetry: false)
        #expect(connectFailedResult2 == .close(.noBackend))
        #expect(machine.phase == .closing(.noBackend))
    }

    @Test func clientEndIsForwardedAtOnceWhenNothingIsQueued() {
        var machine = relaying()
        let endOfStreamResult = machine.endOfStream(.clientToBackend, bytesQueued: false)
        #expect(endOfStreamResult == .forwardEnd(.clientToBackend))
        let endWasForwardedResult = machine.endWasForwarded(.clientToBackend)
        #expect(endWasForwardedResult == .none)
        #expect(machine.phase == .relaying)
    }

    @Test func endWaitsForQueuedBytesToDrain() {
        var machine = relaying()
        let endOfStreamResult = machine.endOfStream(.backendToClient, bytesQueued: true)
        #expect(endOfStreamResult == .none)
        #expect(machine.sourceEnded(.backendToClient))
        let drainedResult = machine.drained(.backendToClient)
        #expect(drainedResult == .forwardEnd(.backendToClient))
    }

    @Test func drainWithoutEndDoesNothing() {
        var machine = relaying()
        let drainedResult = machine.drained(.clientToBackend)
        #expect(drainedResult == .none)
    }

    @Test func bothEndsForwardedFinishTheConnection() {
        var machine = relaying()
        _ = machine.endOfStream(.clientToBackend, bytesQueued: false)
        let endWasForwardedResult = machine.endWasForwarded(.clientToBackend)
        #expect(endWasForwardedResult == .none)
        _ = machine.endOfStream(.backendToClient, bytesQueued: true)
        let endWasForwardedResult2 = machine.endWasForwarded(.backendToClient)
        #expect(endWasForwardedResult2 == .close(.finished))
        #expect(machine.phase == .closing(.finished))
    }

    @Test func theSecondEndClosesWithoutAShutdown() {
        var machine = relaying()
        _ = machine.endOfStream(.backendToClient, bytesQueued: false)
        _ = machine.endWasForwarded(.backendToClient)
        let endOfStreamResult = machine.endOfStream(.clientToBackend, bytesQueued: false)
        #expect(endOfStreamResult == .close(.finished))
        #expect(machine.endForwarded(.clientToBackend))
    }

    @Test func theSecondEndClosesOnceItsQueueDrains() {
        var machine = relaying()
        _ = machine.endOfStream(.clientToBackend, bytesQueued: false)
        _ = machine.endWasForwarded(.clientToBackend)
        let endOfStreamResult = machine.endOfStream(.backendToClient, bytesQueued: true)
        #expect(endOfStreamResult == .none)
        let drainedResult = machine.drained(.backendToClient)
        #expect(drainedResult == .close(.finished))
        #expect(machine.phase == .closing(.finished))
    }

    @Test(arguments: [(true, Machine.CloseReason.clientError), (false, .backendError)])
    func anErrorOnEitherSideClosesBoth(clientSide: Bool, reason: Machine.CloseReason) {
        var machine = relaying()
        let failedResult = machine.failed(clientSide: clientSide)
        #expect(failedResult == .close(reason))
        #expect(reason.resetsPeers)
        let endOfStreamResult = machine.endOfStream(.clientToBackend, bytesQueued: false)
        #expect(endOfStreamResult == .none)
        let failedResult2 = machine.failed(clientSide: !clientSide)
        #expect(failedResult2 == .none, "the first reason wins")
    }

    /// An idle timeout cuts a session neither side ended: the peers see a reset, never an end
    /// that looks complete (issue 27: a paused reader's download ended in a clean EOF).
    @Test func idleTimeoutClosesWithAReset() {
        var machine = relaying()
        let closeResult = machine.close(.idleTimeout)
        #expect(closeResult == .close(.idleTimeout))
        #expect(Machine.CloseReason.idleTimeout.resetsPeers)
        #expect(!Machine.CloseReason.finished.resetsPeers)
    }

    @Test func slotIsReleasedOnlyAfterTheLastOperation() {
        var machine = relaying()
        machine.operationSubmitted()
        machine.operationSubmitted()
        let operationCompletedResult = machine.operationCompleted()
        #expect(!operationCompletedResult, "not closing yet")
        _ = machine.failed(clientSide: false)
        let releaseIfQuietResult = machine.releaseIfQuiet()
        #expect(!releaseIfQuietResult, "one operation still in flight")
        machine.operationSubmitted()
        let operationCompletedResult2 = machine.operationCompleted()
        #expect(!operationCompletedResult2)
        let operationCompletedResult3 = machine.operationCompleted()
        #expect(operationCompletedResult3, "last completion releases")
        #expect(machine.phase == .closed(.backendError))
        let releaseIfQuietResult2 = machine.releaseIfQuiet()
        #expect(!releaseIfQuietResult2, "released exactly once")
    }

    @Test func quietClosingReleasesImmediately() {
        var machine = relaying()
        _ = machine.close(.administrative)
        let releaseIfQuietResult = machine.releaseIfQuiet()
        #expect(releaseIfQuietResult)
    }

    @Test func eventsAfterCloseAreIgnored() {
        var machine = relaying()
        _ = machine.close(.administrative)
        let connectedResult = machine.connected()
        #expect(connectedResult == .none)
        let drainedResult = machine.drained(.clientToBackend)
        #expect(drainedResult == .none)
        let endWasForwardedResult = machine.endWasForwarded(.clientToBackend)
        #expect(endWasForwardedResult == .none)
        let connectFailedResult = machine.connectFailed(canRetry: true)
        #expect(connectFailedResult == .none)
    }
}
