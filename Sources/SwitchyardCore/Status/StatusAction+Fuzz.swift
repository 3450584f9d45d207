extension StatusAction {
    /// An entry point for fuzzers: `bytes` is a status page action as it arrives, header lines
    /// (`name: value`, one per line) then an empty line then the form body, from loopback.
    ///
    /// It traps (so that the fuzzer reports the input) only if a property the admin path relies
    /// on fails: an accepted request becomes one admin line of one of `verbs`, with no control
    /// character or space beyond the two or three words it is made of, that the admin socket's
    /// parser reads back as that same verb on that same backend; and form decoding never yields a
    /// name or value that is not the UTF-8 of its bytes.
    public static func fuzz(_ bytes: [UInt8]) {
        let split = bytes.firstRange(of: [10, 10]) ?? bytes.endIndex..<bytes.endIndex
        var headers: [String: String] = [:]
        for line in bytes[..<split.lowerBound].split(separator: 10) {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")),
                  let name = String(validating: line[..<colon], as: UTF8.self),
                  let value = String(validating: line[(colon + 1)...], as: UTF8.self) else { continue }
            headers[name.lowercased()] = value[...].trimmingCharacters(inSetOf: " ")
        }
        let body = Array(bytes[split.upperBound...])
        let request = Request(peer: IPAddress("127.0.0.1"), headers: headers, body: body)
        let outcome = command(for: request, enabled: true, from: [], csrfToken: "csrf", adminToken: .success("token"))
        if case let .success(line) = outcome {
            let words = line.split(separator: " ", omittingEmptySubsequences: false)
            precondition(words.count == 2 || words.count == 3, "StatusAction.fuzz: '\(line)' is not two or three words")
            precondition(line.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7F || $0 == " " },
                         "StatusAction.fuzz: '\(line)' carries a control or non-ASCII character")
            precondition(verbs.contains(String(words[0])), "StatusAction.fuzz: '\(line)' is not a page action")
            let parsed = try? AdminCommand(parsing: line)
            switch parsed {
            case let .drain(name)?, let .ready(name)?, let .maint(name)?, let .weight(name, _)?:
                precondition(name == (try? BackendName(parsing: String(words[1]))), "StatusAction.fuzz: '\(line)' names another backend once parsed")
            default:
                preconditionFailure("StatusAction.fuzz: '\(line)' does not parse as its own verb: \(String(describing: parsed))")
            }
        }
        if case let .success(fields) = FormEncoding.decode(body) {
            for (name, value) in fields {
                precondition(String(validating: Array(name.utf8), as: UTF8.self) == name && String(validating: Array(value.utf8), as: UTF8.self) == value,
                             "StatusAction.fuzz: form decoding gave text that is not its UTF-8")
            }
        }
    }
}
