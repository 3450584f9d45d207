/// Which build is running: shown by `switchyard --version`, `show stats`, the startup log line
/// and the `switchyard_build_info` gauge.
///
/// The executable fills it (`BuildInfo.current` in the `switchyard` target): `version` from the
/// source, `commit` from `git rev-parse --short HEAD` at build time, or `unknown` when the
/// source was not a git checkout.
public struct BuildInfo: Sendable, Equatable, CustomStringConvertible {
    /// The release version, e.g. `0.1.0`.
    public var version: String
    /// The short git commit, with `-dirty` when the tree had uncommitted changes, or `unknown`.
    public var commit: String

    public init(version: String, commit: String) {
        self.version = version
        self.commit = commit
    }

    /// `0.1.0 (commit 1a2b3c4)`: what `--version` prints after the program name.
    public var description: String { "\(version) (commit \(commit))" }
}
