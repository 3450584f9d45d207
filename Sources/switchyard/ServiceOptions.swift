import ArgumentParser
import SwitchyardCore

/// The per-service flags of the command-line form's one service. Each is a `ServiceKey`'s
/// `--NAME`, read by that key's own parser, so the flag and the file's key of the same name
/// accept the same text; the defaults and rules are the key's (`ServiceSettings`).
struct ServiceOptions: ParsableArguments {
    @Option(help: ArgumentHelp("How long a backend connect may take before the next backend is tried. Default: 5s.", valueName: "D"),
            transform: ServiceKey.named("connect-timeout").parse)
    var connectTimeout: ServiceKey.Setting?

    @Option(help: ArgumentHelp("Close a connection after this long with no bytes in either direction. Off by default.", valueName: "D"),
            transform: ServiceKey.named("idle-timeout").parse)
    var idleTimeout: ServiceKey.Setting?

    @Option(help: ArgumentHelp("Count an established backend connection as dead after this long without an answer (TCP_USER_TIMEOUT and keepalive), so a backend that vanished without FIN or RST is noticed. Kernel defaults (minutes) when not given.", valueName: "D"),
            transform: ServiceKey.named("backend-timeout").parse)
    var backendTimeout: ServiceKey.Setting?

    @Option(help: ArgumentHelp("Start every connection to a backend with a PROXY protocol header of this version (v1 text or v2 binary) carrying the client's and the listener's addresses. Off by default.", valueName: "v1|v2"),
            transform: ServiceKey.named("send-proxy").parse)
    var sendProxy: ServiceKey.Setting?

    @Flag(help: "Require a PROXY protocol header (v1 or v2) from every client, as sent by a load balancer in front; the address it carries is the client's for ip-hash, the access log and metrics. Clients without a valid header within 3s are closed.")
    var acceptProxy = false

    @Option(help: ArgumentHelp("With --accept-proxy: only these peers may send a header; anyone else is closed. Without it any peer may claim any client address.", valueName: "CIDR[,CIDR...]"),
            transform: ServiceKey.named("accept-proxy-from").parse)
    var acceptProxyFrom: ServiceKey.Setting?

    @Option(help: ArgumentHelp("Local addresses to connect to backends from, comma-separated and used in rotation (IP_BIND_ADDRESS_NO_PORT: the kernel picks the port at connect time); each one adds a full ephemeral port range towards every backend. Default: the kernel chooses.", valueName: "ADDR[,ADDR...]"),
            transform: ServiceKey.named("source").parse)
    var source: ServiceKey.Setting?

    @Option(help: ArgumentHelp("Clients that may wait when every backend is at its max-connections (0: none wait). Default: 1024.", valueName: "N"),
            transform: ServiceKey.named("queue-size").parse)
    var queueSize: ServiceKey.Setting?

    @Option(help: ArgumentHelp("How long a client may wait in the queue before it is closed. Default: 5s.", valueName: "D"),
            transform: ServiceKey.named("queue-timeout").parse)
    var queueTimeout: ServiceKey.Setting?

    @Option(help: ArgumentHelp("Ramp a backend that comes up or is added from a small share to its full weight over this long. Off by default.", valueName: "D"),
            transform: ServiceKey.named("slow-start").parse)
    var slowStart: ServiceKey.Setting?

    @Option(help: ArgumentHelp("Once less than this share of a failover tier's weight is healthy, send its clients on to the next tier in proportion (as Envoy's priority load with an overprovisioning factor). Off by default: a tier takes every client while any of it is healthy.", valueName: "P%"),
            transform: ServiceKey.named("failover-threshold").parse)
    var failoverThreshold: ServiceKey.Setting?

    @Option(help: ArgumentHelp("What a backend marked down by its health checks does to its open connections: none keeps them, shutdown-sessions closes them with a reset. Default: none.", valueName: "none|shutdown-sessions"),
            transform: ServiceKey.named("on-down").parse)
    var onDown: ServiceKey.Setting?

    @Option(help: ArgumentHelp("What a failover tier coming back does to the connections of the tiers after it (backups): none keeps them, shutdown-backup-sessions closes them with a reset so that their clients reconnect to it. Default: none.", valueName: "none|shutdown-backup-sessions"),
            transform: ServiceKey.named("on-up").parse)
    var onUp: ServiceKey.Setting?

    @Option(help: ArgumentHelp("How long a removed backend's open connections may stay before they are closed with a reset. Off by default: they stay until they end.", valueName: "D"),
            transform: ServiceKey.named("removal-grace").parse)
    var removalGrace: ServiceKey.Setting?

    @Option(help: ArgumentHelp("Speak TLS to the backends, whatever the clients speak: a mapping such as {ca: PATH, server-name: NAME, cert: PATH, key: PATH, verify: true}; ca is a PEM file or system (the default), server-name a host name or from-client-sni (default: the backend's host when it is a name), cert and key a client certificate for backends that ask. {} takes every default. Off by default.", valueName: "MAPPING"),
            transform: ServiceKey.named("backend-tls").parse)
    var backendTLS: ServiceKey.Setting?

    /// The flags given, in the order declared, as the settings they make.
    var given: [ServiceKey.Setting] {
        var given = givenSettings
        // The flag is `accept-proxy: true` of the file; "true" is what the key's parser accepts.
        if acceptProxy, let setting = try? ServiceKey.named("accept-proxy").parse("true") { given.append(setting) }
        return given
    }
}

extension ParsableArguments {
    /// The options of per-service keys given, in the order declared, as the settings they make.
    var givenSettings: [ServiceKey.Setting] {
        Mirror(reflecting: self).children.compactMap { ($0.value as? Option<ServiceKey.Setting?>)?.wrappedValue }
    }
}
