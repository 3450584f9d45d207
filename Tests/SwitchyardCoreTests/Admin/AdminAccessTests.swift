@testable import SwitchyardCore
import Testing

@Test func rootsDefaultSocketIsInRunAndOtherUsersInTheirRuntimeDirectory() throws {
    #expect(try AdminSocketPath.defaultPath(runtimeDirectory: nil, userID: 0) == "/run/switchyard/admin.sock")
    #expect(try AdminSocketPath.defaultPath(runtimeDirectory: "/run/user/0", userID: 0) == "/run/switchyard/admin.sock")
    #expect(try AdminSocketPath.defaultPath(runtimeDirectory: "/run/user/1000", userID: 1000) == "/run/user/1000/switchyard.sock")
    #expect(try AdminSocketPath.defaultPath(runtimeDirectory: "/run/user/1000/", userID: 1000) == "/run/user/1000/switchyard.sock")
}

@Test func aUserWithoutARuntimeDirectoryIsToldToNameASocketAndNeverGetsOneUnderTmp() throws {
    #expect(throws: ConfigError("no default admin socket for uid 1000: XDG_RUNTIME_DIR is not set; pass --admin-socket PATH (a path in a directory only this user can write to)")) {
        try AdminSocketPath.defaultPath(runtimeDirectory: nil, userID: 1000)
    }
    #expect(throws: ConfigError("no default admin socket for uid 1000: XDG_RUNTIME_DIR is not set; pass --socket PATH (a path in a directory only this user can write to)")) {
        try AdminSocketPath.defaultPath(runtimeDirectory: "", userID: 1000, option: "--socket")
    }
    #expect(throws: ConfigError("no default admin socket: XDG_RUNTIME_DIR 'run/user/1000' is not an absolute path; pass --admin-socket PATH")) {
        try AdminSocketPath.defaultPath(runtimeDirectory: "run/user/1000", userID: 1000)
    }
    for directory in ["/tmp", "/tmp/", "/tmp/xdg-1000"] {
        #expect(throws: ConfigError.self) { try AdminSocketPath.defaultPath(runtimeDirectory: directory, userID: 1000) }
    }
    #expect(try AdminSocketPath.defaultPath(runtimeDirectory: "/tmpfs/1000", userID: 1000) == "/tmpfs/1000/switchyard.sock")
}

@Test func rootsSocketDirectoryMustBeAPrivateDirectoryOfRoot() throws {
    try AdminSocketPath.checkRootDirectory(isDirectory: true, ownerID: 0, mode: 0o040700)
    try AdminSocketPath.checkRootDirectory(isDirectory: true, ownerID: 0, mode: 0o040500)
    #expect(throws: ConfigError("/run/switchyard has mode 0755: group or others may access it; run 'chmod 700 /run/switchyard' or pass --admin-socket PATH")) {
        try AdminSocketPath.checkRootDirectory(isDirectory: true, ownerID: 0, mode: 0o040755)
    }
    #expect(throws: ConfigError("/run/switchyard is owned by uid 65534, not root; remove it or pass --admin-socket PATH")) {
        try AdminSocketPath.checkRootDirectory(isDirectory: true, ownerID: 65534, mode: 0o040700)
    }
    #expect(throws: ConfigError("/run/switchyard exists and is not a directory; remove it or pass --admin-socket PATH")) {
        try AdminSocketPath.checkRootDirectory(isDirectory: false, ownerID: 0, mode: 0o120777)
    }
}

@Test func onlyTheSameUserOrRootIsTrusted() {
    #expect(AdminAccess.trusts(peerUserID: 1000, ownUserID: 1000))
    #expect(AdminAccess.trusts(peerUserID: 0, ownUserID: 1000))
    #expect(!AdminAccess.trusts(peerUserID: 65534, ownUserID: 1000))
    #expect(!AdminAccess.trusts(peerUserID: 65534, ownUserID: 0))
    #expect(!AdminAccess.trusts(peerUserID: 1000, ownUserID: 0))
}

@Test func onlyShowAndHelpAreReadOnly() throws {
    let readOnly = ["help", "show backends", "show backends main json", "show services", "show stats json"]
    let changing = ["drain a:80", "ready a:80", "maint a:80", "weight a:80 2", "add a:80", "remove a:80",
                    "wait a:80 1s", "shutdown a:80", "reload", "takeover", "takeover commit"]
    for line in readOnly { #expect(try AdminCommand(parsing: line).isReadOnly, "\(line)") }
    for line in changing { #expect(try !AdminCommand(parsing: line).isReadOnly, "\(line)") }
}

@Test func socketModesAreOctalAndKeepTheOwnersAccess() throws {
    #expect(try AdminAccess.parseSocketMode("0660") == 0o660)
    #expect(try AdminAccess.parseSocketMode("666") == 0o666)
    #expect(try AdminAccess.parseSocketMode("0o600") == 0o600)
    for bad in ["", "0888", "1777", "rw-rw----", "0x1b6", "99999", "-0660"] {
        #expect(throws: ConfigError.self, "\(bad)") { try AdminAccess.parseSocketMode(bad) }
    }
    #expect(throws: ConfigError("mode 0060 must let the owner read and write the socket (0600 at least)")) {
        try AdminAccess.parseSocketMode("0060")
    }
}

@Test func socketGroupsAreNamesOrNumbers() throws {
    try AdminAccess.checkSocketGroup("monitoring")
    try AdminAccess.checkSocketGroup("65534")
    for bad in ["", "a b", "a:b", "a/b", "a\nb"] {
        #expect(throws: ConfigError.self, "\(bad.debugDescription)") { try AdminAccess.checkSocketGroup(bad) }
    }
}

@Test func theFileGrantsAdminSocketAccessWithTheFlagsNames() throws {
    let configuration = try ConfigFile.parse("""
        admin-socket: /run/lb/admin.sock
        admin-socket-mode: 0660
        admin-socket-group: monitoring
        admin-socket-readonly: /run/lb/monitor.sock
        services: {a: {listen: [127.0.0.1:1], backends: [127.0.0.1:2]}}
        """, file: "f")
    #expect(configuration.global.adminSocketMode == 0o660)
    #expect(configuration.global.adminSocketGroup == "monitoring")
    #expect(configuration.global.adminSocketReadOnly == "/run/lb/monitor.sock")
    expectConfigFileError("admin-socket-mode: 0406\nservices: {a: {listen: [127.0.0.1:1], backends: [127.0.0.1:2]}}\n",
                          line: 1, column: 20, message: "admin-socket-mode: mode 0406 must let the owner read and write")
    expectConfigFileError("admin-socket-mode: 0640\nadmin-socket-readonly: /x/a.sock\nadmin-socket: /x/a.sock\nservices: {a: {listen: [127.0.0.1:1], backends: [127.0.0.1:2]}}\n",
                          line: 2, column: 24, message: "admin-socket-readonly /x/a.sock is the admin socket's path")
}
