import ArgumentParser
import SwitchyardCore

/// The health-check flags of the command-line form's one service (the file's `health:` keys).
struct HealthOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Time between two health checks of one backend. Default: 2s.", valueName: "D"),
            transform: ArgumentValue.positiveDuration)
    var healthInterval: Duration?

    @Option(help: ArgumentHelp("Time one health check may take, from connect to the expected reply. Default: 1s.", valueName: "D"),
            transform: ArgumentValue.positiveDuration)
    var healthTimeout: Duration?

    @Option(help: "Consecutive successful checks that bring a down backend up (1 to 100). Default: 2.")
    var rise: Int?

    @Option(help: "Consecutive failed checks (or failed client connects) that take a backend down (1 to 100). Default: 3.")
    var fall: Int?

    @Option(help: ArgumentHelp("Bytes a health check writes once connected; escapes \\r \\n \\t \\0 \\\\ \\xHH are decoded.", valueName: "TEXT"))
    var healthSend: String?

    @Option(help: ArgumentHelp("Text a health check's reply must contain (same escapes); without it a connect is enough.", valueName: "TEXT"))
    var healthExpect: String?

    @Option(help: "Whether the expected text may appear anywhere in the reply (contains) or must start it (prefix). Default: contains.")
    var healthExpectMatch: HealthCheckConfig.ExpectMatch?

    @Option(help: ArgumentHelp("Check each backend by speaking its protocol instead of --health-send/--health-expect: redis (PING), redis-primary (also role:master), postgres (a startup message for user postgres), mysql (the greeting), http (GET / with a 200-399 status) or smtp (banner, EHLO, QUIT). Each type's options (auth, user, path, status...) are set in a configuration file.", valueName: "TYPE"))
    var healthType: HealthCheckType.Kind?

    @Flag(help: "Start each health check with the PROXY header the backends require (the --send-proxy version, v1 without it).")
    var checkSendProxy = false

    @Flag(help: "Do not run health checks: every backend stays up unless drained or in maintenance.")
    var noHealthCheck = false

    /// The flags given (`--config` cannot be mixed with them).
    var given: [String] {
        var given: [String] = []
        if healthInterval != nil { given.append("--health-interval") }
        if healthTimeout != nil { given.append("--health-timeout") }
        if rise != nil { given.append("--rise") }
        if fall != nil { given.append("--fall") }
        if healthSend != nil { given.append("--health-send") }
        if healthExpect != nil { given.append("--health-expect") }
        if healthExpectMatch != nil { given.append("--health-expect-match") }
        if healthType != nil { given.append("--health-type") }  // issue 22
        if checkSendProxy { given.append("--check-send-proxy") }
        if noHealthCheck { given.append("--no-health-check") }
        return given
    }

    /// The service's health check; nil with --no-health-check.
    func configuration() throws(ConfigError) -> HealthCheckConfig? {
        guard !noHealthCheck else { return nil }
        var configuration = HealthCheckConfig()
        if let healthInterval { configuration.interval = healthInterval }
        if let healthTimeout { configuration.timeout = healthTimeout }
        if let rise { configuration.rise = rise }
        if let fall { configuration.fall = fall }
        if let healthExpectMatch { configuration.expectMatch = healthExpectMatch }
        if let healthSend { configuration.send = try HealthCheckConfig.decodeEscapes(healthSend) }
        if let healthExpect { configuration.expect = try HealthCheckConfig.decodeEscapes(healthExpect) }
        configuration.type = healthType.map(HealthCheckType.init)  // issue 22
        configuration.checkSendProxy = checkSendProxy
        try configuration.validate()
        return configuration
    }
}
