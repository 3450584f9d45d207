import Testing
@testable import SwitchyardCore

private func endpoint(_ text: String) -> Endpoint { try! Endpoint(parsing: text, allowPortZero: true) }

// MARK: - Notifications

@Test func notificationsAreTheAssignmentsSystemdExpects() {
    #expect(ServiceNotification.ready().text == "READY=1\n")
    #expect(ServiceNotification.ready(status: "serving 3 listeners").text == "READY=1\nSTATUS=serving 3 listeners\n")
    #expect(ServiceNotification.reloading(monotonicMicroseconds: 123_456_789).text == "RELOADING=1\nMONOTONIC_USEC=123456789\n")
    #expect(ServiceNotification.stopping(status: "draining 2 connections").text == "STOPPING=1\nSTATUS=draining 2 connections\n")
    #expect(ServiceNotification.status("12 open").text == "STATUS=12 open\n")
    #expect(ServiceNotification.mainProcess(4242).text == "MAINPID=4242\nREADY=1\n")
    #expect(ServiceNotification.mainProcess(7, ready: false).text == "MAINPID=7\n")
}

@Test func aLineBreakInAStatusCannotStartAnotherAssignment() {
    let message = ServiceNotification.status("reload refused\nREADY=1\r\tx")
    #expect(message.text == "STATUS=reload refused READY=1  x\n")
    #expect(message.fields.count == 1)
}

@Test func notifySocketValuesAreAbstractNamesOrAbsolutePaths() throws {
    #expect(try NotifySocketAddress(parsing: "@/org/freedesktop/systemd1/notify/1") == .abstract(Array("/org/freedesktop/systemd1/notify/1".utf8)))
    #expect(try NotifySocketAddress(parsing: "@x").socketPathBytes == [0, UInt8(ascii: "x")])
    #expect(try NotifySocketAddress(parsing: "/run/systemd/notify") == .path("/run/systemd/notify"))
    #expect(try NotifySocketAddress(parsing: "/run/systemd/notify").socketPathBytes == Array("/run/systemd/notify".utf8))
    #expect(try NotifySocketAddress(parsing: "@abc").description == "@abc")
    #expect(try NotifySocketAddress(parsing: "/" + String(repeating: "a", count: 106)) == .path("/" + String(repeating: "a", count: 106)))
}

@Test func unusableNotifySocketValuesAreOneLineErrors() {
    func message(_ value: String) -> String? {
        do { _ = try NotifySocketAddress(parsing: value); return nil } catch { return error.message }
    }
    #expect(message("") == "NOTIFY_SOCKET is empty")
    #expect(message("@") == "NOTIFY_SOCKET '@' names no abstract socket")
    #expect(message("run/notify")?.contains("neither an absolute path nor an @abstract name") == true)
    #expect(message("vsock:2:1234")?.contains("vsock") == true)
    #expect(message("/" + String(repeating: "a", count: 107)) == "NOTIFY_SOCKET path is 108 bytes; at most 107 fit in sun_path")
    #expect(message("@" + String(repeating: "a", count: 108)) == "NOTIFY_SOCKET abstract name is 108 bytes; at most 107 fit in sun_path")
}

// MARK: - LISTEN_* variables

@Test func listenVariablesForThisProcessNameItsDescriptorsFromThree() throws {
    let outcome = try ListenEnvironment.parse(listenFDs: "3", listenPID: "100", listenFDNames: "web:switchyard.socket:", processID: 100)
    #expect(outcome == .passed(ListenEnvironment(count: 3, names: ["web", "switchyard.socket", nil])))
    if case let .passed(environment) = outcome {
        #expect(environment.descriptors == [3, 4, 5])
    }
    #expect(try ListenEnvironment.parse(listenFDs: "2", listenPID: "100", listenFDNames: nil, processID: 100)
        == .passed(ListenEnvironment(count: 2, names: [nil, nil])))
}

@Test func listenVariablesOfAnotherProcessOrUnsetAreIgnored() throws {
    #expect(try ListenEnvironment.parse(listenFDs: "2", listenPID: "99", listenFDNames: "a:b", processID: 100) == .otherProcess(listenPID: 99))
    #expect(try ListenEnvironment.parse(listenFDs: nil, listenPID: "100", listenFDNames: nil, processID: 100) == .none)
    #expect(try ListenEnvironment.parse(listenFDs: "2", listenPID: nil, listenFDNames: nil, processID: 100) == .none)
    #expect(try ListenEnvironment.parse(listenFDs: "0", listenPID: "100", listenFDNames: nil, processID: 100) == .none)
}

@Test func malformedListenVariablesAreOneLineErrors() {
    func message(_ fds: String, _ pid: String, _ names: String? = nil) -> String? {
        do { _ = try ListenEnvironment.parse(listenFDs: fds, listenPID: pid, listenFDNames: names, processID: 100); return nil }
        catch { return error.message }
    }
    #expect(message("2", "abc") == "LISTEN_PID 'abc' is not a process id")
    #expect(message("2", "0") == "LISTEN_PID '0' is not a process id")
    #expect(message("-1", "100") == "LISTEN_FDS '-1' is not a number of descriptors")
    #expect(message(" 2", "100") == "LISTEN_FDS ' 2' is not a number of descriptors")
    #expect(message("99999999999999999999", "100") == "LISTEN_FDS '99999999999999999999' is not a number of descriptors")
    #expect(message("5000", "100") == "LISTEN_FDS 5000 is more than the 4096 descriptors Switchyard accepts")
    #expect(message("2", "100", "web") == "LISTEN_FDNAMES has 1 name(s) for 2 descriptor(s): 'web'")
}

// MARK: - Matching activated sockets to listeners

private func activated(_ fd: Int32, _ name: String?, _ bound: String) -> ActivatedListener {
    ActivatedListener(descriptor: fd, name: name, bound: endpoint(bound))
}

private func configured(_ service: String, _ address: String) -> ActivationMatch.ConfiguredListener {
    .init(service: service, endpoint: endpoint(address))
}

@Test func socketsNamedForAServiceTakeItsAddressesAndOthersMatchByAddress() {
    let listeners = [
        configured("web", "127.0.0.1:8080"), configured("web", "[::1]:8080"),
        configured("pg", "0.0.0.0:5432"), configured("redis", "127.0.0.1:0"),
    ]
    let sockets = [
        activated(3, "web", "[::1]:8080"), activated(4, "web", "127.0.0.1:8080"),
        activated(5, "switchyard.socket", "0.0.0.0:5432"), activated(6, "redis", "127.0.0.1:40001"),
    ]
    let match = ActivationMatch(sockets: sockets, listeners: listeners)
    #expect(match.problems().isEmpty)
    #expect(match.assignments.map { "\($0.listener.service) \($0.listener.endpoint) <- \($0.sockets.map(\.descriptor))" } == [
        "web 127.0.0.1:8080 <- [4]", "web [::1]:8080 <- [3]", "pg 0.0.0.0:5432 <- [5]", "redis 127.0.0.1:0 <- [6]",
    ])
}

@Test func leftoverSocketsAndListenersWithoutOneAreNamed() {
    let listeners = [configured("web", "127.0.0.1:8080"), configured("pg", "127.0.0.1:5432"), configured("any", "127.0.0.1:0")]
    let sockets = [activated(3, nil, "127.0.0.1:8080"), activated(4, "extra", "127.0.0.1:9000"), activated(5, nil, "127.0.0.1:7000")]
    let match = ActivationMatch(sockets: sockets, listeners: listeners)
    #expect(match.assignments.map(\.sockets) == [[sockets[0]]])
    #expect(match.unused.map(\.descriptor) == [4, 5])
    #expect(match.unactivated == [configured("pg", "127.0.0.1:5432"), configured("any", "127.0.0.1:0")])
    #expect(!match.socketsAllPlaced)
    #expect(match.problems() == [
        "systemd passed fd 4 (name 'extra', 127.0.0.1:9000), but no service listens on 127.0.0.1:9000 and no service is named 'extra'; remove it from the socket unit or add it to a service's listen addresses",
        "systemd passed fd 5 (127.0.0.1:7000), but no service listens on 127.0.0.1:7000; remove it from the socket unit or add it to a service's listen addresses",
        "service pg listens on 127.0.0.1:5432, but systemd passed no socket for it; add ListenStream=127.0.0.1:5432 to the socket unit",
        "service any listens on 127.0.0.1:0, but systemd passed no socket for it; add ListenStream=127.0.0.1:0 to the socket unit",
    ])
    #expect(match.problems(allowUnactivated: true).count == 2)
}

@Test func aSocketNamedForAServiceOnAnotherAddressIsAConflict() {
    let match = ActivationMatch(sockets: [activated(3, "web", "127.0.0.1:81")], listeners: [configured("web", "127.0.0.1:80")])
    #expect(match.assignments.isEmpty)
    #expect(match.unused.isEmpty)
    #expect(match.problems(allowUnactivated: true) == [
        "systemd passed fd 3 (name 'web', 127.0.0.1:81), named for service web, which does not listen on 127.0.0.1:81 (it listens on 127.0.0.1:80)",
    ])
}

@Test func repeatedReusePortSocketsForOneAddressAllServeItsListener() {
    let sockets = [activated(3, nil, "127.0.0.1:80"), activated(4, "web", "127.0.0.1:80"), activated(5, nil, "127.0.0.1:80"),
                   activated(6, "any", "127.0.0.1:7000"), activated(7, "any", "127.0.0.1:7000"), activated(8, "any", "127.0.0.1:7001")]
    let match = ActivationMatch(sockets: sockets, listeners: [
        configured("web", "127.0.0.1:80"), configured("any", "127.0.0.1:0"), configured("any", "127.0.0.1:0"),
    ])
    #expect(match.problems().isEmpty)
    #expect(match.assignments.map { $0.sockets.map(\.descriptor) } == [[3, 4, 5], [6, 7], [8]])
    #expect(match.sharingWarnings(workers: 3) == [
        "service any: systemd passed 2 sockets for 127.0.0.1:7000 to 3 workers, which share them; one worker per socket takes nearly every connection. To spread them, repeat ListenStream=127.0.0.1:7000 3 times in the socket unit, with ReusePort=yes",
        "service any: systemd passed 1 socket for 127.0.0.1:7001 to 3 workers, which share them; one worker per socket takes nearly every connection. To spread them, repeat ListenStream=127.0.0.1:7001 3 times in the socket unit, with ReusePort=yes",
    ])
    #expect(match.sharingWarnings(workers: 2).count == 1)
    #expect(match.sharingWarnings(workers: 1).isEmpty)
}

@Test func aDualStackSocketDoesNotPassForTheIPv4WildcardAndSaysSo() {
    let match = ActivationMatch(sockets: [activated(3, nil, "[::]:80")], listeners: [configured("web", "0.0.0.0:80")])
    #expect(match.problems(allowUnactivated: true) == [
        "systemd passed fd 3 ([::]:80), but no service listens on [::]:80; remove it from the socket unit or add it to a service's listen addresses (ListenStream=80 binds [::]:80; to match 0.0.0.0:80 write ListenStream=0.0.0.0:80)",
    ])
}

@Test func listenersMustBeResolvedToBeMatched() {
    let byName = ActivationMatch(sockets: [activated(3, "web", "127.0.0.1:80")], listeners: [configured("web", "localhost:80")])
    #expect(byName.assignments.isEmpty)
    #expect(byName.problems(allowUnactivated: true).first?.contains("does not listen on 127.0.0.1:80") == true)
}
