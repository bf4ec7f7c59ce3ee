"""Content stored encrypted, its key sealed to one provider (seed 002: "encryption ... to
guarantee privacy and security of sensitive datasets"; §III.B keeps models and data in
decentralized storage, where every peer sees every block).

Two keys, two jobs:
- a **content key** (32 random bytes, one per put) encrypts the content with libsodium's
  XChaCha20-Poly1305 *secretstream*: the plaintext is cut into segments of 64 KiB, each
  encrypted and authenticated, in a stream whose last segment carries the FINAL tag, so a
  segment that is altered, dropped, reordered or cut off is refused, not returned. The
  ciphertext is ordinary content: it is stored, named by its CID, replicated and served like
  any other, and no store or peer that holds it can read it.
- the content key is **sealed** (libsodium sealed box: X25519 + XSalsa20-Poly1305 under a
  one-time sender key) to a provider's public key. mercat identities are Ed25519 keys
  (`mercat.identity`); the seal uses the X25519 key libsodium derives from the Ed25519 one, so
  a provider needs no second key pair. Only the holder of the matching identity opens it.

The API is four functions (and two `BlockContent` methods that call them):

    cid, key = put_encrypted(store, data)          # store.put_encrypted(data)
    sealed = seal_key(key, provider_public_hex)    # 80 bytes, safe to publish
    key = open_sealed(sealed, provider_keypair)    # on the provider
    data = get_decrypted(store, cid, key)          # store.get_decrypted(cid, key)

Stored ciphertext layout: `MCENC001`, the segment size (4 bytes, big-endian), the
secretstream header (24 bytes), then one message per segment (segment + 17 bytes; the last
one shorter or empty). The first message authenticates the 12 bytes before the header.
A fresh key per put means the same plaintext stored twice gets two CIDs: equal ciphertexts
would tell an observer that two stored objects are equal.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, BinaryIO, Protocol

import nacl.bindings as sodium
import nacl.exceptions
import nacl.public
import nacl.signing

from mercat.errors import DecryptionError, InvalidParameterError
from mercat.storage.content import rechunk

if TYPE_CHECKING:
    from mercat.identity import Keypair


class Content(Protocol):
    """What encryption needs of a store: `BlockContent` (a local store, an IPFS daemon) or a
    `ReplicatedStore`."""

    def put_pieces(self, pieces: Iterable[bytes]) -> str: ...

    def iter_content(self, cid: str) -> Iterator[bytes]: ...


KEY_BYTES = sodium.crypto_secretstream_xchacha20poly1305_KEYBYTES  # 32
SEALED_KEY_BYTES = KEY_BYTES + sodium.crypto_box_SEALBYTES  # 32 + 48 = 80
SEGMENT = 1 << 16  # plaintext bytes per authenticated message
MIN_SEGMENT, MAX_SEGMENT = 1 << 10, 1 << 20  # what a reader accepts from a stored preamble
MAGIC = b"MCENC001"
_PREAMBLE = struct.Struct(">8sI")
_HEADER_BYTES = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES  # 24
_ABYTES = sodium.crypto_secretstream_xchacha20poly1305_ABYTES  # 17
_TAG_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
_TAG_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL


def new_key() -> bytes:
    """A fresh random content key."""
    return sodium.crypto_secretstream_xchacha20poly1305_keygen()


def _check_key(key: object) -> bytes:
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise InvalidParameterError(f"a content key is {KEY_BYTES} bytes")
    return key


def encrypt_pieces(pieces: Iterable[bytes], key: bytes, segment: int = SEGMENT) -> Iterator[bytes]:
    """The ciphertext of the concatenated `pieces` under `key`, message by message."""
    _check_key(key)
    if not MIN_SEGMENT <= segment <= MAX_SEGMENT:
        raise InvalidParameterError(f"segment size must lie in [{MIN_SEGMENT}, {MAX_SEGMENT}]")
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    preamble = _PREAMBLE.pack(MAGIC, segment)
    yield preamble + sodium.crypto_secretstream_xchacha20poly1305_init_push(state, key)
    ad: bytes | None = preamble
    segments = rechunk(pieces, segment)
    current = next(segments, b"")
    for following in segments:  # one segment of look-ahead: the last one is tagged FINAL
        yield sodium.crypto_secretstream_xchacha20poly1305_push(state, current, ad, _TAG_MESSAGE)
        current, ad = following, None
    yield sodium.crypto_secretstream_xchacha20poly1305_push(state, current, ad, _TAG_FINAL)


def decrypt_pieces(pieces: Iterable[bytes], key: bytes, what: str = "content") -> Iterator[bytes]:
    """The plaintext of ciphertext given in pieces of any size, each segment yielded only once
    it has authenticated; `DecryptionError` for a wrong key or bytes that were altered,
    truncated, reordered or extended past the final segment."""
    _check_key(key)
    stream = iter(pieces)
    buffer = bytearray()

    def take(n: int) -> bytes:  # up to n bytes, fewer only at the end of the ciphertext
        while len(buffer) < n:
            piece = next(stream, None)
            if piece is None:
                break
            buffer.extend(piece)
        out = bytes(buffer[:n])
        del buffer[:n]
        return out

    head = take(_PREAMBLE.size + _HEADER_BYTES)
    if len(head) < _PREAMBLE.size + _HEADER_BYTES or not head.startswith(MAGIC):
        raise DecryptionError(f"{what} is not mercat-encrypted content (no {MAGIC!r} header)")
    preamble, header = head[: _PREAMBLE.size], head[_PREAMBLE.size :]
    _, segment = _PREAMBLE.unpack(preamble)
    if not MIN_SEGMENT <= segment <= MAX_SEGMENT:
        raise DecryptionError(f"{what} declares segments of {segment} bytes; refusing it")
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    try:
        sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, header, key)
    except nacl.exceptions.CryptoError:
        raise DecryptionError(f"cannot decrypt {what}: malformed header") from None
    ad: bytes | None = preamble
    while True:
        message = take(segment + _ABYTES)
        if len(message) < _ABYTES:
            raise DecryptionError(f"cannot decrypt {what}: it ends before its final segment")
        try:
            plain, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(state, message, ad)
        except nacl.exceptions.CryptoError:
            raise DecryptionError(
                f"cannot decrypt {what}: wrong key, or the ciphertext was altered"
            ) from None
        ad = None
        if tag == _TAG_FINAL:
            if take(1):
                raise DecryptionError(f"cannot decrypt {what}: bytes follow its final segment")
            if plain:
                yield plain
            return
        yield plain


def put_encrypted(store: Content, data: bytes | BinaryIO) -> tuple[str, bytes]:
    """Encrypt `data` (bytes, or a stream read to its end) under a fresh content key and store
    the ciphertext; returns (its CID, the key). The store sees only ciphertext."""
    key = new_key()
    if isinstance(data, bytes | bytearray | memoryview):
        view = memoryview(data)
        pieces: Iterable[bytes] = (
            bytes(view[i : i + SEGMENT]) for i in range(0, len(view), SEGMENT)
        )
    elif hasattr(data, "read"):
        pieces = iter(lambda: data.read(SEGMENT), b"")
    else:
        raise InvalidParameterError(f"content must be bytes or a stream, got {type(data).__name__}")
    return store.put_pieces(encrypt_pieces(pieces, key)), key


def iter_decrypted(store: Content, cid: str, key: bytes) -> Iterator[bytes]:
    """The plaintext of encrypted content, segment by segment as each authenticates (a
    consumer that must not act on a prefix of altered content collects it all first, as
    `get_decrypted` does)."""
    _check_key(key)
    return decrypt_pieces(store.iter_content(cid), key, what=cid)


def get_decrypted(store: Content, cid: str, key: bytes) -> bytes:
    """The plaintext of content stored with `put_encrypted`, returned only whole and
    authenticated."""
    return b"".join(iter_decrypted(store, cid, key))


# --- sealing a content key to a provider ---------------------------------------------------


def _curve_public(recipient_public: str | bytes) -> nacl.public.PublicKey:
    if isinstance(recipient_public, str):
        from mercat.identity import check_public_key

        try:
            raw = bytes.fromhex(check_public_key(recipient_public, "recipient public key"))
        except ValueError as exc:
            raise InvalidParameterError(str(exc)) from None
    elif isinstance(recipient_public, bytes) and len(recipient_public) == 32:
        raw = recipient_public
    else:
        raise InvalidParameterError(
            "a recipient is an Ed25519 public key: 64 hex digits (a mercat identity) or 32 bytes"
        )
    try:
        return nacl.public.PublicKey(sodium.crypto_sign_ed25519_pk_to_curve25519(raw))
    except nacl.exceptions.CryptoError:
        raise InvalidParameterError(
            f"recipient {raw.hex()[:16]}... is not a valid Ed25519 public key"
        ) from None


def seal_key(key: bytes, recipient_public: str | bytes) -> bytes:
    """`key` sealed to the holder of the Ed25519 identity `recipient_public` (hex, as mercat
    identities travel, or 32 bytes): 80 bytes that only that holder can open, safe to publish
    on the ledger or send in the clear."""
    box = nacl.public.SealedBox(_curve_public(recipient_public))
    return bytes(box.encrypt(_check_key(key)))


def open_sealed(sealed: bytes, recipient: Keypair) -> bytes:
    """The content key in `sealed`, opened with the recipient's identity key pair;
    `DecryptionError` if it was sealed to someone else or altered."""
    if not isinstance(sealed, bytes) or len(sealed) != SEALED_KEY_BYTES:
        raise InvalidParameterError(f"a sealed key is {SEALED_KEY_BYTES} bytes")
    private = nacl.signing.SigningKey(recipient.seed).to_curve25519_private_key()
    try:
        key = nacl.public.SealedBox(private).decrypt(sealed)
    except nacl.exceptions.CryptoError:
        raise DecryptionError(
            f"this sealed key does not open with identity {recipient.public[:16]}...: it was "
            "sealed to another key, or altered"
        ) from None
    return _check_key(key)


# --- deterministic encryption, for outputs that replicas must agree on ---------------------
#
# Replicas of a task each encrypt the output they computed, and the oracles compare the
# replicas by CID without reading them: two replicas that computed the same bytes must store
# the same ciphertext. The secretstream above starts every stream from a random header, so
# outputs use a synthetic nonce instead (the SIV construction): the nonce is a keyed hash of
# the plaintext, and the plaintext is encrypted once with XChaCha20-Poly1305 under it. Equal
# plaintexts under one key give equal ciphertexts (that equality is all it shows, and it is
# what the oracles need); a reader recomputes the nonce from what it decrypted and refuses
# the content unless it matches. Layout: `MCDET001`, the nonce (24 bytes), the ciphertext
# (plaintext + 16 bytes); the magic is the associated data.

DETERMINISTIC_MAGIC = b"MCDET001"
_NONCE_BYTES = sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES  # 24
_AEAD_ABYTES = sodium.crypto_aead_xchacha20poly1305_ietf_ABYTES  # 16
_NONCE_PERSON = b"mercat-siv-nonce"  # 16 bytes: BLAKE2b's personalization


def _synthetic_nonce(data: bytes, key: bytes) -> bytes:
    return hashlib.blake2b(data, key=key, digest_size=_NONCE_BYTES, person=_NONCE_PERSON).digest()


def encrypt_deterministic(data: bytes, key: bytes) -> bytes:
    """`data` encrypted under `key` so that equal data under one key give equal bytes (see
    above); decrypt with `decrypt_deterministic`."""
    _check_key(key)
    nonce = _synthetic_nonce(bytes(data), key)
    sealed = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
        bytes(data), DETERMINISTIC_MAGIC, nonce, key
    )
    return DETERMINISTIC_MAGIC + nonce + sealed


def is_deterministic(blob: bytes) -> bool:
    """Whether `blob` is in `encrypt_deterministic`'s layout (it says nothing of the key)."""
    return blob[: len(DETERMINISTIC_MAGIC)] == DETERMINISTIC_MAGIC


def decrypt_deterministic(blob: bytes, key: bytes, what: str = "content") -> bytes:
    """The plaintext of `encrypt_deterministic`'s bytes; `DecryptionError` for a wrong key or
    bytes that were altered."""
    _check_key(key)
    head = len(DETERMINISTIC_MAGIC) + _NONCE_BYTES
    if len(blob) < head + _AEAD_ABYTES or not is_deterministic(blob):
        raise DecryptionError(f"{what} is not mercat's deterministic encryption")
    nonce = bytes(blob[len(DETERMINISTIC_MAGIC) : head])
    try:
        data = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
            bytes(blob[head:]), DETERMINISTIC_MAGIC, nonce, key
        )
    except nacl.exceptions.CryptoError:
        raise DecryptionError(
            f"cannot decrypt {what}: wrong key, or the ciphertext was altered"
        ) from None
    if not hmac.compare_digest(nonce, _synthetic_nonce(data, key)):
        raise DecryptionError(f"cannot decrypt {what}: its nonce is not the one its bytes give")
    return bytes(data)
