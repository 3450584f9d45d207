import Glibc
import SwitchyardCore

// Session ticket keys (`tls-ticket-rotation`): one set for the process (`TLSTicketKeys`), made
// at start or taken from the process handing over, rotated by the main loop, and handed over
// in turn (`HandoverMessage.ticketKeys`).
extension Instance {
    /// At start: the handed-over keys when taking over, then a new key if one is due. Only
    /// when some service terminates TLS with tickets: otherwise there is nothing to encrypt.
    func startTicketKeys(_ configuration: Configuration, handedOver: [TicketKeyRing.Key]) {
        let rotation = configuration.global.tlsTicketRotation
        if !handedOver.isEmpty {
            ticketKeys.adopt(handedOver, rotation: rotation, now: Self.wallClockSeconds())
            logger.notice("takeover: kept \(ticketKeys.keys.count) session ticket key(s): tickets issued before resume")
        }
        rotateTicketKeysIfDue(configuration)
    }

    /// Called by the main loop: a new key once the newest is `tls-ticket-rotation` old.
    func rotateTicketKeysIfDue(_ configuration: Configuration) {
        guard configuration.services.contains(where: { $0.settings.tls?.sessionTickets == true }) else { return }
        do {
            if try ticketKeys.rotateIfDue(rotation: configuration.global.tlsTicketRotation, now: Self.wallClockSeconds()) {
                logger.info("new session ticket key; the previous one still resumes tickets for \(configuration.global.tlsTicketRotation.shortDescription)")
            }
        } catch {
            logger.error("session ticket keys not rotated: \(error.message)")
        }
    }

    static func wallClockSeconds() -> Int64 { Int64(time(nil)) }
}
