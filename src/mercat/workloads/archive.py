"""The files workloads read and write: small NumPy archives (`.npz`), one kind per file.

Every input and output of a workload is content in the store, named by its CID, so two
replicas that computed the same thing must write the same bytes. An archive is therefore
written deterministically (`dump`): the arrays in name order, uncompressed, with the zip's
fixed 1980 timestamp; the same arrays give the same bytes, hence the same CID.

Each archive holds a `kind` entry (a string array) saying what it is:

- `dataset`: `x` (n × d float64 features), optionally `y` (n labels in {0, 1}) and
  `client` (n client ids, int64, for federated learning);
- `model`: `model` ("logreg" or "mlp") and its weights, `w` (d + 1, the bias last) for
  logistic regression, `w1` (d × h), `b1` (h), `w2` (h), `b2` (1) for the MLP, plus what
  its workload records (training loss, privacy parameters);
- `predictions`: `p` (n probabilities), `label` (n predicted labels), optionally
  `accuracy`.

Archives arrive from the network (a requester's dataset, another provider's output), so
`load` reads them within bounds before NumPy sees a byte: a zip of at most `MAX_MEMBERS`
stored (uncompressed, unencrypted) members named `<name>.npy`, each at most `max_bytes`
long, arrays of float64, int64 or short strings only (no pickles, no objects), no more than
`MAX_DIMS` dimensions. A compressed member is refused: it could expand beyond any bound (a
zip bomb).
"""

from __future__ import annotations

import io
import math
import re
import zipfile
from collections.abc import Mapping

import numpy as np

from mercat.errors import InvalidWorkloadError

KINDS = ("dataset", "model", "predictions")
MAX_MEMBERS = 32
MAX_DIMS = 2
MAX_ARCHIVE_BYTES = 64 << 20  # 64 MiB: the default bound on one archive
_MEMBER = re.compile(r"[a-z][a-z0-9_]{0,31}\.npy")
_DTYPES = ("f8", "i8")
# The zip's central directory: a fixed 46 bytes per member, its name (at most 36 here) and
# the extra fields some writers add. 1 KiB a member is ample; zipfile parses the whole
# directory before anyone can count its members.
MAX_DIRECTORY_BYTES = MAX_MEMBERS * 1024
_END = b"PK\x05\x06"  # end of central directory record (22 bytes and a comment)
_END64_LOCATOR = b"PK\x06\x07"  # just before it in a ZIP64 archive


def dump(kind: str, arrays: Mapping[str, object]) -> bytes:
    """The archive of `arrays` (names in [a-z0-9_]) with its `kind`, deterministically."""
    if kind not in KINDS:
        raise InvalidWorkloadError(f"archive kind must be one of {', '.join(KINDS)}, got {kind!r}")
    out = io.BytesIO()
    members = {"kind": np.array(kind), **arrays}
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(members):
            array = _portable(name, members[name])
            if not _MEMBER.fullmatch(f"{name}.npy"):
                raise InvalidWorkloadError(f"array name {name!r} is not [a-z][a-z0-9_]{{0,31}}")
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            # A fixed timestamp: the bytes depend on the arrays only.
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue())
    return out.getvalue()


def _portable(name: str, value: object) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind == "f":
        array = array.astype("<f8")
    elif array.dtype.kind in "iub":
        array = array.astype("<i8")
    elif array.dtype.kind != "U":
        raise InvalidWorkloadError(f"array {name!r} has dtype {array.dtype}, not a number")
    if array.ndim > MAX_DIMS:
        raise InvalidWorkloadError(f"array {name!r} has {array.ndim} dimensions (at most 2)")
    # (not np.ascontiguousarray: it turns a 0-d array into a 1-d one)
    return array if array.flags.c_contiguous else array.copy(order="C")


def load(data: bytes, max_bytes: int = MAX_ARCHIVE_BYTES) -> tuple[str, dict[str, np.ndarray]]:
    """(kind, arrays) of an archive, checked as the module docstring says; any deviation is
    an `InvalidWorkloadError` naming it."""
    if len(data) > max_bytes:
        raise InvalidWorkloadError(f"an archive of {len(data)} bytes exceeds {max_bytes}")
    _check_directory(data)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise InvalidWorkloadError(f"not a workload archive (.npz): {exc}") from None
    if len(infos) > MAX_MEMBERS:
        raise InvalidWorkloadError(f"an archive holds at most {MAX_MEMBERS} arrays")
    arrays: dict[str, np.ndarray] = {}
    for info in infos:
        if not _MEMBER.fullmatch(info.filename):
            raise InvalidWorkloadError(f"archive member {info.filename[:40]!r} is not NAME.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            raise InvalidWorkloadError(f"archive member {info.filename} is compressed")
        if info.flag_bits & 0x1:  # zipfile would raise RuntimeError: no password
            raise InvalidWorkloadError(f"archive member {info.filename} is encrypted")
        if info.file_size > max_bytes:
            raise InvalidWorkloadError(f"archive member {info.filename} is too large")
        name = info.filename[:-4]
        if name in arrays:
            raise InvalidWorkloadError(f"archive holds {name!r} twice")
        try:
            with archive.open(info) as member:
                raw = member.read(max_bytes + 1)
            _check_header(info.filename, raw)
            array = np.lib.format.read_array(io.BytesIO(raw), allow_pickle=False)
        except (ValueError, OSError, zipfile.BadZipFile, EOFError, RuntimeError) as exc:
            raise InvalidWorkloadError(
                f"archive member {info.filename} does not read: {exc}"
            ) from None
        if array.dtype.kind == "U":
            if array.ndim != 0 or array.dtype.itemsize > 4 * 64:
                raise InvalidWorkloadError(f"archive member {name!r}: a string is one short value")
        elif array.dtype.str[1:] not in _DTYPES or array.ndim > MAX_DIMS:
            raise InvalidWorkloadError(
                f"archive member {name!r}: {array.dtype} with {array.ndim} dimensions "
                "(float64 or int64, at most 2 dimensions)"
            )
        arrays[name] = array
    kind = arrays.pop("kind", None)
    if kind is None or kind.dtype.kind != "U" or str(kind) not in KINDS:
        raise InvalidWorkloadError(f"an archive names its kind ({', '.join(KINDS)})")
    return str(kind), arrays


def _check_directory(data: bytes) -> None:
    """Refuse an archive whose central directory is longer than `MAX_MEMBERS` members need,
    reading its size where zipfile will: the end record in the last 22 bytes, or else the
    last one within a comment's reach (64 KiB). Not a zip at all: zipfile says so."""
    if data[-22:-18] == _END and data[-2:] == b"\0\0":
        at = len(data) - 22
    else:
        at = data.rfind(_END, max(0, len(data) - 22 - 0xFFFF))
        if at < 0 or len(data) - at < 22:
            return
    if at >= 20 and data[at - 20 : at - 16] == _END64_LOCATOR:
        raise InvalidWorkloadError("an archive in ZIP64 form: its directory is too large")
    size = int.from_bytes(data[at + 12 : at + 16], "little")
    if size > MAX_DIRECTORY_BYTES:
        raise InvalidWorkloadError(
            f"an archive's directory of {size} bytes is too large for {MAX_MEMBERS} arrays"
        )


def _check_header(member: str, raw: bytes) -> None:
    """Refuse a `.npy` whose header claims more data than the member holds: NumPy would
    allocate the claimed array before finding the bytes missing (8 TiB for a header of 128
    bytes: a MemoryError, or memory reserved for nothing)."""
    stream = io.BytesIO(raw)
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
    else:
        raise InvalidWorkloadError(f"archive member {member} is .npy version {version}")
    claimed = math.prod(shape) * dtype.itemsize
    held = len(raw) - stream.tell()
    if claimed > held:
        raise InvalidWorkloadError(
            f"archive member {member} claims {claimed} bytes of data and holds {held}"
        )


def text(arrays: Mapping[str, np.ndarray], name: str) -> str:
    """A string entry of an archive."""
    value = arrays.get(name)
    if value is None or value.dtype.kind != "U":
        raise InvalidWorkloadError(f"the archive has no text entry {name!r}")
    return str(value)


def floats(arrays: Mapping[str, np.ndarray], name: str, ndim: int) -> np.ndarray:
    """A finite float64 array entry with `ndim` dimensions."""
    value = arrays.get(name)
    if value is None:
        raise InvalidWorkloadError(f"the archive has no array {name!r}")
    if value.dtype.kind not in "fi" or value.ndim != ndim:
        raise InvalidWorkloadError(f"array {name!r} must be {ndim}-dimensional numbers")
    value = value.astype(np.float64)
    if not np.all(np.isfinite(value)):
        raise InvalidWorkloadError(f"array {name!r} holds NaN or infinite values")
    return value
