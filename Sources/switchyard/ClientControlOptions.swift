import ArgumentParser
import SwitchyardCore

/// The per-client controls of the command-line form's service (README, "Per-client controls"):
/// the same names as the file's keys, with the same parsers. `--source-table-size` is the
/// instance-wide table they share.
struct ClientControlOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Only clients in these blocks may connect (IPv4 and IPv6; an IPv4-mapped client matches IPv4 blocks). Default: everyone.", valueName: "CIDR[,CIDR...]"),
            transform: { (text: String) throws -> [CIDR] in try ClientControls.parseBlocks(text) })
    var allow: [CIDR]?

    @Option(help: ArgumentHelp("Clients in these blocks are refused, even if --allow lists them.", valueName: "CIDR[,CIDR...]"),
            transform: { (text: String) throws -> [CIDR] in try ClientControls.parseBlocks(text) })
    var deny: [CIDR]?

    @Option(help: ArgumentHelp("Open connections one source may hold, counted across all workers; further ones are refused. Off by default.", valueName: "N"),
            transform: { (text: String) throws -> Int in try ClientControls.parseCount(text, key: "--max-connections-per-source") })
    var maxConnectionsPerSource: Int?

    @Option(help: ArgumentHelp("New connections a second one source may open on average (a token bucket); faster ones are refused. Off by default.", valueName: "N/s"),
            transform: { (text: String) throws -> ConnectionRate in try ConnectionRate(parsing: text, key: "--connection-rate-per-source") })
    var connectionRatePerSource: ConnectionRate?

    @Option(help: ArgumentHelp("With --connection-rate-per-source: how many connections one source may open at once. Default: the rate's N.", valueName: "N"),
            transform: { (text: String) throws -> Int in try ClientControls.parseCount(text, key: "--connection-burst-per-source") })
    var connectionBurstPerSource: Int?

    @Option(help: ArgumentHelp("Count a source as the network of this prefix length (IPv4,IPv6), e.g. 24,64. Default: 32,128 (each address).", valueName: "V4,V6"),
            transform: { (text: String) throws -> SourceMask in try SourceMask(parsing: text) })
    var sourceMask: SourceMask?

    @Option(help: ArgumentHelp("Accept at most this many connections a second on each listener; past it the listener pauses and clients wait in the kernel's backlog (nobody is refused). Off by default.", valueName: "N/s"),
            transform: { (text: String) throws -> ConnectionRate in try ConnectionRate(parsing: text, key: "--max-connection-rate") })
    var maxConnectionRate: ConnectionRate?

    @Option(help: "What a client refused by --allow, --deny or a per-source limit gets: reset (RST, as HAProxy's tcp-request connection reject) or close (FIN). Default: reset.")
    var rejectWith: RejectWith?

    @Option(help: ArgumentHelp("Entries of the per-source table shared by every service's per-client controls (64 bytes each, allocated at start; the least recently seen source is forgotten first). Default: 65536.", valueName: "N"))
    var sourceTableSize: Int?

    /// The service options given, as flags (`--config` cannot be mixed with them).
    var given: [String] {
        var given: [String] = []
        if allow != nil { given.append("--allow") }
        if deny != nil { given.append("--deny") }
        if maxConnectionsPerSource != nil { given.append("--max-connections-per-source") }
        if connectionRatePerSource != nil { given.append("--connection-rate-per-source") }
        if connectionBurstPerSource != nil { given.append("--connection-burst-per-source") }
        if sourceMask != nil { given.append("--source-mask") }
        if maxConnectionRate != nil { given.append("--max-connection-rate") }
        if rejectWith != nil { given.append("--reject-with") }
        return given
    }

    var controls: ClientControls {
        ClientControls(allow: allow, deny: deny, maxConnectionsPerSource: maxConnectionsPerSource,
                       connectionRatePerSource: connectionRatePerSource, connectionBurstPerSource: connectionBurstPerSource,
                       sourceMask: sourceMask, maxConnectionRate: maxConnectionRate, rejectWith: rejectWith)
    }
}

extension RejectWith: ExpressibleByArgument {}
