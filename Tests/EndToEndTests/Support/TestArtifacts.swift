import Foundation

/// Files a test keeps for people to look at after the run (a browser's screenshots): in
/// `SWITCHYARD_TEST_ARTIFACTS` when set, else `.build/test-artifacts/` of the repository (git
/// ignores `.build/`). Nothing here is removed by the tests; a later run overwrites a file of the
/// same name.
enum TestArtifacts {
    /// The folder, created if missing.
    static func directory() throws -> URL {
        let environment = ProcessInfo.processInfo.environment["SWITCHYARD_TEST_ARTIFACTS"] ?? ""
        let folder = environment.isEmpty
            ? SwitchyardProcess.repositoryRoot.appendingPathComponent(".build/test-artifacts")
            : URL(fileURLWithPath: environment)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }

    /// The path for an artifact named `name` (such as `status-page-two-services.png`).
    static func path(_ name: String) throws -> String {
        try directory().appendingPathComponent(name).path
    }
}
