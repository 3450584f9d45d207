import Glibc
import Testing
@testable import SwitchyardIO
import SwitchyardCore

// Kernel facts the takeover and socket activation rely on, pinned: several rings may accept on
// one listening socket (each through its own descriptor) and each connection goes to one of
// them, though the same ring takes nearly all (printed; one SO_REUSEPORT socket per ring
// spreads them); cancelling one ring's accept leaves the socket listening for the others;
// and shutdown(2) of any one descriptor stops the socket for every holder, which is why a
// process that shares its listeners (with systemd, or across a takeover) must never use it
// to stop accepting.

private let connectionCount = 200

@Test(arguments: [false, true])
func oneListeningSocketSharedByTwoRingsGivesEachConnectionToExactlyOneAccept(blocking: Bool) throws {
    let (fd, port) = try TestDescriptors.listener(nonBlocking: !blocking)
    let copy = try WorkerDescriptors.duplicate(fd)
    let first = try AcceptingRing(listener: fd)
    let second = try AcceptingRing(listener: copy)
    defer { first.stop(); second.stop() }
    for _ in 0..<connectionCount {
        let client = try TestDescriptors.connect(port: port)
        close(client)
    }
    let total = { first.accepted.load(ordering: .relaxed) + second.accepted.load(ordering: .relaxed) }
    #expect(timeUntil(.seconds(5)) { total() >= connectionCount } != nil)
    usleep(50_000)  // a connection accepted twice would show up as more than connectionCount
    #expect(total() == connectionCount)
    print("shared listener (\(blocking ? "blocking" : "non-blocking")): ring 1 accepted \(first.accepted.load(ordering: .relaxed)), ring 2 \(second.accepted.load(ordering: .relaxed)) of \(connectionCount)")
}

@Test func cancellingOneRingsAcceptLeavesTheSharedSocketListeningForTheOther() throws {
    let (fd, port) = try TestDescriptors.listener()
    let copy = try WorkerDescriptors.duplicate(fd)
    let target = TestDescriptors.target(of: fd)!
    let leaving = try AcceptingRing(listener: fd)
    let staying = try AcceptingRing(listener: copy)
    defer { leaving.stop(); staying.stop() }
    leaving.send(.cancelAccept)
    #expect(timeUntil(.seconds(5)) { leaving.endedWith.load(ordering: .relaxed) == -ECANCELED } != nil)
    #expect(timeUntil(.seconds(5)) { TestDescriptors.openCount(of: target) == 1 } != nil)  // `leaving` closed its descriptor
    let before = leaving.accepted.load(ordering: .relaxed)
    for _ in 0..<50 {
        close(try TestDescriptors.connect(port: port))
    }
    #expect(timeUntil(.seconds(5)) { staying.accepted.load(ordering: .relaxed) == 50 } != nil)
    #expect(leaving.accepted.load(ordering: .relaxed) == before)
    #expect(TestDescriptors.option(copy, SO_ACCEPTCONN) == 1)
}

@Test func shutdownOfOneDescriptorStopsTheSharedSocketForEveryHolder() throws {
    let (fd, port) = try TestDescriptors.listener()
    let copy = try WorkerDescriptors.duplicate(fd)
    let holder = try AcceptingRing(listener: copy)
    defer { holder.stop(); close(fd) }
    _ = shutdown(fd, Int32(SHUT_RDWR))
    // The other holder's accept ends and the port refuses connects: the socket itself stopped.
    #expect(timeUntil(.seconds(5)) { holder.endedWith.load(ordering: .relaxed) != 0 } != nil)
    #expect(TestDescriptors.option(copy, SO_ACCEPTCONN) == 0)
    #expect(throws: SystemCallError(call: "connect 127.0.0.1:\(port)", errno: ECONNREFUSED)) {
        close(try TestDescriptors.connect(port: port))
    }
}

@Test func oneReusePortSocketPerRingSpreadsConnectionsOverTheRings() throws {
    let (fd, port) = try TestDescriptors.listener(reusePort: true)
    let second = try Socket.listen(on: Endpoint(address: .v4(127, 0, 0, 1), port: port))
    let first = try AcceptingRing(listener: fd)
    let other = try AcceptingRing(listener: second.fd)
    defer { first.stop(); other.stop() }
    for _ in 0..<connectionCount {
        close(try TestDescriptors.connect(port: port))
    }
    let total = { first.accepted.load(ordering: .relaxed) + other.accepted.load(ordering: .relaxed) }
    #expect(timeUntil(.seconds(5)) { total() >= connectionCount } != nil)
    // The reuseport hash of 200 client ports leaves neither socket empty (a chance of 2^-199).
    #expect(first.accepted.load(ordering: .relaxed) > 0)
    #expect(other.accepted.load(ordering: .relaxed) > 0)
    print("reuseport sockets: ring 1 accepted \(first.accepted.load(ordering: .relaxed)), ring 2 \(other.accepted.load(ordering: .relaxed)) of \(connectionCount)")
}
