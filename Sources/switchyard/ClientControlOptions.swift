import ArgumentParser
import SwitchyardCore

/// The per-client controls of the command-line form's service (README, "Per-client controls"):
/// each the flag of a `ServiceKey` (`ServiceSettings.clientControlKeys`), read by its parser.
/// `--source-table-size` is the instance-wide table they share.
struct ClientControlOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Only clients in these blocks may connect (IPv4 and IPv6; an IPv4-mapped client matches IPv4 blocks). Default: everyone.", valueName: "CIDR[,CIDR...]"),
            transform: ServiceKey.named("allow").parse)
    var allow: ServiceKey.Setting?

    @Option(help: ArgumentHelp("Clients in these blocks are refused, even if --allow lists them.", valueName: "CIDR[,CIDR...]"),
            transform: ServiceKey.named("deny").parse)
    var deny: ServiceKey.Setting?

    @Option(help: ArgumentHelp("Open connections one source may hold, counted across all workers; further ones are refused. Off by default.", valueName: "N"),
            transform: ServiceKey.named("max-connections-per-source").parse)
    var maxConnectionsPerSource: ServiceKey.Setting?

    @Option(help: ArgumentHelp("New connections a second one source may open on average (a token bucket); faster ones are refused. Off by default.", valueName: "N/s"),
            transform: ServiceKey.named("connection-rate-per-source").parse)
    var connectionRatePerSource: ServiceKey.Setting?

    @Option(help: ArgumentHelp("With --connection-rate-per-source: how many connections one source may open at once. Default: the rate's N.", valueName: "N"),
            transform: ServiceKey.named("connection-burst-per-source").parse)
    var connectionBurstPerSource: ServiceKey.Setting?

    @Option(help: ArgumentHelp("Count a source as the network of this prefix length (IPv4,IPv6), e.g. 24,64. Default: 32,128 (each address).", valueName: "V4,V6"),
            transform: ServiceKey.named("source-mask").parse)
    var sourceMask: ServiceKey.Setting?

    @Option(help: ArgumentHelp("Accept at most this many connections a second on each listener; past it the listener pauses and clients wait in the kernel's backlog (nobody is refused). Off by default.", valueName: "N/s"),
            transform: ServiceKey.named("max-connection-rate").parse)
    var maxConnectionRate: ServiceKey.Setting?

    @Option(help: ArgumentHelp("What a client refused by --allow, --deny or a per-source limit gets: reset (RST, as HAProxy's tcp-request connection reject) or close (FIN). Default: reset.", valueName: "reset|close"),
            transform: ServiceKey.named("reject-with").parse)
    var rejectWith: ServiceKey.Setting?

    @Option(help: ArgumentHelp("Entries of the per-source table shared by every service's per-client controls (64 bytes each, allocated at start; the least recently seen source is forgotten first). Default: 65536.", valueName: "N"))
    var sourceTableSize: Int?
}
