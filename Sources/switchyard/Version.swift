import SwitchyardCore

extension BuildInfo {
    /// The release version of this source tree.
    static let version = "0.1.0"

    /// This build: the version above and the commit GitCommitPlugin recorded at build time
    /// (`buildCommit`, generated), for `--version`, `show stats`, `switchyard_build_info` and
    /// the startup log line.
    static let current = BuildInfo(version: version, commit: buildCommit)
}
