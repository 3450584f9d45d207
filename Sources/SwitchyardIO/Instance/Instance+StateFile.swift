import CSwitchyard
import Glibc
import Logging
import Synchronization
import SwitchyardCore

// The state file (`state-file`): the admin socket's changes, written after each and replayed at
// start and after a reload.
extension Instance {
    func recordChange(service: String, _ command: AdminCommand) {
        let (overrides, path) = state.withLock { state -> (RuntimeOverrides, String?) in
            state.overrides.record(service: service, command)
            return (state.overrides, state.configuration.global.stateFile)
        }
        guard let path else { return }
        do {
            try writeFileAtomically(path, contents: overrides.fileText)
        } catch {
            logger.error("cannot write the state file: \(error)")
        }
    }

    static func loadState(_ path: String) throws(ConfigError) -> RuntimeOverrides {
        let text: String
        do {
            guard let contents = try readTextFile(path) else { return RuntimeOverrides() }
            text = contents
        } catch {
            throw ConfigError("cannot read the state file: \(error)")
        }
        do {
            return try RuntimeOverrides(parsing: text, file: path)
        } catch {
            throw ConfigError("the state file is corrupt, nothing was started: \(error)")
        }
    }

    /// Re-applies the admin socket's changes kept in the state file, logging each. At start a
    /// removed backend goes at once; after a reload it drains first.
    func applyOverrides(_ overrides: RuntimeOverrides, to services: [String: ServiceRuntime], atStart: Bool) {
        for (serviceName, command) in overrides.commands {
            guard let runtime = services[serviceName] else {
                logger.warning("state file: service \(serviceName) no longer exists; skipping \(command)")
                continue
            }
            switch RuntimeOverrides.replay(command, on: runtime.registry, resolve: resolve) {
            case .applied:
                logger.notice("state file: \(RuntimeOverrides.line(service: serviceName, command))")
            case let .changedNothing(note) where atStart || !note.isEmpty:
                logger.info("state file: \(RuntimeOverrides.line(service: serviceName, command)) changes nothing\(note)")
            case .changedNothing:
                break
            }
        }
    }
}
