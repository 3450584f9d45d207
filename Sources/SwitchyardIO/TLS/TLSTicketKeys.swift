import CSwitchyard
import Glibc
import Logging
import Synchronization
import SwitchyardCore

/// The process's session ticket keys where OpenSSL's ticket callback reads them, on any worker,
/// without a lock: one per process, shared by every worker and every terminating service, kept
/// across reloads (contexts are remade, this is not) and handed over at takeover.
///
/// The control side keeps the `TicketKeyRing` (which keys, how old) under a mutex and copies
/// each new key into the slot after the current one, then publishes it by raising
/// `generation` (release). A handshake loads `generation` (acquire) and reads only the current
/// slot and the one before it, never the slot being written: with four slots, a writer would
/// have to rotate three times during one callback to reach a slot a reader uses, and
/// rotations are at least a second apart.
///
/// Thread safety: `rotateIfDue`, `adopt` and `keys` from the control side (serialised by the
/// instance); the callback from any worker.
public final class TLSTicketKeys: @unchecked Sendable {
    private static let slots = 4
    private static let keyBytes = TicketKeyRing.Key.nameLength + TicketKeyRing.Key.secretLength
    /// `slots` keys of `keyBytes` (name, AES-256 key, HMAC key), allocated once.
    private let storage: UnsafeMutablePointer<UInt8>
    /// The slot of generation g is g % slots; -1 before the first key.
    private let generation = Atomic<Int>(-1)
    /// The oldest generation that still decrypts (the ring dropped the ones before).
    private let oldestValid = Atomic<Int>(0)
    private let ring = Mutex(TicketKeyRing())

    public init() {
        storage = .allocate(capacity: Self.slots * Self.keyBytes)
        storage.initialize(repeating: 0, count: Self.slots * Self.keyBytes)
    }

    deinit { storage.deallocate() }

    /// The keys in force, newest first (for a handover).
    public var keys: [TicketKeyRing.Key] { ring.withLock { $0.keys } }

    /// Takes the keys a process handed over (newest first), dropping those `rotation` has
    /// retired; the newest becomes the one that encrypts.
    public func adopt(_ keys: [TicketKeyRing.Key], rotation: Duration, now: Int64) {
        ring.withLock { ring in
            var adopted = TicketKeyRing(keys: keys)
            adopted.dropExpired(now: now, rotation: rotation)
            for key in adopted.keys.reversed() { publish(key) }
            ring = adopted
            limitDecryption(to: ring)
        }
    }

    /// Makes a new key when the newest is `rotation` old (or there is none) and retires the
    /// ones past their time; returns whether it made one. Throws when the random bytes cannot
    /// be had (OpenSSL's generator failed): the keys in force stay.
    @discardableResult
    public func rotateIfDue(rotation: Duration, now: Int64) throws(TLSError) -> Bool {
        try ring.withLock { (ring) throws(TLSError) -> Bool in
            ring.dropExpired(now: now, rotation: rotation)
            limitDecryption(to: ring)
            guard ring.isDue(now: now, rotation: rotation) else { return false }
            var bytes = [UInt8](repeating: 0, count: Self.keyBytes)
            guard RAND_bytes(&bytes, Int32(bytes.count)) == 1 else {
                throw TLSError("no random bytes for a session ticket key: \(TLSError.takeQueue(fallback: "RAND_bytes failed"))")
            }
            let key = TicketKeyRing.Key(name: Array(bytes[..<TicketKeyRing.Key.nameLength]),
                                        secret: Array(bytes[TicketKeyRing.Key.nameLength...]), createdAt: now)!
            publish(key)
            ring.add(key)
            limitDecryption(to: ring)
            return true
        }
    }

    /// Only the generations `ring` still keeps decrypt.
    private func limitDecryption(to ring: TicketKeyRing) {
        oldestValid.store(generation.load(ordering: .relaxed) - max(0, ring.keys.count - 1), ordering: .releasing)
    }

    /// Copies `key` into the next slot and makes it the current one.
    private func publish(_ key: TicketKeyRing.Key) {
        let next = generation.load(ordering: .relaxed) + 1
        let slot = storage + (next % Self.slots) * Self.keyBytes
        key.bytes.withUnsafeBufferPointer { slot.update(from: $0.baseAddress!, count: Self.keyBytes) }
        generation.store(next, ordering: .releasing)
    }

    /// Makes `context` encrypt and decrypt its tickets with these keys.
    func install(on context: OpaquePointer) {
        _ = SSL_CTX_set_tlsext_ticket_key_evp_cb(context, ticketKeyCallback)
    }

    /// OpenSSL's ticket callback body (`SSL_CTX_set_tlsext_ticket_key_evp_cb(3)`): 1 when the
    /// keys are set up, 2 when a ticket decrypts with the previous key (OpenSSL then issues a
    /// new one), 0 for no ticket or an unknown key (a full handshake), -1 for a failure.
    fileprivate func ticketKey(name: UnsafeMutablePointer<UInt8>, iv: UnsafeMutablePointer<UInt8>,
                               cipher: OpaquePointer, mac: OpaquePointer, encrypt: Bool) -> Int32 {
        let newest = generation.load(ordering: .acquiring)
        guard newest >= 0 else { return 0 }
        func setUp(_ generation: Int, _ initialise: (UnsafeMutablePointer<UInt8>) -> Int32) -> Bool {
            let key = storage + (generation % Self.slots) * Self.keyBytes
            let secret = key + TicketKeyRing.Key.nameLength
            return initialise(secret) == 1 && swy_ticket_mac_init(mac, secret + 32, 32) == 1
        }
        if encrypt {
            guard RAND_bytes(iv, 16) == 1 else { return -1 }
            (storage + (newest % Self.slots) * Self.keyBytes).withMemoryRebound(to: UInt8.self, capacity: 16) {
                name.update(from: $0, count: TicketKeyRing.Key.nameLength)
            }
            return setUp(newest) { EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nil, $0, iv) } ? 1 : -1
        }
        let oldest = max(oldestValid.load(ordering: .acquiring), newest - 1, 0)
        for candidate in stride(from: newest, through: oldest, by: -1) {
            let key = storage + (candidate % Self.slots) * Self.keyBytes
            guard memcmp(key, name, TicketKeyRing.Key.nameLength) == 0 else { continue }
            guard setUp(candidate, { EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nil, $0, iv) }) else { return -1 }
            return candidate == newest ? 1 : 2
        }
        return 0
    }
}

/// The callback OpenSSL calls; the keys are those of the `TLSServerContext` the context's
/// ex-data points to.
private let ticketKeyCallback: @convention(c) (OpaquePointer?, UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<UInt8>?,
                                               OpaquePointer?, OpaquePointer?, Int32) -> Int32 = { ssl, name, iv, cipher, mac, encrypt in
    guard let ssl, let name, let iv, let cipher, let mac,
          let context = SSL_get_SSL_CTX(ssl), let owner = SSL_CTX_get_ex_data(context, 0) else { return -1 }
    guard let keys = Unmanaged<TLSServerContext>.fromOpaque(owner).takeUnretainedValue().ticketKeys else { return 0 }
    return keys.ticketKey(name: name, iv: iv, cipher: cipher, mac: mac, encrypt: encrypt == 1)
}
