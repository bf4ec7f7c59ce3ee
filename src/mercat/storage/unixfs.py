"""UnixFS files in dag-pb, as `ipfs add --cid-version 1 --raw-leaves` writes them (seed 002,
§III.B: models and data kept in IPFS).

A file of one chunk is one `raw` block. A larger file is cut into `raw` leaves of `chunk_size`
bytes, which dag-pb nodes link in kubo's *balanced* layout (go-unixfs / boxo
`importer/balanced`): a node links at most `max_links` children (kubo: 174), every leaf lies
at the same depth, and subtrees are filled left to right. A node is a protobuf `PBNode` whose
`Links` come first, each `{Hash: binary CID, Name: "", Tsize: bytes of the subtree's blocks}`,
then `Data`: a UnixFS `Data` message `{Type: File, filesize, blocksizes: [content bytes under
each link]}`. With the same chunk size and links per node the root CID equals kubo's.

Why hand-written protobuf: the messages have five fields, and the one Python dag-pb package
(`ipld-dag-pb` 0.0.1, one release) raises bare `Exception` and leaves UnixFS's own message to
the caller anyway; these 60 lines also let the decoder be as strict as the dag-pb spec asks
(a link's fields in order, no duplicates, no unknown fields or wire types, shortest varints;
Data before or after the Links, both of which the spec tells decoders to accept, but never
between two of them).

Reading checks the DAG as well as each block's hash, before any byte of a block is returned:
a node's `filesize` must be its own data plus its `blocksizes`; a child must hold exactly the
bytes its `blocksizes` entry claims; links must be unnamed; depth, node size and links per
node are bounded; a node that is its own ancestor (possible only with a hash collision or a
store that does not check hashes) is refused. Memory is bounded by depth × node size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from mercat.errors import ContentCorruptedError, InvalidCIDError, StorageError
from mercat.storage.cid import DAG_PB, RAW, cid_of, from_bytes, parse, to_bytes

DEFAULT_MAX_LINKS = 174  # kubo's links per node (boxo helpers.DefaultLinksPerBlock)
MAX_LINKS = 8192  # links one node may have, read or written
MAX_NODE_BYTES = 1 << 20  # kubo refuses to `block put` a larger block without --allow-big-block
MAX_DEPTH = 32  # 174 links per node reach 2**63 bytes in 8 levels, even with 256-byte chunks
MAX_FILE_SIZE = 2**63 - 1

# UnixFS Data.Type values (unixfs.proto); only files (and the legacy Raw leaf) are content.
_FILE, _RAW_TYPE = 2, 0
_TYPE_NAMES = {0: "Raw", 1: "Directory", 2: "File", 3: "Metadata", 4: "Symlink", 5: "HAMTShard"}


class MalformedNodeError(ValueError):
    """A dag-pb block that is not a UnixFS file node; the caller names the CID."""


@dataclass(frozen=True)
class Child:
    """A link's target as its parent needs it: CID, total bytes of its blocks (the link's
    Tsize) and bytes of content under it (the parent's blocksizes entry)."""

    cid: str
    tsize: int
    size: int


@dataclass(frozen=True)
class FileNode:
    """A decoded UnixFS file node: its own content bytes, then its children's, in order."""

    data: bytes
    links: tuple[str, ...]
    blocksizes: tuple[int, ...]
    filesize: int


# --- protobuf wire format -----------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    """(value, next offset); refuses truncated, overlong (not shortest) and >64-bit varints."""
    value = shift = 0
    start = i
    while True:
        if i >= len(buf):
            raise MalformedNodeError("a varint runs past the end of the block")
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
        if shift >= 64:
            raise MalformedNodeError("a varint is longer than 10 bytes")
    if i - start > 1 and byte == 0:
        raise MalformedNodeError("a varint is not in its shortest form")
    if value >= 1 << 64:
        raise MalformedNodeError("a varint exceeds 64 bits")
    return value, i


def _read_field(buf: bytes, i: int) -> tuple[int, int, int]:
    """(field number, wire type, next offset) of the key at `i`."""
    key, i = _read_varint(buf, i)
    return key >> 3, key & 7, i


def _read_bytes(buf: bytes, i: int) -> tuple[bytes, int]:
    length, i = _read_varint(buf, i)
    if i + length > len(buf):
        raise MalformedNodeError("a length-delimited field runs past the end of the block")
    return buf[i : i + length], i + length


# --- encoding -----------------------------------------------------------------------------


def encode_file_node(children: Sequence[Child], data: bytes = b"") -> bytes:
    """A dag-pb UnixFS file node over `children` (and `data` of its own), byte for byte as
    kubo writes it: links first, each with an empty Name; blocksizes unpacked."""
    filesize = len(data) + sum(c.size for c in children)
    unixfs = [b"\x08\x02"]  # Type = File
    if data:
        unixfs.append(b"\x12" + _varint(len(data)) + data)
    unixfs.append(b"\x18" + _varint(filesize))
    unixfs.extend(b"\x20" + _varint(c.size) for c in children)
    body = b"".join(unixfs)
    parts = []
    for child in children:
        digest = to_bytes(child.cid)
        link = b"\x0a" + _varint(len(digest)) + digest + b"\x12\x00\x18" + _varint(child.tsize)
        parts.append(b"\x12" + _varint(len(link)) + link)
    parts.append(b"\x0a" + _varint(len(body)) + body)
    return b"".join(parts)


def make_node(children: Sequence[Child]) -> tuple[Child, bytes]:
    """The node linking `children`, as the Child its parent links, and its block."""
    block = encode_file_node(children)
    tsize = len(block) + sum(c.tsize for c in children)
    return Child(cid_of(block, DAG_PB), tsize, sum(c.size for c in children)), block


# --- decoding -----------------------------------------------------------------------------


def _decode_link(buf: bytes) -> tuple[bytes, str]:
    """(binary CID, name) of a PBLink: fields Hash, Name, Tsize in that order, each once."""
    i, last, digest, name = 0, 0, None, ""
    while i < len(buf):
        field, wire, i = _read_field(buf, i)
        if field <= last or field > 3:
            raise MalformedNodeError(f"a link has field {field} out of order, repeated or unknown")
        if wire != (0 if field == 3 else 2):
            raise MalformedNodeError(f"a link's field {field} has wire type {wire}")
        last = field
        if field == 1:
            digest, i = _read_bytes(buf, i)
        elif field == 2:
            raw_name, i = _read_bytes(buf, i)
            name = raw_name.decode("utf-8", "replace")
        else:
            _, i = _read_varint(buf, i)  # Tsize: a hint the spec says not to trust
    if digest is None:
        raise MalformedNodeError("a link has no Hash")
    return digest, name


def _decode_pbnode(block: bytes) -> tuple[list[bytes], bytes | None]:
    """(binary CIDs of the links, Data) of a dag-pb block, as strictly as the dag-pb spec
    reads: only fields Links (2) and Data (1), Links contiguous, Data at most once."""
    if len(block) > MAX_NODE_BYTES:
        raise MalformedNodeError(f"it is {len(block)} bytes, above the {MAX_NODE_BYTES} allowed")
    links: list[bytes] = []
    data = None
    # The spec's canonical order is Links then Data, but it tells decoders to accept Data
    # first too, "as IPFS data exists in both forms"; what no encoder writes is Links on
    # both sides of Data.
    data_after_links = False  # then no link may follow
    i = 0
    while i < len(block):
        field, wire, i = _read_field(block, i)
        if wire != 2 or field not in (1, 2):
            raise MalformedNodeError(f"it has field {field} of wire type {wire} (dag-pb has 1, 2)")
        value, i = _read_bytes(block, i)
        if field == 1:
            if data is not None:
                raise MalformedNodeError("it has two Data fields")
            data, data_after_links = value, bool(links)
            continue
        if data_after_links:
            raise MalformedNodeError("its Links are split around Data")
        digest, name = _decode_link(value)
        if name:
            raise MalformedNodeError(f"a link is named {name!r}; a file's links are unnamed")
        links.append(digest)
        if len(links) > MAX_LINKS:
            raise MalformedNodeError(f"it has more than {MAX_LINKS} links")
    return links, data


def _decode_unixfs(buf: bytes) -> tuple[int, bytes, int, list[int]]:
    """(Type, Data, filesize, blocksizes) of a UnixFS `Data` message. Fields may come in any
    order, as protobuf allows; mode, mtime and the HAMT fields are read past; a repeated
    scalar or an unknown field is refused (no writer produces either)."""
    kind, data, filesize, sizes = None, b"", 0, []
    seen: set[int] = set()
    i = 0
    while i < len(buf):
        field, wire, i = _read_field(buf, i)
        if field == 4 and wire == 2:  # blocksizes, packed
            packed, i = _read_bytes(buf, i)
            j = 0
            while j < len(packed):
                size, j = _read_varint(packed, j)
                sizes.append(size)
            continue
        expected = {1: 0, 2: 2, 3: 0, 4: 0, 5: 0, 6: 0, 7: 0, 8: 2}.get(field)
        if expected is None or wire != expected:
            raise MalformedNodeError(f"its UnixFS data has field {field} of wire type {wire}")
        if field != 4 and field in seen:
            raise MalformedNodeError(f"its UnixFS data repeats field {field}")
        seen.add(field)
        if wire == 2:
            value, i = _read_bytes(buf, i)
            if field == 2:
                data = value
            continue
        number, i = _read_varint(buf, i)
        if field == 1:
            kind = number
        elif field == 3:
            filesize = number
        elif field == 4:
            sizes.append(number)
    if kind is None:
        raise MalformedNodeError("its UnixFS data has no Type")
    return kind, data, filesize, sizes


def decode_file_node(block: bytes) -> FileNode:
    """A dag-pb block as a UnixFS file node; `MalformedNodeError` with the reason if it is not
    one (a directory, a symlink, sizes that do not add up, a link that is not a CID we hold)."""
    digests, pb_data = _decode_pbnode(block)
    if pb_data is None:
        raise MalformedNodeError("it has no UnixFS data")
    kind, data, filesize, sizes = _decode_unixfs(pb_data)
    if kind not in (_FILE, _RAW_TYPE):
        name = _TYPE_NAMES.get(kind, f"type {kind}")
        raise MalformedNodeError(f"it is a UnixFS {name}, not a file (mercat stores files only)")
    if len(sizes) != len(digests):
        raise MalformedNodeError(f"it has {len(digests)} links but {len(sizes)} blocksizes")
    if filesize != len(data) + sum(sizes):
        raise MalformedNodeError(
            f"its filesize {filesize} is not its {len(data)} data bytes plus blocksizes "
            f"{sum(sizes)}"
        )
    if filesize > MAX_FILE_SIZE:
        raise MalformedNodeError(f"its filesize {filesize} is above {MAX_FILE_SIZE}")
    try:
        links = tuple(from_bytes(d) for d in digests)
    except InvalidCIDError as exc:
        raise MalformedNodeError(str(exc)) from None
    if any(parse(link)[1] not in (RAW, DAG_PB) for link in links):
        raise MalformedNodeError("it links a block that is neither raw nor dag-pb")
    return FileNode(data, links, tuple(sizes), filesize)


def _node(cid: str, block: bytes) -> FileNode:
    try:
        return decode_file_node(block)
    except MalformedNodeError as exc:
        raise ContentCorruptedError(f"dag-pb node {cid} is not a UnixFS file node: {exc}") from None


# --- the balanced layout ------------------------------------------------------------------


class BalancedBuilder:
    """Kubo's balanced layout built as leaves stream in, holding at most `max_links` children
    per level: a level that fills up becomes a node one level higher at once. A node is handed
    out for writing only once more content has arrived after it, so the root is never among
    them: `finish` returns it, for the caller to write after everything it names is durable.
    `balanced_reference` is the readable twin (a transcription of boxo's recursion)."""

    def __init__(self, max_links: int = DEFAULT_MAX_LINKS) -> None:
        self.max_links = max_links
        self.levels: list[list[Child]] = [[]]
        self._held: list[tuple[str, bytes]] = []  # nodes closed by the latest leaf
        self.leaves = 0

    def add(self, leaf: Child) -> list[tuple[str, bytes]]:
        """Take the next leaf; returns the nodes (CID, block) that are now safe to write."""
        ready, self._held = self._held, []
        self.leaves += 1
        self.levels[0].append(leaf)
        level = 0
        while len(self.levels[level]) == self.max_links:
            self._close(level, self._held)
            level += 1
        return ready

    def _close(self, level: int, out: list[tuple[str, bytes]]) -> None:
        node, block = make_node(self.levels[level])
        self.levels[level] = []
        if level + 1 == len(self.levels):
            if level + 1 > MAX_DEPTH:
                raise StorageError(
                    f"content needs more than {MAX_DEPTH} levels of nodes with "
                    f"{self.max_links} links each; use larger chunks or more links per node"
                )
            self.levels.append([])
        self.levels[level + 1].append(node)
        out.append((node.cid, block))

    def finish(self) -> tuple[list[tuple[str, bytes]], Child | None, bytes | None]:
        """(nodes still to write, the root, the root's block or None when the root is the
        only leaf). The root is None when no leaf was added."""
        nodes = self._held
        self._held = []
        level = -1
        while level + 1 < len(self.levels):  # _close may add a level
            level += 1
            higher = any(self.levels[j] for j in range(level + 1, len(self.levels)))
            entries = self.levels[level]
            if entries and (higher or len(entries) > 1):
                self._close(level, nodes)
            elif entries:
                root = entries[0]
                if nodes and nodes[-1][0] == root.cid:
                    return nodes[:-1], root, nodes[-1][1]
                return nodes, root, None  # a single leaf
        return nodes, None, None


def balanced_reference(
    leaves: Sequence[Child], max_links: int = DEFAULT_MAX_LINKS
) -> tuple[Child | None, dict[str, bytes]]:
    """The root of boxo's balanced layout over `leaves`, and every node block by CID: the
    first leaf is the root; while leaves remain, the root becomes the first child of a new
    root one level deeper, which is filled with full subtrees of the level below."""
    pending = list(reversed(leaves))
    nodes: dict[str, bytes] = {}

    def fill(children: list[Child], depth: int) -> Child:
        while len(children) < max_links and pending:
            children.append(pending.pop() if depth == 1 else fill([], depth - 1))
        node, block = make_node(children)
        nodes[node.cid] = block
        return node

    if not pending:
        return None, nodes
    root = pending.pop()
    depth = 1
    while pending:
        root = fill([root], depth)
        depth += 1
    return root, nodes


# --- reading ------------------------------------------------------------------------------


def _check_child(parent: str, child: str, expected: int, got: int, what: str) -> None:
    if got != expected:
        raise ContentCorruptedError(
            f"node {parent} says {child} holds {expected} bytes of content; its {what} is {got}"
        )


def iter_file(cid: str, read_block: Callable[[str], bytes]) -> Iterator[bytes]:
    """The content of a UnixFS file (a raw block or a dag-pb DAG), block by block, from
    `read_block` (which checks each block against its CID). Every node's structure and every
    child's size are checked before its bytes are yielded; depth-first, without recursion."""
    canonical, codec, _ = parse(cid)
    block = read_block(canonical)
    if codec == RAW:
        yield block
        return
    root = _node(canonical, block)
    if root.data:
        yield root.data
    stack = [(canonical, iter(zip(root.links, root.blocksizes, strict=True)))]
    ancestors = {canonical}
    while stack:
        parent, children = stack[-1]
        step = next(children, None)
        if step is None:
            stack.pop()
            ancestors.discard(parent)
            continue
        child, size = step
        if child in ancestors:
            raise ContentCorruptedError(f"node {parent} links its own ancestor {child}: a cycle")
        block = read_block(child)
        if parse(child)[1] == RAW:
            _check_child(parent, child, size, len(block), "length")
            if block:
                yield block
            continue
        if len(stack) >= MAX_DEPTH:
            raise ContentCorruptedError(f"the DAG under {canonical} is deeper than {MAX_DEPTH}")
        node = _node(child, block)
        _check_child(parent, child, size, node.filesize, "filesize")
        if node.data:
            yield node.data
        stack.append((child, iter(zip(node.links, node.blocksizes, strict=True))))
        ancestors.add(child)


def file_shape(
    cid: str, read_block: Callable[[str], bytes], has_block: Callable[[str], bool] | None = None
) -> tuple[int, int, bool]:
    """(content bytes, blocks a full read fetches, whether every leaf is present) of a UnixFS
    file, from its dag-pb nodes only (leaves are counted, and looked for with `has_block`,
    but not read). Each distinct node is read once, so a DAG that links one subtree many
    times costs its distinct nodes, not its (possibly astronomical) paths."""
    canonical, codec, _ = parse(cid)
    if codec == RAW:
        size = len(read_block(canonical))
        return size, 1, True
    seen: dict[str, tuple[int, int, bool]] = {}  # node -> (filesize, blocks, complete)

    def visit(
        node_cid: str, expected: int | None, ancestors: tuple[str, ...]
    ) -> tuple[int, int, bool]:
        if node_cid in ancestors:
            raise ContentCorruptedError(f"node {ancestors[-1]} links its ancestor {node_cid}")
        if len(ancestors) >= MAX_DEPTH:
            raise ContentCorruptedError(f"the DAG under {canonical} is deeper than {MAX_DEPTH}")
        if node_cid not in seen:
            node = _node(node_cid, read_block(node_cid))
            blocks, complete = 1, True
            for child, size in zip(node.links, node.blocksizes, strict=True):
                if parse(child)[1] == RAW:
                    blocks += 1
                    complete = complete and (has_block is None or has_block(child))
                    continue
                _, sub_blocks, sub_complete = visit(child, size, (*ancestors, node_cid))
                blocks += sub_blocks
                complete = complete and sub_complete
            seen[node_cid] = (node.filesize, blocks, complete)
        filesize, blocks, complete = seen[node_cid]
        if expected is not None:
            _check_child(ancestors[-1], node_cid, expected, filesize, "filesize")
        return filesize, blocks, complete

    return visit(canonical, None, ())
