"""`mercat storage ...`: the content-addressed store and eq. 1's latency model.

The store is a directory, chosen by `--store` (or MERCAT_STORE), `mercat-store/` by default.
Sizes are given as bytes or with a unit: 50MB, 1.5GB (powers of 1000) or 64KiB, 1MiB (1024);
a size that is not a whole number of bytes (0.5B, 1.1KiB) is refused.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from decimal import Decimal, localcontext
from pathlib import Path

import typer

from mercat.cli._help import MercatTyper
from mercat.cli._output import console, print_json, print_mapping, print_table
from mercat.errors import InvalidParameterError, StorageError

app = MercatTyper(help="Content-addressed storage (seed 002, §III.B).", no_args_is_help=True)

DEFAULT_STORE = "mercat-store"
StoreOption = typer.Option(
    None, "--store", help=f"Store directory (default: $MERCAT_STORE or {DEFAULT_STORE})."
)
JsonOption = typer.Option(False, "--json", help="Print JSON.")
IpfsOption = typer.Option(
    None,
    "--ipfs-api",
    help="Keep content in the IPFS daemon whose RPC API listens here (e.g. "
    "http://127.0.0.1:5001) instead of --store.",
)
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}


MAX_SIZE = 2**63 - 1  # the largest file a 64-bit file offset can address


def parse_size(text: str) -> int:
    """Bytes in '50MB', '1.5GB', '64KiB', '1048576': computed exactly (decimal, not binary
    floating point), refused unless a whole number of bytes in [0, 2**63 - 1]."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise InvalidParameterError(
            f"size {text!r} is not a number of bytes with an optional unit (B, kB, MB, GB, KiB, "
            "MiB, GiB)"
        )
    number = Decimal(match.group(1))  # exact: Decimal keeps every digit of the text
    if number > MAX_SIZE:
        raise InvalidParameterError(f"size {text!r} is above the largest file, {MAX_SIZE} bytes")
    with localcontext() as exact:
        exact.prec = len(match.group(1)) + 20  # room for every digit of the product
        nbytes = number * _UNITS[unit]
        if nbytes != nbytes.to_integral_value():
            raise InvalidParameterError(
                f"size {text!r} is {nbytes.normalize():f} bytes, not a whole number of bytes"
            )
    if nbytes > MAX_SIZE:
        raise InvalidParameterError(f"size {text!r} is above the largest file, {MAX_SIZE} bytes")
    return int(nbytes)


def _open(  # type: ignore[no-untyped-def]
    store: Path | None,
    chunk_size: str | None = None,
    create: bool = False,
    max_links: int | None = None,
    ipfs_api: str | None = None,
):
    from mercat.storage.store import DEFAULT_CHUNK_SIZE, DEFAULT_MAX_LINKS, ContentStore

    size = parse_size(chunk_size) if chunk_size else DEFAULT_CHUNK_SIZE
    links = DEFAULT_MAX_LINKS if max_links is None else max_links
    if ipfs_api is not None:
        from mercat.storage.kubo import KuboStore

        if store is not None:
            raise InvalidParameterError("give --store or --ipfs-api, not both")
        return KuboStore(ipfs_api, chunk_size=size, max_links=links)
    root = store or Path(os.environ.get("MERCAT_STORE", DEFAULT_STORE))
    return ContentStore(root, chunk_size=size, create=create, max_links=links)


def _hex_bytes(text: str, what: str, length: int) -> bytes:
    """`length` bytes given as hex on the command line; InvalidParameterError otherwise."""
    try:
        value = bytes.fromhex(text.strip())
    except ValueError:
        value = b""
    if len(value) != length:
        raise InvalidParameterError(f"{what} must be {2 * length} hex digits")
    return value


def _write_secret(path: Path, text: str) -> None:
    """Write a key file readable by its owner only, never over an existing file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InvalidParameterError(
            f"--content-key-out {str(path)!r} exists; not overwriting a key"
        ) from None
    except OSError as exc:
        raise StorageError(f"cannot write {str(path)!r}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(text + "\n")


@app.command(renamed={"--key-out": "--content-key-out"})
def put(
    files: list[Path] = typer.Argument(..., help="Files to store ('-' reads standard input)."),
    store: Path | None = StoreOption,
    chunk_size: str | None = typer.Option(
        None,
        help="Leaf size (default 256KiB, kubo's); CIDs depend on it: `ipfs add --cid-version 1 "
        "--chunker size-N` gives the same CID.",
    ),
    max_links: int | None = typer.Option(
        None, help="Links per dag-pb node (default 174, kubo's); CIDs of large files depend on it."
    ),
    encrypt: bool = typer.Option(
        False, "--encrypt", help="Store the content encrypted under a fresh key (printed)."
    ),
    seal_to: list[str] = typer.Option(
        [], "--seal-to", help="Also seal the key to this identity (64 hex digits; repeatable)."
    ),
    key_out: Path | None = typer.Option(
        None,
        "--content-key-out",
        help="With one file: write its content key here (mode 0600) instead of printing it.",
    ),
    ipfs_api: str | None = IpfsOption,
    as_json: bool = JsonOption,
) -> None:
    """Store files; prints each one's CID (and, encrypted, its content key and sealed keys)."""
    from mercat.storage.encryption import new_key, put_encrypted, seal_key

    encrypt = encrypt or bool(seal_to)
    for path in files:  # every argument checked before anything is stored
        if str(path) != "-" and not path.is_file():
            raise InvalidParameterError(f"{str(path)!r} is not a readable file")
    if key_out is not None and (not encrypt or len(files) != 1):
        raise InvalidParameterError("--content-key-out needs --encrypt (or --seal-to) and one file")
    if key_out is not None and key_out.exists():
        raise InvalidParameterError(
            f"--content-key-out {str(key_out)!r} exists; not overwriting a key"
        )
    for recipient in seal_to:
        seal_key(new_key(), recipient)  # a bad identity is refused before anything is stored
    target = _open(store, chunk_size, create=True, max_links=max_links, ipfs_api=ipfs_api)
    rows = []
    for path in files:
        if encrypt:
            stream = sys.stdin.buffer if str(path) == "-" else None
            try:
                source = stream or open(path, "rb")  # noqa: SIM115 - closed below
            except OSError as exc:
                raise StorageError(f"cannot read {str(path)!r}: {exc.strerror}") from None
            try:
                cid, key = put_encrypted(target, source)
            finally:
                if stream is None:
                    source.close()
            row = {"file": str(path), "cid": cid, "bytes": target.stat(cid).size}
            row["sealed"] = {r: seal_key(key, r).hex() for r in seal_to}
            if key_out is not None:
                _write_secret(key_out, key.hex())
            else:
                row["key"] = key.hex()
        else:
            cid = target.put_stream(sys.stdin.buffer) if str(path) == "-" else target.put_file(path)
            row = {"file": str(path), "cid": cid, "bytes": target.stat(cid).size}
        rows.append(row)
    if as_json:
        print_json(rows)
        return
    for row in rows:
        console.print(f"{row['cid']}  {row['file']}", highlight=False, soft_wrap=True)
        if "key" in row:
            console.print(f"  key {row['key']}", highlight=False, soft_wrap=True)
        for recipient, sealed in row.get("sealed", {}).items():
            console.print(f"  sealed to {recipient}: {sealed}", highlight=False, soft_wrap=True)


def _content_key(
    key: str | None, key_file: Path | None, sealed: str | None, identity: Path | None
) -> bytes | None:
    """The content key from exactly one of --content-key, --content-key-file, --sealed with
    --identity."""
    from mercat.identity import Keypair
    from mercat.storage.encryption import KEY_BYTES, SEALED_KEY_BYTES, open_sealed

    given = [x is not None for x in (key, key_file, sealed)]
    if sum(given) > 1:
        raise InvalidParameterError("give one of --content-key, --content-key-file, --sealed")
    if (sealed is None) != (identity is None):
        raise InvalidParameterError("--sealed and --identity go together")
    if key is not None:
        return _hex_bytes(key, "--content-key", KEY_BYTES)
    if key_file is not None:
        try:
            text = key_file.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidParameterError(
                f"cannot read --content-key-file {str(key_file)!r}: {exc}"
            ) from None
        return _hex_bytes(text, f"--content-key-file {str(key_file)!r}", KEY_BYTES)
    if sealed is not None and identity is not None:
        return open_sealed(
            _hex_bytes(sealed, "--sealed", SEALED_KEY_BYTES), Keypair.from_file(identity)
        )
    return None


@app.command(renamed={"--key": "--content-key", "--key-file": "--content-key-file"})
def get(
    cid: str = typer.Argument(..., help="The content's CID."),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="File to write: written beside it and renamed into place once every block checked "
        "out (a symlink is followed; a FIFO or character device is streamed into); its "
        "directory must exist. '-': standard output, streamed as blocks check out (a bad "
        "block stops it with exit 2).",
    ),
    store: Path | None = StoreOption,
    key: str | None = typer.Option(
        None, "--content-key", help="Decrypt with this content key (64 hex digits)."
    ),
    key_file: Path | None = typer.Option(
        None, "--content-key-file", help="Decrypt with the content key in this file."
    ),
    sealed: str | None = typer.Option(
        None, help="Decrypt with this sealed key (160 hex digits), opened with --identity."
    ),
    identity: Path | None = typer.Option(
        None, help="Identity key file (64 hex digits, the Ed25519 seed) that opens --sealed."
    ),
    ipfs_api: str | None = IpfsOption,
) -> None:
    """Write the content named by CID, every block checked against its hash first (and, with
    a key, every segment authenticated before it is written)."""
    from mercat.storage.content import write_file
    from mercat.storage.encryption import iter_decrypted

    content_key = _content_key(key, key_file, sealed, identity)
    source = _open(store, ipfs_api=ipfs_api)
    source.stat(cid)  # present and well formed before anything is written
    pieces = (
        source.iter_content(cid)
        if content_key is None
        else iter_decrypted(source, cid, content_key)
    )
    if str(out) == "-":
        for data in pieces:
            sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        write_file(pieces, out)


@app.command()
def stat(
    cid: str = typer.Argument(..., help="The content's CID."),
    store: Path | None = StoreOption,
    ipfs_api: str | None = IpfsOption,
    as_json: bool = JsonOption,
) -> None:
    """Size, codec and block count of stored content."""
    info = _open(store, ipfs_api=ipfs_api).stat(cid)
    data = {"cid": info.cid, "codec": info.codec, "bytes": info.size, "blocks": info.blocks}
    if as_json:
        print_json(data)
    else:
        print_mapping(info.cid, data)


@app.command()
def verify(store: Path | None = StoreOption, as_json: bool = JsonOption) -> None:
    """Re-hash every block; exit 2 and list the ones that do not match their CID (entries under
    blocks/ that are not blocks are listed as ignored and do not fail the check)."""
    target = _open(store)
    blocks = sum(1 for _ in target.blocks())
    bad = target.verify()
    ignored = [str(path) for path in target.strays()]
    if as_json:
        print_json({"blocks": blocks, "corrupted": bad, "ignored": ignored})
    else:
        console.print(f"{blocks} blocks, {len(bad)} corrupted", highlight=False)
        for cid in bad:
            console.print(f"corrupted: {cid}", highlight=False, soft_wrap=True)
        for path in ignored:
            console.print(f"ignored (not a block): {path}", highlight=False, soft_wrap=True)
    if bad:
        raise typer.Exit(code=2)


@app.command(renamed={"--dir": "--workdir"})
def measure(
    directory: Path | None = typer.Option(
        None,
        "--workdir",
        help="Existing directory whose file system is measured (default: the system's temporary "
        "directory). A fresh sub-directory is made there and removed afterwards.",
    ),
    sizes: str = typer.Option(
        "10MB,50MB,100MB", help="Comma-separated object sizes: >= 2 distinct, each 1 B to 2 GB."
    ),
    repeats: int = typer.Option(3, min=1, help="Objects per size."),
    name: str = typer.Option("local", help="Name of the profile (no ':')."),
    as_json: bool = JsonOption,
) -> None:
    """Time writes and reads of fresh random objects; fit eq. 1: T_r = S/B_r, T_w = S/B_w + T_c.
    Nothing is left behind: the objects go to a temporary store that is deleted afterwards."""
    from mercat.progress import progress_bar
    from mercat.storage.latency import check_measure, fit_profile, measure_profile
    from mercat.storage.store import ContentStore

    # Everything is checked before anything is written.
    sizes_bytes = check_measure([parse_size(s) for s in sizes.split(",")], repeats)
    if not name or ":" in name:
        raise InvalidParameterError(
            f"profile name {name!r} must be non-empty and without ':' (`storage place` splits "
            "profiles on ':')"
        )
    where = Path(tempfile.gettempdir()) if directory is None else directory
    if not where.is_dir():
        raise InvalidParameterError(f"--workdir {str(where)!r} is not an existing directory")
    try:
        scratch = Path(tempfile.mkdtemp(prefix="mercat-measure-", dir=where))
    except OSError as exc:
        raise StorageError(f"cannot measure in {str(where)!r}: {exc.strerror}") from None
    try:
        objects = len(sizes_bytes) * repeats
        with progress_bar("objects stored and read", objects, enabled=not as_json) as advance:
            points = measure_profile(
                ContentStore(scratch / "store"), sizes_bytes, repeats, progress=advance
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    fit = fit_profile(name, *points)
    data = {
        "name": name,
        "read_bandwidth_MBps": fit.profile.read_bandwidth / 1e6,
        "write_bandwidth_MBps": fit.profile.write_bandwidth / 1e6,
        "consensus_overhead_s": fit.profile.consensus_overhead,
        "read_r2": fit.read_r2,
        "write_r2": fit.write_r2,
        "points": [
            {"bytes": s, "read_s": r, "write_s": w} for s, r, w in zip(*points, strict=True)
        ],
    }
    if as_json:
        print_json(data)
    else:
        print_mapping(
            f"eq. 1 fitted to {len(points[0])} objects",
            {k: v for k, v in data.items() if k != "points"},
        )
        console.print(
            f"profile for `storage place`: --profile {name}:{fit.profile.read_bandwidth:.6g}:"
            f"{fit.profile.write_bandwidth:.6g}:{fit.profile.consensus_overhead:.6g}",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def place(
    size: str = typer.Option(..., help="Object size, e.g. 200MB."),
    reads: float = typer.Option(1.0, help="Expected reads of the object."),
    writes: float = typer.Option(1.0, help="Expected writes of the object."),
    profile: list[str] = typer.Option(
        ..., help="NAME:READ_BYTES_PER_S:WRITE_BYTES_PER_S:CONSENSUS_S (repeat for each platform)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Rank storage platforms for an object by eq. 1's total read and write time."""
    from mercat.storage.latency import StorageProfile
    from mercat.storage.latency import place as rank

    profiles = []
    for text in profile:
        parts = text.split(":")
        try:
            name, read_bw, write_bw, overhead = parts[0], *map(float, parts[1:])
        except ValueError:
            raise InvalidParameterError(
                f"profile {text!r} is not NAME:READ_BYTES_PER_S:WRITE_BYTES_PER_S:CONSENSUS_S"
            ) from None
        profiles.append(StorageProfile(name, read_bw, write_bw, overhead))
    nbytes = parse_size(size)
    rows = [
        {
            "platform": p.profile.name,
            "seconds": p.seconds,
            "read_s": p.profile.read_seconds(nbytes),
            "write_s": p.profile.write_seconds(nbytes),
        }
        for p in rank(nbytes, reads, writes, profiles)
    ]
    if as_json:
        print_json(rows)
    else:
        print_table(f"placement of a {size} object", rows)
