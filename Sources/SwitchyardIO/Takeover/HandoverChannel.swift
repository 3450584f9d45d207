import CSwitchyard
import Glibc
import SwitchyardCore

/// A `HandoverMessage` and its descriptors over a connected UNIX stream socket: the message's
/// text is the frame's payload (`DescriptorPassing`).
///
/// Threads: any; the caller owns the socket for the duration of the call.
public enum HandoverChannel {
    /// Validates `message` and sends it with `descriptors` (which stay open here), in the order
    /// the message's positions name them.
    public static func send(_ message: HandoverMessage, descriptors: [Int32], over socket: Int32, timeout: Duration) throws(HandoverError) {
        try message.validate()
        guard message.descriptorCount == descriptors.count else {
            throw HandoverError("handover: the message names \(message.descriptorCount) descriptors but \(descriptors.count) are being sent")
        }
        try DescriptorPassing.send(payload: Array(message.text.utf8), descriptors: descriptors, over: socket, timeout: timeout)
    }

    /// Receives and reads a message; the descriptors are in the order its positions name them.
    /// On any error, received descriptors included, every one is closed before it throws.
    public static func receive(over socket: Int32, timeout: Duration) throws(HandoverError) -> (message: HandoverMessage, descriptors: [Int32]) {
        let (payload, descriptors) = try DescriptorPassing.receive(over: socket, timeout: timeout)
        do throws(HandoverError) {
            guard let text = String(validating: payload, as: UTF8.self) else {
                throw HandoverError("handover: the message is not UTF-8 text")
            }
            return (try HandoverMessage(parsing: text, descriptorCount: descriptors.count), descriptors)
        } catch {
            for fd in descriptors { closeDescriptor(fd) }
            throw error
        }
    }

    /// The message describing `entries` (each one's sockets in worker order) and, when given,
    /// the admin socket's listening descriptor; returns the descriptors in message order.
    /// `configured` gives each entry's address as the running configuration wrote it.
    public static func describe(_ entries: [ListenerEntry], configured: (ListenerEntry) -> Endpoint,
                                adminSocket: (descriptor: Int32, path: String)?, overrides: RuntimeOverrides) -> (HandoverMessage, [Int32]) {
        var descriptors: [Int32] = []
        var listeners: [HandoverMessage.Listener] = []
        for entry in entries {
            let positions = Array(descriptors.count..<descriptors.count + entry.descriptors.count)
            descriptors += entry.descriptors
            listeners.append(.init(service: entry.service, configured: configured(entry), bound: entry.endpoint, descriptors: positions))
        }
        var admin: HandoverMessage.AdminSocket?
        if let adminSocket {
            admin = .init(descriptor: descriptors.count, path: adminSocket.path)
            descriptors.append(adminSocket.descriptor)
        }
        let message = HandoverMessage(processID: Int(getpid()), descriptorCount: descriptors.count, listeners: listeners,
                                      adminSocket: admin, overrides: overrides)
        return (message, descriptors)
    }
}
