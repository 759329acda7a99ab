// SPDX-License-Identifier: Apache-2.0
import TwilioKit

/// libFuzzer entry point for `FormCodec`. Every input is used twice:
///
/// 1. As a form body. `FormCodec.decode` must not trap, must agree with a naive reference decoder
///    (fields, order, and when it refuses), and whatever it decodes must survive `encode` then `decode`
///    byte for byte, with `encode` writing only unreserved characters, `%XX`, `=` and `&`.
/// 2. As a list of fields (NUL-separated name, value, name, value, …, UTF-8 repaired): any fields at all
///    must survive `encode` then `decode` byte for byte.
///
/// A failed property prints what broke and stops, so libFuzzer saves the input as a crash artifact.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFormCodec(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = Array(UnsafeRawBufferPointer(start: start, count: count))
    checkDecoding(input)
    checkEncoding(input)
    return 0
}

// MARK: - Properties

private func checkDecoding(_ body: [UInt8]) {
    let decoded = FormCodec.decode(body)
    let expected = referenceDecode(body)
    require(decoded.map(bytes) == expected.map(bytes), "decode disagrees with the reference decoder", decoded, expected)
    guard let fields = decoded else { return }
    let encoded = FormCodec.encode(fields)
    require(encoded.utf8.allSatisfy(isEncodedByte), "encode wrote a byte that is not unreserved, %, = or &", encoded)
    let again = FormCodec.decode(encoded)
    require(again.map(bytes) == bytes(fields), "decode(encode(decode(body))) differs from decode(body)", fields, again)
}

private func checkEncoding(_ input: [UInt8]) {
    let chunks = input.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    let fields = stride(from: 0, to: chunks.count - 1, by: 2).map { FormField(chunks[$0], chunks[$0 + 1]) }
    let encoded = FormCodec.encode(fields)
    let again = FormCodec.decode(encoded)
    require(again.map(bytes) == bytes(fields), "decode(encode(fields)) differs from fields", fields, again)
}

private func isEncodedByte(_ b: UInt8) -> Bool {
    switch b {
    case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
        true
    default:
        Array("-._~%=&".utf8).contains(b)
    }
}

// MARK: - Reference decoder

/// The rules of `FormCodec`'s documentation, written the slow, obvious way: split on `&` (empty pieces
/// dropped), split each piece at its first `=`, turn `+` into a space, then undo `%XX`; a broken escape
/// or a name or value that is not UTF-8 refuses the whole body.
private func referenceDecode(_ body: [UInt8]) -> [(name: [UInt8], value: [UInt8])]? {
    var fields: [(name: [UInt8], value: [UInt8])] = []
    for piece in body.split(separator: UInt8(ascii: "&")) {
        let parts = piece.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
        guard let name = referenceUnescape(parts[0]) else { return nil }
        guard let value = parts.count == 2 ? referenceUnescape(parts[1]) : [] else { return nil }
        fields.append((name, value))
    }
    return fields
}

private func referenceUnescape(_ part: ArraySlice<UInt8>) -> [UInt8]? {
    var rest = part.map { $0 == UInt8(ascii: "+") ? UInt8(ascii: " ") : $0 }[...]
    var out: [UInt8] = []
    while let b = rest.popFirst() {
        guard b == UInt8(ascii: "%") else {
            out.append(b)
            continue
        }
        guard let hi = rest.popFirst().flatMap(nibble), let lo = rest.popFirst().flatMap(nibble) else { return nil }
        out.append(hi * 16 + lo)
    }
    // Valid UTF-8 exactly when decoding with repair changes nothing.
    return Array(String(decoding: out, as: UTF8.self).utf8) == out ? out : nil
}

private func nibble(_ b: UInt8) -> UInt8? {
    if let i = Array("0123456789abcdef".utf8).firstIndex(of: b) { return UInt8(i) }
    if let i = Array("0123456789ABCDEF".utf8).firstIndex(of: b) { return UInt8(i) }
    return nil
}

// MARK: - Reporting

/// Fields as raw bytes: `String`'s `==` is canonical equivalence, and a form codec must keep bytes.
private func bytes(_ fields: [FormField]) -> [[UInt8]] {
    fields.flatMap { [Array($0.name.utf8), Array($0.value.utf8)] }
}

private func bytes(_ fields: [(name: [UInt8], value: [UInt8])]) -> [[UInt8]] {
    fields.flatMap { [$0.name, $0.value] }
}

/// Stops with `message` and the values involved when `condition` is false (`precondition` drops its
/// message in release builds; `fatalError` keeps it).
private func require(_ condition: Bool, _ message: String, _ values: Any?...) {
    guard !condition else { return }
    var text = "FUZZ PROPERTY FAILED: \(message)\n"
    for value in values { text += "  \(String(reflecting: value))\n" }
    fatalError(text)
}
