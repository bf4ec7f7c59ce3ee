"""UnixFS: CIDs equal to IPFS's, the balanced layout against its reference twin, and a reader
that refuses malformed or malicious DAGs."""

import hashlib
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mercat.errors import (
    ContentCorruptedError,
    ContentMismatchError,
    InvalidParameterError,
    StorageError,
)
from mercat.storage.cid import (
    DAG_PB,
    MANIFEST,
    RAW,
    cid_from_digest,
    cid_from_digest_reference,
    cid_of,
    from_bytes,
    to_bytes,
)
from mercat.storage.content import content_cid
from mercat.storage.store import ContentStore
from mercat.storage.unixfs import (
    MAX_DEPTH,
    MAX_LINKS,
    BalancedBuilder,
    Child,
    _varint,
    balanced_reference,
    encode_file_node,
    iter_file,
)

VECTORS = Path(__file__).parent / "vectors"
KIB = 1024


def sample(size: int) -> bytes:
    """The input the recorded JS importer CIDs were computed for (vectors/README.md)."""
    return random.Random(size).randbytes(size)


# --- CIDs equal to IPFS's ----------------------------------------------------------------


def test_kubos_multiblock_file_from_the_gateway_conformance_suite():
    data = (VECTORS / "multiblock.txt").read_bytes()
    assert len(data) == 1026
    expected = "bafybeigcisqd7m5nf3qmuvjdbakl5bdnh4ocrmacaqkpuh77qjvggmt2sa"
    assert content_cid(data, chunk_size=256) == expected


def test_the_multiblock_root_is_byte_for_byte_kubos(tmp_path):
    data = (VECTORS / "multiblock.txt").read_bytes()
    store = ContentStore(tmp_path, chunk_size=256)
    cid = store.put(data)
    root = store.read_block(cid)
    assert len(root) == 245  # the spec's `ipfs block stat` size of this root
    leaves = [cid_of(data[i : i + 256]) for i in range(0, 1026, 256)]
    assert leaves[0] == "bafkreie5noke3mb7hqxukzcy73nl23k6lxszxi5w3dtmuwz62wnvkpsscm"
    assert leaves[-1] == "bafkreifst3pqztuvj57lycamoi7z34b4emf7gawxs74nwrc2c7jncmpaqm"
    assert store.get(cid) == data
    assert store.stat(cid).blocks == 6


def test_the_specs_well_known_cids():
    assert content_cid(b"") == "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    # a dag-pb file node with no content and no links ("empty dag-pb file")
    assert cid_of(encode_file_node([]), DAG_PB) == (
        "bafybeif7ztnhq65lumvvtr4ekcwd2ifwgm3awq4zfr3srh462rwyinlb4y"
    )
    # a one-block dag-pb file with its content inline (the gateway checker's file)
    inline = encode_file_node([], b"Hello from IPFS Gateway Checker\n")
    assert len(inline) == 40
    assert cid_of(inline, DAG_PB) == "bafybeifx7yeb55armcsxwwitkymga5xf53dxiarykms3ygqic223w5sk3m"


@pytest.mark.parametrize(
    ("size", "chunk", "links", "expected"),
    [
        (1, KIB, 174, "bafkreiekgmp53zydf4z2ohq3fysx3aawny2i4ah4wf4rj5el3nl2drrqa4"),
        (1024, KIB, 174, "bafkreih6vqr7rbur3e4fis43f4uxhul2vuqevbeibfyb4msmw76no52iua"),
        (1025, KIB, 174, "bafybeidpadnpefarnzaz76fier66qcw5jv6nl4grzd5po5ym3iecpddxsq"),
        (174 * KIB, KIB, 174, "bafybeibcinkukqkrsweibcydwjdrn4vtrcwbbhj2jh5wcb5h6nbrrs2noe"),
        (174 * KIB + 1, KIB, 174, "bafybeibru7duhx6op4vhwp4yiwgm4viwvzcqsbevdbyiqifj2ve65445i4"),
        (180000, KIB, 174, "bafybeiaahcbedwzbrsdmey6coaq3cnnlu5tolv3htctvlryfulyg2nizp4"),
        (4097, KIB, 2, "bafybeigkf44yayclooh4eifrzdavvj7rv6ayemugbfokc656vj73zzbx3e"),
        (9000, KIB, 3, "bafybeiee7ov3qi6tjfh3rdxzebvxccgvj2cv5rafc265mvdngj2unzi4qq"),
        (27649, KIB, 3, "bafybeicn6bic7ltovdvybdtaxz2c2cj4jhitosrlxtobtqw4j7jwavb2qm"),
        # 174**2 leaves of 256 bytes fill two levels of nodes; one leaf more needs three
        (174**2 * 256, 256, 174, "bafybeick2osrhqjnvu7hpf6cqn2jagimpqodqv2u5xjuzszjywiaageiby"),
        (
            174**2 * 256 + 256,
            256,
            174,
            "bafybeifj36p5if2bzs75j3akxwvjxbsp4223oxcdjmitsom7s3dfvjlj6a",
        ),
        (
            174**2 * 256 + 257,
            256,
            174,
            "bafybeieww56ujtn7mk3otdulnkd7mvo4lt4ej3xidp3iwrag5r4gdrsgna",
        ),
        # kubo's defaults: exactly one chunk, one byte over, 174 chunks, 174 chunks + 1 byte
        (256 * KIB, 256 * KIB, 174, "bafkreih2bk74eu5axngebs6vftmmkcaqboysjjy726xzy5hksnqmfgw5fy"),
        (
            256 * KIB + 1,
            256 * KIB,
            174,
            "bafybeidbbs6ocod3v27jtr4uhvc6n55y3gbrtur3bvjsnraudtbxkozi2y",
        ),
        (
            174 * 256 * KIB,
            256 * KIB,
            174,
            "bafybeih3ebhydpblov22wbakszm4spvku7hbo3oa5gdhgoh7gnub26mtx4",
        ),
        (
            174 * 256 * KIB + 1,
            256 * KIB,
            174,
            "bafybeidsyc3rx6lmbjml2fg4ucagkjh3kse6tbphoyyhms46fqhmu6ujbi",
        ),
    ],
)
def test_cids_equal_the_js_reference_importers(size, chunk, links, expected):
    assert content_cid(sample(size), chunk_size=chunk, max_links=links) == expected


def test_the_default_layout_is_kubos():
    data = sample(256 * KIB + 1)
    assert content_cid(data) == content_cid(data, chunk_size=256 * KIB, max_links=174)


@pytest.mark.parametrize("codec", [RAW, DAG_PB, MANIFEST])
def test_the_fast_cid_encoding_equals_the_librarys(codec):
    for i in range(50):
        digest = hashlib.sha256(bytes([i])).digest()
        cid = cid_from_digest(digest, codec)
        assert cid == cid_from_digest_reference(digest, codec)
        assert from_bytes(to_bytes(cid)) == cid


# --- the balanced layout against its reference twin --------------------------------------


def leaves_of(n: int) -> list[Child]:
    return [Child(cid_of(i.to_bytes(4, "big")), 10 + i % 7, 3 + i % 5) for i in range(n)]


def build(leaves: list[Child], max_links: int):
    builder = BalancedBuilder(max_links)
    written = {}
    for leaf in leaves:
        for cid, block in builder.add(leaf):
            assert cid not in written or written[cid] == block
            written[cid] = block
    nodes, root, root_block = builder.finish()
    written.update(nodes)
    if root_block is not None:
        assert root.cid not in written  # the root is handed out last, on its own
        written[root.cid] = root_block
    return root, written


@settings(max_examples=150, deadline=None)
@given(n=st.integers(0, 400), max_links=st.sampled_from([2, 3, 4, 7, 174]))
def test_the_streaming_builder_equals_boxos_recursion(n, max_links):
    leaves = leaves_of(n)
    root, written = build(leaves, max_links)
    reference_root, reference_nodes = balanced_reference(leaves, max_links)
    assert root == reference_root
    assert written == reference_nodes


def test_edges_of_the_layout():
    for n, max_links in [(1, 3), (3, 3), (4, 3), (9, 3), (10, 3), (27, 3), (28, 3)]:
        test_the_streaming_builder_equals_boxos_recursion.hypothesis.inner_test(n, max_links)


def test_every_leaf_lies_at_one_depth(tmp_path):
    store = ContentStore(tmp_path, chunk_size=256, max_links=3)
    data = sample(256 * 28)  # 28 leaves: 3**3 < 28, so four levels of nodes
    cid = store.put(data)

    def depths(node: str, depth: int):
        block = store.read_block(node)
        if node.startswith("bafkrei"):
            return [depth]
        from mercat.storage.unixfs import decode_file_node

        return [d for link in decode_file_node(block).links for d in depths(link, depth + 1)]

    assert set(depths(cid, 0)) == {4}
    assert store.get(cid) == data
    assert store.stat(cid).blocks == 28 + 10 + 4 + 2 + 1  # leaves, then nodes level by level


# --- sizes at the edges, through the store -----------------------------------------------


@pytest.mark.parametrize("size", [0, 1024, 1025, 175 * 1024 + 7])  # 175 leaves: two levels
def test_content_at_the_edges_round_trips(tmp_path, size):
    store = ContentStore(tmp_path, chunk_size=1024)
    data = sample(size)
    cid = store.put(data)
    assert cid == content_cid(data, chunk_size=1024)
    assert store.get(cid) == data
    info = store.stat(cid)
    leaves = -(-size // 1024)
    nodes = 0 if leaves <= 1 else (1 if leaves <= 174 else 1 + -(-leaves // 174))
    assert (info.size, info.blocks) == (size, max(leaves, 1) + nodes)
    assert (info.codec == RAW) == (leaves <= 1)


def test_bad_layouts_are_refused(tmp_path):
    for links in [1, MAX_LINKS + 1, True, 3.0]:
        with pytest.raises(InvalidParameterError, match="links per node"):
            ContentStore(tmp_path, max_links=links)
    with pytest.raises(InvalidParameterError, match="chunk size"):
        content_cid(b"x", chunk_size=255)


# --- DAGs from elsewhere ----------------------------------------------------------------


@pytest.fixture
def store(tmp_path):
    return ContentStore(tmp_path / "store", chunk_size=1024)


def leaf(store, data: bytes) -> Child:
    store.put_block(cid_of(data), data)
    return Child(cid_of(data), len(data), len(data))


def node(store, children, data: bytes = b"") -> Child:
    block = encode_file_node(children, data)
    store.put_block(cid_of(block, DAG_PB), block)
    size = len(data) + sum(c.size for c in children)
    return Child(cid_of(block, DAG_PB), len(block) + sum(c.tsize for c in children), size)


def pb_node(links: list[bytes], unixfs: bytes) -> bytes:
    """A dag-pb block from raw link encodings and a raw UnixFS Data message."""
    parts = [b"\x12" + _varint(len(link)) + link for link in links]
    return b"".join(parts) + b"\x0a" + _varint(len(unixfs)) + unixfs


def pb_link(cid: str, tsize: int, name: bytes = b"") -> bytes:
    digest = to_bytes(cid)
    return (
        b"\x0a"
        + _varint(len(digest))
        + digest
        + b"\x12"
        + _varint(len(name))
        + name
        + (b"\x18" + _varint(tsize))
    )


def unixfs(kind: int = 2, filesize: int | None = None, sizes=(), data: bytes = b"") -> bytes:
    out = b"\x08" + _varint(kind)
    if data:
        out += b"\x12" + _varint(len(data)) + data
    if filesize is not None:
        out += b"\x18" + _varint(filesize)
    return out + b"".join(b"\x20" + _varint(s) for s in sizes)


def test_a_dag_with_inline_data_and_dag_pb_leaves_is_read(store):
    a, b = b"first part ", b"second part"
    inner = node(store, [], b)  # a dag-pb leaf holding its content (non-raw leaves)
    root = node(store, [leaf(store, a), inner], b"head: ")
    assert store.get(root.cid) == b"head: " + a + b
    assert store.stat(root.cid).size == 6 + len(a) + len(b)


def test_a_cidv0_link_is_followed_to_the_block_of_the_same_hash(store):
    inner = node(store, [], b"old-style leaf")
    digest = to_bytes(inner.cid)[-32:]
    v0 = b"\x12\x20" + digest
    block = pb_node(
        [b"\x0a" + _varint(34) + v0 + b"\x12\x00\x18" + _varint(inner.tsize)],
        unixfs(filesize=inner.size, sizes=[inner.size]),
    )
    store.put_block(cid_of(block, DAG_PB), block)
    assert store.get(cid_of(block, DAG_PB)) == b"old-style leaf"


def test_packed_blocksizes_are_read(store):
    a = leaf(store, b"x" * 10)
    packed = b"\x08\x02\x18\x14\x22\x02\x0a\x0a"  # Type File, filesize 20, blocksizes [10, 10]
    block = pb_node([pb_link(a.cid, 10), pb_link(a.cid, 10)], packed)
    store.put_block(cid_of(block, DAG_PB), block)
    assert store.get(cid_of(block, DAG_PB)) == b"x" * 20


def refused(store, block: bytes, message: str) -> None:
    cid = cid_of(block, DAG_PB)
    with pytest.raises(ContentMismatchError, match=message):
        store.put_block(cid, block)
    assert not store.has_block(cid)


def test_malformed_nodes_are_refused_before_anything_is_stored(store):
    a = leaf(store, b"a" * 10)
    link = pb_link(a.cid, 10)
    good_data = unixfs(filesize=10, sizes=[10])
    refused(store, pb_node([link], unixfs(filesize=11, sizes=[10])), "filesize 11")
    refused(store, pb_node([link], unixfs(filesize=10, sizes=[5, 5])), "1 links but 2 blocksizes")
    refused(store, pb_node([link], unixfs(kind=1)), "UnixFS Directory, not a file")
    refused(store, pb_node([link], unixfs(kind=5)), "HAMTShard")
    refused(store, pb_node([pb_link(a.cid, 10, b"name")], good_data), "named 'name'")
    refused(store, pb_node([link], b"\x18\x0a\x20\x0a"), "no Type")
    refused(store, pb_node([link], good_data + b"\x48\x01"), "field 9")
    refused(store, pb_node([link], good_data + b"\x18\x0a"), "repeats field 3")
    # dag-pb strictness: out-of-order link fields, Links split by Data, two Data, overlong varint
    digest = to_bytes(a.cid)
    swapped = b"\x12\x00\x0a" + _varint(len(digest)) + digest + b"\x18\x0a"
    refused(store, pb_node([swapped], good_data), "out of order")
    split = pb_node([link], good_data) + b"\x12" + _varint(len(link)) + link
    refused(store, split, "split around Data")
    refused(store, pb_node([link], good_data) + b"\x0a\x00", "two Data")
    refused(store, b"\x0a\x82\x00" + b"\x08\x02", "shortest form")
    refused(store, b"\x1a\x00", "field 3")
    refused(store, pb_node([b"\x12\x00\x18\x01"], good_data), "no Hash")
    refused(store, pb_node([b"\x0a\x03abc\x12\x00\x18\x01"], good_data), "not a CIDv1")
    refused(store, pb_node([link], good_data)[:-3], "past the end")


def test_data_before_links_is_read_as_the_dag_pb_spec_asks(store):
    """The dag-pb spec encodes Links before Data but tells decoders to accept either order,
    "as IPFS data exists in both forms"; only Links split around Data are refused."""
    a, b = leaf(store, b"a" * 10), leaf(store, b"b" * 5)
    links = b"".join(b"\x12" + _varint(len(x)) + x for x in (pb_link(a.cid, 10), pb_link(b.cid, 5)))
    data = unixfs(filesize=15, sizes=[10, 5])
    data_first = b"\x0a" + _varint(len(data)) + data + links
    store.put_block(cid_of(data_first, DAG_PB), data_first)
    assert store.get(cid_of(data_first, DAG_PB)) == b"a" * 10 + b"b" * 5
    assert pb_node([pb_link(a.cid, 10), pb_link(b.cid, 5)], data) != data_first


def test_the_dag_pb_specs_other_strictness_rules_are_kept(store):
    a = leaf(store, b"a" * 10)
    digest = to_bytes(a.cid)
    hash_field = b"\x0a" + _varint(len(digest)) + digest
    good_data = unixfs(filesize=10, sizes=[10])
    # PBLink fields out of order, repeated, unknown, or of the wrong wire type
    for link, message in (
        (b"\x18\x0a" + hash_field, "field 1 out of order"),  # Tsize before Hash
        (hash_field + b"\x18\x0a\x12\x00", "field 2 out of order"),  # Name after Tsize
        (hash_field + hash_field, "field 1 out of order, repeated"),
        (hash_field + b"\x12\x00\x12\x00", "field 2 out of order, repeated"),
        (hash_field + b"\x18\x0a\x18\x0a", "field 3 out of order, repeated"),
        (hash_field + b"\x22\x00", "field 4 out of order, repeated or unknown"),
        (b"\x08\x01", "field 1 has wire type 0"),  # Hash as a varint
        (hash_field + b"\x10\x00", "field 2 has wire type 0"),  # Name as a varint
        (hash_field + b"\x1a\x01\x0a", "field 3 has wire type 2"),  # Tsize as bytes
    ):
        refused(store, pb_node([link], good_data), message)
    # PBNode: Data twice (also around Links), unknown fields, wrong wire types
    link = pb_link(a.cid, 10)
    links = b"\x12" + _varint(len(link)) + link
    data = b"\x0a" + _varint(len(good_data)) + good_data
    refused(store, data + links + data, "two Data")
    refused(store, data + data + links, "two Data")
    refused(store, links + data + b"\x22\x00", "field 4 of wire type 2")
    refused(store, links + b"\x08\x01" + data, "field 1 of wire type 0")  # Data as a varint
    refused(store, b"\x10\x01" + data, "field 2 of wire type 0")  # Links as a varint
    refused(store, links + data + b"\x0d\x00\x00\x00\x00", "field 1 of wire type 5")


def test_a_node_with_too_many_links_or_bytes_is_refused(store):
    a = leaf(store, b"a")
    many = pb_node([pb_link(a.cid, 1)] * (MAX_LINKS + 1), unixfs(filesize=MAX_LINKS + 1))
    refused(store, many, f"more than {MAX_LINKS} links")
    huge = pb_node([], unixfs(filesize=1 << 20, data=b"x" * (1 << 20)))
    refused(store, huge, "above the")


def test_a_child_of_the_wrong_size_stops_the_read_before_its_bytes(store):
    short = leaf(store, b"s" * 500)
    root = node(store, [Child(short.cid, 500, 1024), leaf(store, b"b" * 10)])
    stream = store.iter_content(root.cid)
    with pytest.raises(
        ContentCorruptedError, match="holds 1024 bytes of content; its length is 500"
    ):
        next(stream)
    inner = node(store, [short])  # a dag-pb child whose filesize differs from the parent's claim
    liar = node(store, [Child(inner.cid, inner.tsize, 501)])
    with pytest.raises(ContentCorruptedError, match="its filesize is 500"):
        store.get(liar.cid)
    with pytest.raises(ContentCorruptedError, match="its filesize is 500"):
        store.stat(liar.cid)


def test_a_dag_deeper_than_the_limit_is_refused(store):
    child = leaf(store, b"bottom")
    for _ in range(MAX_DEPTH + 1):  # one level of nodes more than a reader follows
        child = node(store, [child])
    with pytest.raises(ContentCorruptedError, match=f"deeper than {MAX_DEPTH}"):
        store.get(child.cid)
    with pytest.raises(ContentCorruptedError, match=f"deeper than {MAX_DEPTH}"):
        store.stat(child.cid)
    one_less = store.read_block(child.cid)
    from mercat.storage.unixfs import decode_file_node

    shallower = decode_file_node(one_less).links[0]
    assert store.get(shallower) == b"bottom"


def test_a_cycle_is_refused_by_a_reader_whose_blocks_are_not_hash_checked():
    # With hash-checked blocks a node cannot link its ancestor; a store that skips the check
    # (or a hash collision) could hand one out.
    loop = cid_of(b"any name", DAG_PB)
    block = encode_file_node([Child(loop, 100, 5)])
    blocks = {loop: block}
    with pytest.raises(ContentCorruptedError, match="ancestor"):
        list(iter_file(loop, blocks.__getitem__))
    from mercat.storage.unixfs import file_shape

    with pytest.raises(ContentCorruptedError, match="ancestor"):
        file_shape(loop, blocks.__getitem__)


def test_a_dag_that_links_one_subtree_many_times_costs_its_distinct_nodes(store):
    # Five nodes, each linking the one below 1000 times: 10**15 leaves' worth of content.
    child = leaf(store, b"x" * 1024)
    for _ in range(5):
        child = node(store, [child] * 1000)
    reads = []
    real = store.read_block

    def counted(cid):
        reads.append(cid)
        return real(cid)

    store.read_block = counted
    info = store.stat(child.cid)
    assert info.size == 1000**5 * 1024
    assert info.blocks == sum(1000**k for k in range(6))
    assert len(reads) == 5  # each node once; leaves are not read
    assert store.has(child.cid)
    first = next(store.iter_content(child.cid))  # streams in bounded memory, as asked
    assert first == b"x" * 1024


def test_a_missing_node_makes_has_false_and_get_not_found(store, tmp_path):
    data = sample(10 * 1024)
    source = ContentStore(tmp_path / "src", chunk_size=1024, max_links=3)
    cid = source.put(data)
    for block in source.blocks():
        if block != cid and block.startswith("bafybei"):
            continue  # the level-1 nodes stay behind
        store.put_block(block, source.read_block(block))
    assert not store.has(cid)
    with pytest.raises(StorageError, match="holds no block"):
        store.get(cid)


def test_a_put_that_would_need_too_many_levels_is_refused(monkeypatch):
    from mercat.storage import unixfs

    monkeypatch.setattr(unixfs, "MAX_DEPTH", 2)  # 2 links per node: 4 leaves fit, 5 do not
    builder = BalancedBuilder(2)
    for leaf in leaves_of(4):
        builder.add(leaf)
    with pytest.raises(StorageError, match="more than 2 levels"):
        builder.add(leaves_of(5)[-1])
        builder.finish()
