// Public access to `LoadedProgramCatalogue` for other management front ends (okod's OpenFlow endpoint), so
// a program loaded over OpenFlow is the same catalogue entry REST lists, and the reverse. Loads go through
// the same serialised path as `PUT /v1/bridges/{b}/programs/{id}`.
import OkoDatapath
import OkoLoader

extension LoadedProgramCatalogue {
    /// Loads (or replaces) program `id` on `bridge` from an ELF object, as a REST PUT without options does.
    /// Returns true when the program was new. Errors are the REST API's problems (400 malformed object,
    /// 422 verifier refusal, 409 replacing a program that rules use); nothing changes when one is thrown.
    @discardableResult
    public func loadProgram(bridgeName: String, bridge: Bridge, id: UInt32, object: [UInt8]) throws(APIProblem) -> Bool {
        try load(bridgeName: bridgeName, bridge: bridge, id: id, object: object, section: nil, keepMaps: false)
    }

    /// The maps of program `id` on `bridge` in object order (index = map id), nil if it is not loaded.
    public func loadedMaps(bridge: String, program id: UInt32) -> [LoadedMap]? {
        entry(bridge: bridge, id: id)?.program.maps
    }
}
