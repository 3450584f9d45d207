/// What the binary under test offers, for tests written ahead of a flag.
enum BinaryOptions {
    /// Whether `switchyard serve --help` lists `option` (such as `--backend-timeout`).
    static func serveAccepts(_ option: String) -> Bool {
        guard let binary = try? SwitchyardProcess.binaryURL(),
              let help = try? Shell.run(binary.path, ["serve", "--help"]) else { return false }
        return help.contains(option + " ")
    }
}
