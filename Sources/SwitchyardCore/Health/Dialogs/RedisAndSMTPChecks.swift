/// The Redis checks, as step scripts over RESP (`redis` and `redis-primary` health types).
public enum RedisHealthCheck {
    /// `AUTH` (when a password is set; with `user`, the ACL form), `PING` expecting `+PONG`,
    /// and for `primary` also `INFO replication` expecting `role:master` (a replica answers
    /// `role:slave`, and is down for this check).
    ///
    /// The role is read as the prefix of the bulk reply's text (`# Replication\r\nrole:...`,
    /// as every Redis since 2.8 writes it), so that a replica fails at once on its first line
    /// instead of at the timeout, as a search for `role:master` in a reply that never closes would.
    public static func script(auth password: String?, user: String? = nil, primary: Bool) -> HealthStepScript {
        var steps: [HealthStep] = []
        if let password {
            steps.append(.send(command(user.map { ["AUTH", $0, password] } ?? ["AUTH", password])))
            steps.append(.expect(HealthExpectation(.bytes(Array("+OK\r\n".utf8)), match: .prefix)))
        }
        steps.append(.send(command(["PING"])))
        steps.append(.expect(HealthExpectation(.bytes(Array("+PONG\r\n".utf8)), match: .prefix)))
        if primary {
            steps.append(.send(command(["INFO", "replication"])))
            steps.append(.expect(HealthExpectation(.bytes(Array("$".utf8)), match: .prefix)))  // a bulk string, not -ERR
            steps.append(.expect(HealthExpectation(.bytes(Array("\r\n".utf8)), match: .contains)))  // past its length
            steps.append(.expect(HealthExpectation(.bytes(Array("# Replication\r\nrole:master\r\n".utf8)), match: .prefix)))
        }
        return HealthStepScript(steps, passText: primary ? "PONG, role:master" : "PONG")
    }

    /// A RESP array of bulk strings, as `redis-cli` sends a command.
    public static func command(_ words: [String]) -> [UInt8] {
        var text = "*\(words.count)\r\n"
        for word in words { text += "$\(word.utf8.count)\r\n\(word)\r\n" }
        return Array(text.utf8)
    }
}

/// The `smtp` check: the 220 banner, `EHLO` answered by a final `250 ` line, then `QUIT`.
public enum SMTPHealthCheck {
    public static func script(domain: String = "switchyard.invalid") -> HealthStepScript {
        HealthStepScript([
            // The banner: a 220 line (a 554 refuses at once); a multi-line banner's other
            // lines stay read and are passed over by the EHLO step's search.
            .expect(HealthExpectation(.bytes(Array("220".utf8)), match: .prefix)),
            .expect(HealthExpectation(.bytes([0x0A]), match: .contains)),
            .send(Array("EHLO \(domain)\r\n".utf8)),
            // A multi-line reply is 250-... lines ending with one 250 line.
            .expect(HealthExpectation(.regex(#"(?m)^250 [^\n]*\n"#), match: .contains)),
            .send(Array("QUIT\r\n".utf8)),
        ], passText: "220 banner, EHLO 250")
    }
}
