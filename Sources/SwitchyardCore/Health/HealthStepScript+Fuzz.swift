import Yams

extension HealthStepScript {
    /// An entry point for fuzzers: `text` is a YAML list of `steps:` items (decoded by the file's
    /// own step decoder), then optionally a line `===` and the backend's reply, cut into the
    /// chunks it arrives in at each `|`. The script is run against that reply, every send
    /// acknowledged, and closed at its end. Traps (so that the fuzzer reports the input) if:
    /// - a refusal is empty;
    /// - an accepted list breaks `HealthCheckConfig.validate(_:)`;
    /// - the script asks to send before it was told the previous send was written, or sends empty bytes;
    /// - it has no verdict once the backend has closed and every send it asked for was written
    ///   (at most one event a step after the close), or passes with steps left;
    /// - a verdict's text is empty or spans lines.
    public static func fuzz(_ text: String) {
        let parts = text.split(separator: "\n===\n", maxSplits: 1, omittingEmptySubsequences: false)
        let steps: [HealthStep]
        do {
            steps = try YAMLDecoder().decode([RawHealthStep].self, from: String(parts[0])).map(\.step)
        } catch {
            precondition(!"\(error)".isEmpty, "HealthStepScript.fuzz: empty refusal")
            return
        }
        guard !steps.isEmpty else { return }
        do {
            try HealthCheckConfig.validate(steps)
        } catch {
            // More steps than allowed is the one refusal the decoder leaves to validation.
            precondition(steps.count > HealthCheckConfig.maximumSteps, "HealthStepScript.fuzz: decoded steps fail validation: \(error.message)")
            return
        }
        // The reply is bounded so that a regex step stays quick on every input.
        let chunks = parts.count == 2 ? parts[1].utf8.prefix(2048).split(separator: UInt8(ascii: "|"), omittingEmptySubsequences: false).map(Array.init) : []
        var script = HealthStepScript(steps)
        var action = script.advance(.connected)
        var next = chunks[...]
        var closed = false
        var eventsAfterClose = 0
        while true {
            switch action {
            case let .send(bytes):
                precondition(!bytes.isEmpty, "HealthStepScript.fuzz: an empty send")
                action = script.advance(.sent)
            case .receive:
                if let chunk = next.popFirst() {
                    action = script.advance(.received(chunk))
                } else {
                    precondition(!closed, "HealthStepScript.fuzz: waits for bytes after the close: \(script.progress)")
                    closed = true
                    action = script.advance(.closed)
                }
            case let .pass(verdict), let .fail(verdict):
                precondition(!verdict.isEmpty && !verdict.contains("\n"), "HealthStepScript.fuzz: verdict \(verdict.debugDescription)")
                if case .pass = action { precondition(script.progress == "all steps passed", "HealthStepScript.fuzz: passed at \(script.progress)") }
                return
            }
            if closed {
                eventsAfterClose += 1
                precondition(eventsAfterClose <= steps.count + 1, "HealthStepScript.fuzz: no verdict after the close")
            }
        }
    }
}
