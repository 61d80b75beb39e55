"""UTF-8 test sequences (after Markus Kuhn's UTF-8 decoder capability and
stress test, as used by Autobahn section 6) and a reference validator that
tells where a byte string stops being a possible prefix of valid UTF-8."""

import codecs


def first_impossible(data):
    """See scan()."""
    return scan(data)[0]


def scan(data):
    """Returns (bad, truncated). `bad`: the length of the shortest prefix of
    `data` that no continuation can make valid UTF-8 (the index of the
    offending byte + 1), or None when `data` is valid or a valid prefix.
    `truncated`: `data` is a valid prefix that ends inside a multi-byte
    sequence. Follows Unicode Table 3-7 (well-formed byte sequences)."""
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b < 0x80:
            i += 1
            continue
        if 0xC2 <= b <= 0xDF:
            ranges = [(0x80, 0xBF)]
        elif b == 0xE0:
            ranges = [(0xA0, 0xBF), (0x80, 0xBF)]
        elif 0xE1 <= b <= 0xEC or 0xEE <= b <= 0xEF:
            ranges = [(0x80, 0xBF)] * 2
        elif b == 0xED:
            ranges = [(0x80, 0x9F), (0x80, 0xBF)]
        elif b == 0xF0:
            ranges = [(0x90, 0xBF), (0x80, 0xBF), (0x80, 0xBF)]
        elif 0xF1 <= b <= 0xF3:
            ranges = [(0x80, 0xBF)] * 3
        elif b == 0xF4:
            ranges = [(0x80, 0x8F), (0x80, 0xBF), (0x80, 0xBF)]
        else:  # 80..C1, F5..FF: never valid as a first byte
            return i + 1, False
        for k, (lo, hi) in enumerate(ranges, 1):
            if i + k >= n:
                return None, True  # truncated: still a valid prefix
            if not lo <= data[i + k] <= hi:
                return i + k + 1, False
        i += len(ranges) + 1
    return None, False


def is_valid(data):
    try:
        bytes(data).decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _selfcheck():
    """Cross-checks first_impossible with CPython's strict decoder: the same
    verdict on whole sequences, and every prefix CPython's incremental decoder
    rejects is rejected here too (CPython waits for the third byte of ED A0..,
    which Table 3-7 already excludes)."""
    for seq in [s for _, _, s in VALID + INVALID]:
        for k in range(len(seq) + 1):
            dec = codecs.getincrementaldecoder("utf-8")()
            try:
                dec.decode(seq[:k], final=False)
            except UnicodeDecodeError:
                if first_impossible(seq[:k]) is None:
                    raise AssertionError("validator accepts the prefix %s" % seq[:k].hex())
        ours = scan(seq) == (None, False)
        if ours != is_valid(seq):
            raise AssertionError("validator disagrees with CPython on %s" % seq.hex())


def h(s):
    return bytes.fromhex(s.replace(" ", ""))


KOSME = "κόσμε".encode()

# (group, description, bytes). Groups become case numbers 6.G.N.
VALID = [
    (1, "\"κόσμε\" (Kuhn 1)", KOSME),
    (1, "\"Hello-µ@ßöäüàá-UTF-8!!\" (Autobahn 6.5.5)", "Hello-µ@ßöäüàá-UTF-8!!".encode()),
    (1, "mixed 1-4 byte characters \"a€𝄞ü\"", "a€𝄞ü".encode()),
    (1, "U+0000 (NUL) in text", b"a\x00b"),
    (2, "first 1-byte sequence U+0000", h("00")),
    (2, "first 2-byte sequence U+0080", h("c2 80")),
    (2, "first 3-byte sequence U+0800", h("e0 a0 80")),
    (2, "first 4-byte sequence U+10000", h("f0 90 80 80")),
    (2, "last 1-byte sequence U+007F", h("7f")),
    (2, "last 2-byte sequence U+07FF", h("df bf")),
    (2, "last 3-byte sequence U+FFFF", h("ef bf bf")),
    (2, "last 4-byte sequence U+10FFFF", h("f4 8f bf bf")),
    (2, "U+D7FF (before the surrogates)", h("ed 9f bf")),
    (2, "U+E000 (after the surrogates)", h("ee 80 80")),
    (2, "U+FFFD replacement character", h("ef bf bd")),
    (3, "noncharacter U+FFFE", h("ef bf be")),
    (3, "noncharacter U+FFFF", h("ef bf bf")),
    (3, "noncharacter U+FDD0", h("ef b7 90")),
    (3, "noncharacter U+FDEF", h("ef b7 af")),
    (3, "noncharacter U+1FFFE", h("f0 9f bf be")),
    (3, "noncharacter U+10FFFE", h("f4 8f bf be")),
]

INVALID = [
    # 4: overlong encodings
    (4, "overlong '/' in 2 bytes (C0 AF)", h("c0 af")),
    (4, "overlong '/' in 3 bytes (E0 80 AF)", h("e0 80 af")),
    (4, "overlong '/' in 4 bytes (F0 80 80 AF)", h("f0 80 80 af")),
    (4, "overlong '/' in 5 bytes (F8 80 80 80 AF)", h("f8 80 80 80 af")),
    (4, "overlong '/' in 6 bytes (FC 80 80 80 80 AF)", h("fc 80 80 80 80 af")),
    (4, "maximal overlong 2 bytes U+007F (C1 BF)", h("c1 bf")),
    (4, "maximal overlong 3 bytes U+07FF (E0 9F BF)", h("e0 9f bf")),
    (4, "maximal overlong 4 bytes U+FFFF (F0 8F BF BF)", h("f0 8f bf bf")),
    (4, "maximal overlong 5 bytes (F8 87 BF BF BF)", h("f8 87 bf bf bf")),
    (4, "maximal overlong 6 bytes (FC 83 BF BF BF BF)", h("fc 83 bf bf bf bf")),
    (4, "overlong NUL in 2 bytes (C0 80)", h("c0 80")),
    (4, "overlong NUL in 3 bytes (E0 80 80)", h("e0 80 80")),
    (4, "overlong NUL in 4 bytes (F0 80 80 80)", h("f0 80 80 80")),
    # 5: single UTF-16 surrogates
    (5, "single surrogate U+D800", h("ed a0 80")),
    (5, "single surrogate U+DB7F", h("ed ad bf")),
    (5, "single surrogate U+DB80", h("ed ae 80")),
    (5, "single surrogate U+DBFF", h("ed af bf")),
    (5, "single surrogate U+DC00", h("ed b0 80")),
    (5, "single surrogate U+DF80", h("ed be 80")),
    (5, "single surrogate U+DFFF", h("ed bf bf")),
    (5, "surrogate U+D800 after valid text (\"κόσμε\" + ED A0 80 + \"edited\")",
     KOSME + h("ed a0 80") + b"edited"),
    # 6: paired surrogates
    (6, "surrogate pair U+D800 U+DC00", h("ed a0 80 ed b0 80")),
    (6, "surrogate pair U+D800 U+DFFF", h("ed a0 80 ed bf bf")),
    (6, "surrogate pair U+DB7F U+DC00", h("ed ad bf ed b0 80")),
    (6, "surrogate pair U+DB7F U+DFFF", h("ed ad bf ed bf bf")),
    (6, "surrogate pair U+DB80 U+DC00", h("ed ae 80 ed b0 80")),
    (6, "surrogate pair U+DB80 U+DFFF", h("ed ae 80 ed bf bf")),
    (6, "surrogate pair U+DBFF U+DC00", h("ed af bf ed b0 80")),
    (6, "surrogate pair U+DBFF U+DFFF", h("ed af bf ed bf bf")),
    # 7: above U+10FFFF, F5..FF, 5- and 6-byte forms
    (7, "U+110000 (F4 90 80 80)", h("f4 90 80 80")),
    (7, "U+110000 after valid text (\"κόσμε\" + F4 90 80 80 + \"edited\", Autobahn 6.4.1)",
     KOSME + h("f4 90 80 80") + b"edited"),
    (7, "U+13FFFF (F4 BF BF BF)", h("f4 bf bf bf")),
    (7, "last 4-byte form U+1FFFFF (F7 BF BF BF)", h("f7 bf bf bf")),
    (7, "first 5-byte form U+200000 (F8 88 80 80 80)", h("f8 88 80 80 80")),
    (7, "last 5-byte form U+3FFFFFF (FB BF BF BF BF)", h("fb bf bf bf bf")),
    (7, "first 6-byte form U+4000000 (FC 84 80 80 80 80)", h("fc 84 80 80 80 80")),
    (7, "last 6-byte form U+7FFFFFFF (FD BF BF BF BF BF)", h("fd bf bf bf bf bf")),
    (7, "byte F5 with continuation bytes", h("f5 80 80 80")),
    (7, "bytes F5..FF alone, after \"ab\"", b"ab" + bytes(range(0xF5, 0x100))),
    (7, "byte F5 alone", h("f5")),
    (7, "byte F8 alone", h("f8")),
    (7, "byte FE alone", h("fe")),
    (7, "byte FF alone", h("ff")),
    (7, "FE FE FF FF", h("fe fe ff ff")),
    (7, "valid text then FF then valid text", b"abc" + h("ff") + b"def"),
    # 8: unexpected continuation bytes
    (8, "lone continuation byte 80", h("80")),
    (8, "lone continuation byte BF", h("bf")),
    (8, "continuation bytes 80 BF", h("80 bf")),
    (8, "continuation bytes 80 BF 80 BF 80 BF 80", h("80 bf 80 bf 80 bf 80")),
    (8, "all 64 continuation bytes 80..BF", bytes(range(0x80, 0xC0))),
    (8, "continuation byte after a complete 2-byte character (C2 80 80)", h("c2 80 80")),
    (8, "continuation byte after ASCII (\"a\" 80)", b"a" + h("80")),
    (8, "\"κόσμε\" + 80 + \"edited\" (Autobahn 6.4.2-like)", KOSME + h("80") + b"edited"),
    # 9: lonely start bytes (followed by a space)
    (9, "lonely start byte C0 + space", h("c0 20")),
    (9, "lonely start byte C2 + space", h("c2 20")),
    (9, "lonely start byte DF + space", h("df 20")),
    (9, "lonely start byte E0 + space", h("e0 20")),
    (9, "lonely start byte EF + space", h("ef 20")),
    (9, "lonely start byte F0 + space", h("f0 20")),
    (9, "lonely start byte F4 + space", h("f4 20")),
    (9, "lonely start byte F7 + space", h("f7 20")),
    (9, "lonely start byte FB + space", h("fb 20")),
    (9, "lonely start byte FD + space", h("fd 20")),
    (9, "3-byte start, then 1 continuation, then space (E1 80 20)", h("e1 80 20")),
    (9, "4-byte start, then 2 continuations, then ASCII (F1 80 80 41)", h("f1 80 80 41")),
    # 10: sequences truncated at the end of the message (valid prefix until the end)
    (10, "2-byte sequence without its last byte (C2)", h("c2")),
    (10, "3-byte sequence without its last byte (E0 A0)", h("e0 a0")),
    (10, "3-byte sequence without its last 2 bytes (E2)", h("e2")),
    (10, "3-byte U+D7FF without its last byte (ED 9F)", h("ed 9f")),
    (10, "4-byte sequence without its last byte (F0 90 80)", h("f0 90 80")),
    (10, "4-byte sequence without its last 2 bytes (F0 90)", h("f0 90")),
    (10, "4-byte U+10FFFF without its last byte (F4 8F BF)", h("f4 8f bf")),
    (10, "valid text ending with a truncated € (\"κόσμε\" + E2 82)", KOSME + h("e2 82")),
    (10, "valid text ending with a truncated 𝄞 (\"ab\" + F0 9D 84)", b"ab" + h("f0 9d 84")),
    # 11: truncated sequences that are already impossible (and concatenations)
    (11, "2-byte start C0 without continuation", h("c0")),
    (11, "2-byte start DF without continuation, then ASCII (DF 41)", h("df 41")),
    (11, "3-byte start E0 with an overlong continuation (E0 80)", h("e0 80")),
    (11, "3-byte start EF BF then ASCII (EF BF 41)", h("ef bf 41")),
    (11, "4-byte start F0 80 80 (overlong prefix)", h("f0 80 80")),
    (11, "4-byte start F7 BF BF (beyond U+10FFFF)", h("f7 bf bf")),
    (11, "concatenated incomplete sequences (Kuhn 3.4)",
     h("c0 e0 80 f0 80 80 f8 80 80 80 fc 80 80 80 80 df ef bf f7 bf bf fb bf bf bf fd bf bf bf bf")),
    (11, "incomplete 2-byte then complete 2-byte (C2 C2 80)", h("c2 c2 80")),
    (11, "incomplete 3-byte then ASCII then valid text (E2 82 41 + \"κόσμε\")", h("e2 82 41") + KOSME),
]


def split_kind(seq, k):
    """Whether the server can already tell, after the first `k` bytes, that
    the text is invalid (fail fast applies)."""
    fi = first_impossible(seq)
    return fi is not None and fi <= k
