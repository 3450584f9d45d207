import Glibc
import SwitchyardCore

// `show sources`: the per-source table as the admin socket lists it.
extension Instance {
    /// The busiest sources of `service` (all services when nil), each named as its service's
    /// current `source-mask` counts it.
    func sourceRows(service: String?) -> [SourceRow] {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &time)  // the workers' clock
        let now = Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000
        let masks = state.withLock { state in
            state.services.mapValues { $0.registry.snapshot().settings.clientControls.sourceMask }
        }
        return context.sourceTable.busiest(service: service, now: now).map { row in
            let mask = masks[row.service] ?? .host
            return SourceRow(
                service: row.service, source: mask.describe(high: row.entry.key.high, low: row.entry.key.low),
                open: Int(row.entry.open), connectionsPerSecond: row.entry.attemptsPerSecond(now: now),
                refusals: Int(row.entry.refusals))
        }
    }
}
