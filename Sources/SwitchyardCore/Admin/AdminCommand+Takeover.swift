/// The two internal admin commands of a takeover (`switchyard serve --takeover`), sent by the
/// new process on one connection to the running one's admin socket:
///
/// 1. `takeover`: the running process answers with a handover frame instead of a text reply
///    (`DescriptorFrame` around a `HandoverMessage`: every listening socket, the admin socket's
///    listening socket and the admin changes in force), or with an `ERROR:` reply when it
///    cannot hand over. Nothing changes in the running process.
/// 2. `takeover commit`, once the new process accepts on every listener: the running process
///    stops accepting (without shutdown(2): the sockets are shared), stops serving the admin
///    path (without unlinking it: it is the new process's now), lets its open connections
///    finish, and replies `OK`. Accepted only on the connection that received the handover.
///
/// If that connection closes before the commit, the takeover is abandoned and the running
/// process carries on as if nothing had happened. While a takeover is pending, commands that
/// change what would be handed over (`changesHandedOverState`) are refused on other connections.
public enum TakeoverStep: String, Sendable, Equatable {
    case begin
    case commit

    /// The words after `takeover`: none for `begin`, `commit` for the commit.
    init(parsing arguments: [String]) throws(AdminCommandError) {
        switch arguments.map({ $0.lowercased() }) {
        case []: self = .begin
        case ["commit"]: self = .commit
        default:
            throw AdminCommandError("usage: takeover, then takeover commit (internal: sent by 'switchyard serve --takeover')")
        }
    }
}

extension AdminCommand {
    /// Whether the command changes the listeners or the admin changes a takeover hands over
    /// (the state file's commands and `reload`); such commands wait until a pending takeover
    /// is committed or abandoned, so that the new process starts from what is in force.
    public var changesHandedOverState: Bool {
        switch self {
        case .drain, .ready, .maint, .weight, .add, .remove, .reload, .instance: true
        case .help, .showBackends, .showServices, .showStats, .showSources, .showCertificates, .wait, .shutdown, .takeover: false
        }
    }
}
