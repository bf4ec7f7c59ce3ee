"""Encrypted content and sealed content keys: round trips, wrong keys, tampering, and a store
that never sees plaintext."""

import io
import os

import pytest

from mercat.errors import DecryptionError, InvalidParameterError
from mercat.identity import Keypair
from mercat.storage.encryption import (
    KEY_BYTES,
    SEALED_KEY_BYTES,
    SEGMENT,
    decrypt_pieces,
    encrypt_pieces,
    get_decrypted,
    new_key,
    open_sealed,
    put_encrypted,
    seal_key,
)
from mercat.storage.store import ContentStore


@pytest.fixture
def store(tmp_path):
    return ContentStore(tmp_path / "store", chunk_size=16 * 1024)


@pytest.mark.parametrize("size", [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT + 5])
def test_encrypted_content_round_trips(store, size):
    data = os.urandom(size)
    cid, key = store.put_encrypted(data)
    assert len(key) == KEY_BYTES
    assert store.get_decrypted(cid, key) == data
    # a stream gives the same plaintext back, and the ciphertext its own CID
    cid2, key2 = put_encrypted(store, io.BytesIO(data))
    assert get_decrypted(store, cid2, key2) == data


def test_the_same_plaintext_gets_a_fresh_key_and_cid_each_time(store):
    first, second = store.put_encrypted(b"model weights"), store.put_encrypted(b"model weights")
    assert first[0] != second[0] and first[1] != second[1]


def test_a_wrong_key_is_refused(store):
    cid, _ = store.put_encrypted(b"secret dataset")
    with pytest.raises(DecryptionError, match="wrong key, or the ciphertext was altered"):
        store.get_decrypted(cid, new_key())
    for bad in [b"short", "a" * 32, None]:
        with pytest.raises(InvalidParameterError, match="content key is 32 bytes"):
            store.get_decrypted(cid, bad)


def test_plain_content_is_not_taken_for_ciphertext(store):
    cid = store.put(b"x" * 100)
    with pytest.raises(DecryptionError, match="not mercat-encrypted"):
        store.get_decrypted(cid, new_key())


def ciphertext(data: bytes, key: bytes, segment: int = 1024) -> bytes:
    return b"".join(encrypt_pieces([data], key, segment))


def refuse(blob: bytes, key: bytes, message: str | None = None) -> None:
    with pytest.raises(DecryptionError, match=message):
        b"".join(decrypt_pieces([blob], key))


def test_altered_truncated_reordered_or_extended_ciphertext_is_refused():
    key = new_key()
    data = os.urandom(3 * 1024 + 100)  # four messages of a 1 KiB segment
    blob = ciphertext(data, key)
    assert b"".join(decrypt_pieces([blob[i : i + 7] for i in range(0, len(blob), 7)], key)) == data
    start, size = 12 + 24, 1024 + 17  # preamble and header, then messages
    for at in [0, 9, 13, start, start + 500, start + size + 3, len(blob) - 1]:
        tampered = bytearray(blob)
        tampered[at] ^= 0x01
        refuse(bytes(tampered), key)
    refuse(blob[: start + 2 * size], key, "ends before its final segment")  # a whole message cut
    refuse(blob[:-5], key)
    first, second = blob[start : start + size], blob[start + size : start + 2 * size]
    refuse(blob[:start] + second + first + blob[start + 2 * size :], key)
    refuse(blob + b"\x00", key)  # the last message no longer authenticates
    whole = ciphertext(os.urandom(2048), key)  # a full final segment, then an extra byte
    refuse(whole + b"\x00", key, "follow its final segment")
    refuse(blob[:10], key, "not mercat-encrypted")


def test_a_stored_ciphertext_altered_under_a_new_cid_is_refused(store):
    # The CID already catches a changed block; a peer that re-stores altered ciphertext under
    # its new CID is caught by the authentication instead.
    cid, key = store.put_encrypted(os.urandom(5000))
    blob = bytearray(store.get(cid))
    blob[-20] ^= 0x80
    forged = store.put(bytes(blob))
    with pytest.raises(DecryptionError):
        store.get_decrypted(forged, key)


def test_a_hostile_segment_size_is_refused_before_it_is_buffered():
    key = new_key()
    blob = bytearray(ciphertext(b"data", key))
    blob[8:12] = (1 << 31).to_bytes(4, "big")
    refuse(bytes(blob), key, "declares segments of 2147483648 bytes")


class RecordingStore(ContentStore):
    """A store that keeps a copy of every block handed to it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: list[bytes] = []

    def _write_block(self, cid, data, pending=None):
        self.seen.append(data)
        super()._write_block(cid, data, pending)


def test_the_store_never_sees_plaintext(tmp_path):
    store = RecordingStore(tmp_path / "s", chunk_size=1024)
    marker = b"PATIENT-RECORD-0042:"
    data = marker * 5000  # 100 kB of a recognisable plaintext
    cid, key = store.put_encrypted(data)
    assert store.seen and store.get_decrypted(cid, key) == data
    for block in store.seen:
        assert marker[:8] not in block
    for path in (tmp_path / "s" / "blocks").rglob("*"):
        if path.is_file():
            assert marker[:8] not in path.read_bytes()


def test_a_sealed_key_opens_only_for_its_provider():
    provider, other = Keypair.generate(), Keypair.generate()
    key = new_key()
    sealed = seal_key(key, provider.public)
    assert len(sealed) == SEALED_KEY_BYTES and key not in sealed
    assert open_sealed(sealed, provider) == key
    assert seal_key(key, provider.public) != sealed  # a fresh one-time sender key each time
    assert open_sealed(seal_key(key, bytes.fromhex(provider.public)), provider) == key
    with pytest.raises(DecryptionError, match="sealed to another key, or altered"):
        open_sealed(sealed, other)
    altered = bytearray(sealed)
    altered[40] ^= 1
    with pytest.raises(DecryptionError):
        open_sealed(bytes(altered), provider)
    with pytest.raises(InvalidParameterError, match="sealed key is 80 bytes"):
        open_sealed(sealed[:-1], provider)


def test_bad_recipients_and_keys_are_refused():
    key = new_key()
    for recipient in ["00" * 31, "zz" * 32, b"short", 42]:
        with pytest.raises(InvalidParameterError):
            seal_key(key, recipient)
    with pytest.raises(InvalidParameterError, match="not a valid Ed25519 public key"):
        seal_key(key, "00" * 32)  # the identity point has no Curve25519 counterpart
    with pytest.raises(InvalidParameterError, match="content key"):
        seal_key(b"k" * 31, Keypair.generate().public)


def test_a_provider_decrypts_what_was_sealed_to_it(store):
    """The flow a task follows: the requester stores its input encrypted and seals the key to
    the assigned provider; the provider opens the key with its identity and reads the input."""
    provider = Keypair.generate()
    cid, key = store.put_encrypted(b"training shard 7")
    sealed = seal_key(key, provider.public)
    assert store.get_decrypted(cid, open_sealed(sealed, provider)) == b"training shard 7"


def test_encrypted_content_replicates(tmp_path):
    from mercat.storage.replicated import ReplicatedStore

    replicas = [ContentStore(tmp_path / f"r{i}", chunk_size=1024) for i in range(3)]
    mirrored = ReplicatedStore(replicas, write_quorum=2)
    cid, key = put_encrypted(mirrored, b"shard" * 1000)
    assert get_decrypted(mirrored, cid, key) == b"shard" * 1000
    assert all(r.has(cid) for r in replicas)
