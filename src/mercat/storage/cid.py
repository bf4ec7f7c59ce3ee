"""Content identifiers: CIDv1 with a SHA-256 multihash, as IPFS writes them (seed 002, §III.B).

A CID names bytes by their hash, so whoever holds the CID can check what a store hands back.
mercat uses two codecs:
- `raw` (0x55) for a block of content, byte for byte;
- `dag-json` (0x0129) for a manifest that links the blocks of a large file in order.
Both are encoded in base32 (the `b...` form IPFS prints). Encoding and decoding go through the
`multiformats` library; this module only fixes the choices and turns its errors into ours.
"""

from __future__ import annotations

import functools
import hashlib

from multiformats import CID, multihash

from mercat.errors import InvalidCIDError

RAW = "raw"
MANIFEST = "dag-json"
CODECS = (RAW, MANIFEST)
HASH = "sha2-256"


def cid_of(data: bytes, codec: str = RAW) -> str:
    """The CIDv1 (base32, sha2-256) of `data` under `codec`."""
    return cid_from_digest(hashlib.sha256(data).digest(), codec)


def cid_from_digest(sha256: bytes, codec: str = RAW) -> str:
    """The CIDv1 of content whose SHA-256 digest is `sha256` (streamed hashing ends here)."""
    if codec not in CODECS:
        raise InvalidCIDError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
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
        raise InvalidCIDError(f"{text!r} is a CIDv{cid.version}; this store holds CIDv1 only")
    if cid.hashfun.name != HASH:
        raise InvalidCIDError(f"{text!r} uses {cid.hashfun.name}; this store hashes with {HASH}")
    if cid.codec.name not in CODECS:
        raise InvalidCIDError(
            f"{text!r} has codec {cid.codec.name}; this store holds {', '.join(CODECS)}"
        )
    return str(cid.set(base="base32")), cid.codec.name, bytes(cid.raw_digest)
