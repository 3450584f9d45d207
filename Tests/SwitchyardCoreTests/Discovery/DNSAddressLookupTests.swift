import Testing
@testable import SwitchyardCore

private let refused = DNSResolutionFailure.serverFailure(.refused)
private let servfail = DNSResolutionFailure.serverFailure(.serverFailure)

private func answered(_ addresses: [String], ttl: UInt32? = 60, nameError: Bool = false) -> DNSFamilyAnswer {
    .answered(addresses: addresses.map { IPAddress($0)! }, minimumTTL: ttl, nameError: nameError)
}

@Suite struct DNSAddressLookupTests {
    @Test func aRefusedAAAAQueryKeepsTheARecords() {
        let lookup = DNSAddressLookup([(.a, answered(["10.0.0.1", "10.0.0.2"], ttl: 30)), (.aaaa, .failed(refused))])
        #expect(lookup == .found(addresses: [IPAddress("10.0.0.1")!, IPAddress("10.0.0.2")!], minimumTTL: 30,
                                 nameError: false, failedFamilies: [.aaaa: refused]))
    }

    @Test func aFailedAQueryKeepsTheAAAARecords() {
        let lookup = DNSAddressLookup([(.a, .failed(.timeout)), (.aaaa, answered(["2001:db8::1"], ttl: 5))])
        #expect(lookup == .found(addresses: [IPAddress("2001:db8::1")!], minimumTTL: 5, nameError: false,
                                 failedFamilies: [.a: .timeout]))
    }

    @Test func bothFamiliesFailingFailsTheLookupWithTheFirstReason() {
        #expect(DNSAddressLookup([(.a, .failed(servfail)), (.aaaa, .failed(refused))]) == .failed(servfail))
        #expect(DNSAddressLookup([(.aaaa, .failed(.timeout))]) == .failed(.timeout))
    }

    @Test func bothAnsweringGiveEveryAddressAndTheSmallestTTL() {
        let lookup = DNSAddressLookup([(.a, answered(["10.0.0.1"], ttl: 30)), (.aaaa, answered(["::1"], ttl: 10))])
        #expect(lookup == .found(addresses: [IPAddress("10.0.0.1")!, IPAddress("::1")!], minimumTTL: 10,
                                 nameError: false, failedFamilies: [:]))
    }

    @Test func anEmptyAnswerIsAnAnswerAndNXDOMAINIsKept() {
        // NODATA for AAAA is no failure: the name just has no IPv6 address.
        #expect(DNSAddressLookup([(.a, answered(["10.0.0.1"])), (.aaaa, answered([], ttl: nil))])
            == .found(addresses: [IPAddress("10.0.0.1")!], minimumTTL: 60, nameError: false, failedFamilies: [:]))
        #expect(DNSAddressLookup([(.a, answered([], ttl: nil, nameError: true)), (.aaaa, .failed(refused))])
            == .found(addresses: [], minimumTTL: nil, nameError: true, failedFamilies: [.aaaa: refused]))
        #expect(DNSAddressLookup([]) == .found(addresses: [], minimumTTL: nil, nameError: false, failedFamilies: [:]))
    }
}
