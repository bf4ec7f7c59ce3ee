"""Content identifiers: CIDv1 with a SHA-256 multihash, as IPFS writes them (seed 002, §III.B).

A CID names bytes by their hash, so whoever holds the CID can check what a store hands back.
mercat uses the codecs IPFS uses for files (`ipfs add --cid-version 1 --raw-leaves`):
- `raw` (0x55) for a block of content, byte for byte;
- `dag-pb` (0x70) for a UnixFS node that links blocks of a larger file (`mercat.storage.unixfs`);
- `dag-json` (0x0129) only to read manifests that mercat wrote before it spoke UnixFS
  (`mercat.storage.manifest`); nothing new is written with it.
All are encoded in base32 (the `b...` form IPFS prints). Text CIDs are decoded by the
`multiformats` library; this module fixes the choices, turns its errors into ours, and writes
the two binary forms a dag-pb link needs itself (a fixed prefix and a base32 encoding: the
library's general encoder costs more than the rest of a small block's put).
"""

from __future__ import annotations

import base64
import functools
import hashlib

from multiformats import CID, multihash

from mercat.errors import InvalidCIDError

RAW = "raw"
DAG_PB = "dag-pb"
MANIFEST = "dag-json"  # legacy: read, never written
CODECS = (RAW, DAG_PB, MANIFEST)
HASH = "sha2-256"

# CIDv1 binary form: version 1, the codec as a varint, then the multihash (0x12 = sha2-256,
# 0x20 = 32 bytes). Each codec's prefix is a constant.
_PREFIX = {RAW: b"\x01\x55\x12\x20", DAG_PB: b"\x01\x70\x12\x20", MANIFEST: b"\x01\xa9\x02\x12\x20"}
_CODEC_OF_PREFIX = {prefix: codec for codec, prefix in _PREFIX.items()}
_CIDV0_PREFIX = b"\x12\x20"  # a CIDv0 is a bare sha2-256 multihash naming a dag-pb block


def cid_of(data: bytes, codec: str = RAW) -> str:
    """The CIDv1 (base32, sha2-256) of `data` under `codec`."""
    return cid_from_digest(hashlib.sha256(data).digest(), codec)


def cid_from_digest(sha256: bytes, codec: str = RAW) -> str:
    """The CIDv1 of content whose SHA-256 digest is `sha256` (streamed hashing ends here)."""
    if codec not in CODECS:
        raise InvalidCIDError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
    if len(sha256) != 32:
        raise InvalidCIDError(f"a sha2-256 digest is 32 bytes, got {len(sha256)}")
    # Multibase base32 is RFC 4648 base32, lower case, without padding, after the prefix 'b'.
    return "b" + base64.b32encode(_PREFIX[codec] + sha256).decode("ascii").lower().rstrip("=")


def cid_from_digest_reference(sha256: bytes, codec: str = RAW) -> str:
    """`cid_from_digest` through the multiformats library: the readable twin a test holds the
    fast encoding above equal to."""
    return str(CID("base32", 1, codec, multihash.wrap(sha256, HASH)))


@functools.lru_cache(maxsize=1 << 16)  # a pure function of the text; decoding costs 0.5 ms
def parse(text: str) -> tuple[str, str, bytes]:
    """(canonical base32 form, codec, sha256 digest) of a CID string in any multibase; anything
    but a CIDv1 with sha2-256 and one of our codecs is refused with the reason."""
    if not isinstance(text, str) or not text:
        raise InvalidCIDError(f"a CID must be a non-empty string, got {text!r}")
    try:
        cid = CID.decode(text)
    except Exception as exc:  # multiformats raises several unrelated classes for bad text
        raise InvalidCIDError(f"{text!r} is not a CID: {exc}") from None
    if cid.version != 1:
        raise InvalidCIDError(
            f"{text!r} is a CIDv{cid.version}; this store names blocks by CIDv1 "
            "(`ipfs cid format -v 1 -b base32` converts one)"
        )
    if cid.hashfun.name != HASH:
        raise InvalidCIDError(f"{text!r} uses {cid.hashfun.name}; this store hashes with {HASH}")
    if cid.codec.name not in CODECS:
        raise InvalidCIDError(
            f"{text!r} has codec {cid.codec.name}; this store holds {', '.join(CODECS)}"
        )
    return str(cid.set(base="base32")), cid.codec.name, bytes(cid.raw_digest)


def to_bytes(cid: str) -> bytes:
    """The binary form of a canonical base32 CID (what a dag-pb link's Hash holds)."""
    body = cid[1:].upper()
    return base64.b32decode(body + "=" * (-len(body) % 8))


def from_bytes(raw: bytes) -> str:
    """The canonical base32 CID of a binary CID found in a dag-pb link: a CIDv1 with sha2-256
    and one of our codecs, or a CIDv0 (read as the CIDv1 dag-pb block with the same hash, the
    name this store gives it). Anything else is refused with `InvalidCIDError`."""
    if len(raw) == 34 and raw.startswith(_CIDV0_PREFIX):
        return cid_from_digest(raw[2:], DAG_PB)
    codec = _CODEC_OF_PREFIX.get(raw[:-32]) if len(raw) > 32 else None
    if codec is None:
        raise InvalidCIDError(
            f"link {raw[:8].hex()}... is not a CIDv1 with sha2-256 and codec "
            f"{', '.join(CODECS)}, nor a CIDv0"
        )
    return cid_from_digest(raw[-32:], codec)
