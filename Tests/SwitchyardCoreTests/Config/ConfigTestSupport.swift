import Testing
@testable import SwitchyardCore

/// Expects `text`, read as a file named `bad.yaml`, to be refused with an error at `line`:
/// `column` whose message contains `message` and whose description starts with the position.
func expectConfigFileError(_ text: String, line: Int, column: Int, message: String,
                           sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        let configuration = try ConfigFile.parse(text, file: "bad.yaml")
        Issue.record("accepted: \(configuration)", sourceLocation: sourceLocation)
    } catch {
        #expect(error.file == "bad.yaml", sourceLocation: sourceLocation)
        #expect(error.message.contains(message), "message: \(error.message)", sourceLocation: sourceLocation)
        #expect((error.line, error.column) == (line, column), "\(error)", sourceLocation: sourceLocation)
        #expect(error.description.hasPrefix("bad.yaml:\(error.line):\(error.column): "), sourceLocation: sourceLocation)
    }
}
