// Fuzzes `AgentReply.parse`, which reads the line a backend's agent answers (agent checks,
// `agent-port`): `AgentReply.fuzz` parses the bytes as the agent checker does and checks the
// result.
//
// Properties (checked inside `AgentReply.fuzz`): refusals are one line, long replies are
// refused, percentages stay in 0...1000, the text is trimmed and has no control characters, a
// reply written back as words parses to itself, and the verdict's weight stays in 0...256.
import FuzzSupport
import SwitchyardCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAgentReply(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    AgentReply.fuzz(fuzzBytes(data, size))
    return 0
}

runLibFuzzer(fuzzAgentReply)
