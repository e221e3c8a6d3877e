"""Tyk's ``generate_id`` document id: MurmurHash3 (x64, 128-bit, first half) of a few fields.

Tyk Pump hashes ``fmt.Sprintf("%d%s%s%s%s%s%d%s", TimeStamp.UnixNano(), Method, Path, IPAddress,
APIID, OauthID, RequestTime, Alias)`` with ``murmur3.New64()`` and uses the 8 raw digest bytes,
big-endian, *as a Go string* for ``_id`` (tyk-pump.md §4). Those bytes are rarely valid UTF-8, and
Go's ``json.Marshal`` turns every byte that does not start a valid UTF-8 sequence into U+FFFD, so
the id Elasticsearch stores is that lossy text. We reproduce both steps so a pump switched from Tyk
to us keeps producing the same ids for the same requests (and ``create`` then skips what Tyk had
already indexed). Written from the algorithm's public description; the test vectors in the unit
tests come from Go (spaolacci/murmur3 v1.1.0, which Tyk's fork mirrors).

No C extension (``mmh3``) is needed: the hash runs once per record only with ``generate_id``.
"""

from __future__ import annotations

_MASK = (1 << 64) - 1
_C1 = 0x87C37B91114253D5
_C2 = 0x4CF5AD432745937F


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _MASK


def _fmix(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _MASK
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _MASK
    k ^= k >> 33
    return k


def _mix_k1(k1: int) -> int:
    k1 = (k1 * _C1) & _MASK
    k1 = _rotl(k1, 31)
    return (k1 * _C2) & _MASK


def _mix_k2(k2: int) -> int:
    k2 = (k2 * _C2) & _MASK
    k2 = _rotl(k2, 33)
    return (k2 * _C1) & _MASK


def murmur3_64(data: bytes, seed: int = 0) -> int:
    """``h1`` of MurmurHash3_x64_128 — what Go's ``murmur3.Sum64`` / ``New64`` return."""
    h1 = h2 = seed & _MASK
    length = len(data)
    nblocks = length // 16
    for i in range(nblocks):
        base = i * 16
        k1 = int.from_bytes(data[base : base + 8], "little")
        k2 = int.from_bytes(data[base + 8 : base + 16], "little")
        h1 ^= _mix_k1(k1)
        h1 = _rotl(h1, 27)
        h1 = (h1 + h2) & _MASK
        h1 = (h1 * 5 + 0x52DCE729) & _MASK
        h2 ^= _mix_k2(k2)
        h2 = _rotl(h2, 31)
        h2 = (h2 + h1) & _MASK
        h2 = (h2 * 5 + 0x38495AB5) & _MASK
    tail = data[nblocks * 16 :]
    if len(tail) > 8:
        h2 ^= _mix_k2(int.from_bytes(tail[8:], "little"))
    if tail:
        h1 ^= _mix_k1(int.from_bytes(tail[:8], "little"))
    h1 ^= length
    h2 ^= length
    h1 = (h1 + h2) & _MASK
    h2 = (h2 + h1) & _MASK
    h1 = _fmix(h1)
    h2 = _fmix(h2)
    h1 = (h1 + h2) & _MASK
    return h1


def _utf8_len(data: bytes, i: int) -> int:
    """Length of the valid UTF-8 sequence starting at ``data[i]``, or 0 if there is none
    (Go's ``utf8.DecodeRune`` rules: no overlongs, no surrogates, nothing above U+10FFFF)."""
    b0 = data[i]
    n = len(data)
    if b0 < 0x80:
        return 1
    if 0xC2 <= b0 <= 0xDF:
        return 2 if i + 1 < n and 0x80 <= data[i + 1] <= 0xBF else 0
    if 0xE0 <= b0 <= 0xEF:
        lo, hi = (0xA0, 0xBF) if b0 == 0xE0 else (0x80, 0x9F) if b0 == 0xED else (0x80, 0xBF)
        if i + 2 < n and lo <= data[i + 1] <= hi and 0x80 <= data[i + 2] <= 0xBF:
            return 3
        return 0
    if 0xF0 <= b0 <= 0xF4:
        lo, hi = (0x90, 0xBF) if b0 == 0xF0 else (0x80, 0x8F) if b0 == 0xF4 else (0x80, 0xBF)
        if i + 3 < n and lo <= data[i + 1] <= hi and 0x80 <= data[i + 2] <= 0xBF and 0x80 <= data[i + 3] <= 0xBF:
            return 4
        return 0
    return 0


def go_string(data: bytes) -> str:
    """Bytes as Go's ``json.Marshal`` of ``string(data)`` reads back: every byte that does not
    begin a valid UTF-8 sequence becomes one U+FFFD. (Python's ``errors="replace"`` merges some
    invalid runs into a single U+FFFD, which would give different ids.)"""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    out: list[str] = []
    i = 0
    while i < len(data):
        size = _utf8_len(data, i)
        if size:
            out.append(data[i : i + size].decode("utf-8"))
            i += size
        else:
            out.append("\ufffd")
            i += 1
    return "".join(out)


def _go_int64(n: int) -> int:
    """Wrap to int64 like Go's arithmetic (``UnixNano`` of dates outside 1678..2262 overflows)."""
    return ((n + (1 << 63)) & _MASK) - (1 << 63)


def tyk_document_id(timestamp_ns: int, method: str, path: str, ip: str, api_id: str, oauth_id: str, request_time: int, alias: str) -> str:
    """The ``_id`` Tyk Pump's ``generate_id: true`` gives a record."""
    text = f"{_go_int64(timestamp_ns)}{method}{path}{ip}{api_id}{oauth_id}{_go_int64(request_time)}{alias}"
    digest = murmur3_64(text.encode("utf-8", "surrogateescape")).to_bytes(8, "big")
    return go_string(digest)
