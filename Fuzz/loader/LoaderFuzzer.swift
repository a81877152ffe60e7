// libFuzzer target for OkoLoader: any byte string must either load or throw BPFLoaderError.
// Built by Fuzz/run-loader.sh with -sanitize=fuzzer,address; a crash or ASan report fails the run.
import OkoLoader

@_cdecl("LLVMFuzzerTestOneInput")
public func loaderFuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // The same bytes as JSON text for typed map updates: must parse or throw.
    if size < 4096 { _ = try? BTFValue(json: String(decoding: bytes, as: UTF8.self)) }
    guard let object = try? BPFObjectFile(bytes: bytes) else { return 0 }
    // Exercise what a loaded object offers: program lookup and typed rendering of map values.
    _ = try? object.program()
    for program in object.programs { _ = try? object.program(named: program.name) }
    if let btf = object.btf {
        for map in object.maps {
            if let typeID = map.btfValueTypeID {
                _ = btf.describe(typeID)
                let value = map.initialValue ?? [UInt8](repeating: 0, count: Int(min(map.valueSize, 1 << 16)))
                if let rendered = try? btf.render(value, as: typeID) { _ = try? btf.encode(rendered, as: typeID) }
            }
            if let typeID = map.btfKeyTypeID {
                let key = [UInt8](repeating: 0xa5, count: Int(min(map.keySize, 1 << 16)))
                if let rendered = try? btf.render(key, as: typeID) { _ = try? btf.encode(rendered, as: typeID) }
            }
        }
    }
    return 0
}
