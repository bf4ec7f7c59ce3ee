"""`ContentStore.get_to_file`: what each kind of target gets, and bad targets refused with
nothing written."""

import builtins
import io
import os
import stat
import threading

import pytest

from mercat.errors import ContentCorruptedError, ContentNotFoundError, StorageError
from mercat.storage import store as store_module
from mercat.storage.cid import cid_of
from mercat.storage.store import ContentStore


@pytest.fixture
def store(tmp_path):
    return ContentStore(tmp_path / "store", chunk_size=1024)


@pytest.fixture
def out(tmp_path):
    directory = tmp_path / "out"
    directory.mkdir()
    return directory


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir())


def test_a_new_file_is_written_beside_its_target_and_gets_the_umask_mode(store, out, monkeypatch):
    data = os.urandom(3000)
    cid = store.put(data)
    dirs = []
    real = store_module.tempfile.mkstemp

    def recording(*args, **kwargs):
        dirs.append(kwargs["dir"])
        return real(*args, **kwargs)

    monkeypatch.setattr(store_module.tempfile, "mkstemp", recording)
    old = os.umask(0o027)
    try:
        assert store.get_to_file(cid, out / "model.bin") == 3000
    finally:
        os.umask(old)
    assert (out / "model.bin").read_bytes() == data
    assert stat.S_IMODE((out / "model.bin").stat().st_mode) == 0o640  # 0o666 & ~0o027
    assert [os.path.realpath(d) for d in dirs] == [os.path.realpath(out)]  # same file system
    assert leftovers(out) == ["model.bin"]


def test_an_existing_file_is_replaced_and_keeps_its_mode(store, out):
    target = out / "model.bin"
    target.write_bytes(b"old")
    target.chmod(0o604)
    cid = store.put(b"new content")
    store.get_to_file(cid, target)
    assert target.read_bytes() == b"new content"
    assert stat.S_IMODE(target.stat().st_mode) == 0o604


def test_a_refused_read_leaves_an_existing_file_as_it_was(store, out):
    cid = store.put(os.urandom(3000))
    for block in store.blocks():
        if block.startswith("bafkrei"):
            store._path(block).write_bytes(b"bad")
    target = out / "model.bin"
    target.write_bytes(b"precious")
    with pytest.raises(ContentCorruptedError):
        store.get_to_file(cid, target)
    assert target.read_bytes() == b"precious"
    assert leftovers(out) == ["model.bin"]


def test_a_symlink_is_followed_and_its_target_written(store, out):
    real = out / "real.bin"
    real.write_bytes(b"old")
    link = out / "link.bin"
    link.symlink_to("real.bin")
    cid = store.put(b"through the link")
    store.get_to_file(cid, link)
    assert link.is_symlink() and os.readlink(link) == "real.bin"
    assert real.read_bytes() == b"through the link"
    dangling = out / "dangling.bin"
    dangling.symlink_to("created.bin")
    store.get_to_file(cid, dangling)
    assert dangling.is_symlink() and (out / "created.bin").read_bytes() == b"through the link"
    assert leftovers(out) == ["created.bin", "dangling.bin", "link.bin", "real.bin"]


def test_a_fifo_is_streamed_into_not_replaced(store, out):
    data = os.urandom(5000)
    cid = store.put(data)
    fifo = out / "pipe"
    os.mkfifo(fifo)
    # The read end is open before the call (so the call's open finds a reader), and a
    # second write end is held until the call has ended: the reader sees end of file once
    # both are closed, however the call ends, so no wait here is bounded by a clock.
    read_end = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    held = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    os.set_blocking(read_end, True)
    received = []

    def read_all():
        with os.fdopen(read_end, "rb") as pipe:
            received.append(pipe.read())

    reader = threading.Thread(target=read_all)
    reader.start()
    try:
        assert store.get_to_file(cid, fifo) == 5000
    finally:
        os.close(held)
        reader.join()
    assert received == [data]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert leftovers(out) == ["pipe"]


def test_a_fifo_is_not_opened_for_content_the_store_does_not_hold(store, out, monkeypatch):
    fifo = out / "pipe"
    os.mkfifo(fifo)
    # With no reader, a writer that opened the FIFO before checking the CID would wait for
    # one. Every open of the FIFO is recorded instead, and a reader is held open throughout
    # so that such an open returns at once: the outcome is what was opened, not how long
    # anything took.
    target = os.path.realpath(fifo)
    opened = []

    def recording(real):
        def opening(file, *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and os.path.realpath(file) == target:
                opened.append(file)
            return real(file, *args, **kwargs)

        return opening

    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        for module in (builtins, io, os):  # open(), Path.open() and os.open()
            monkeypatch.setattr(module, "open", recording(module.open))
        with pytest.raises(ContentNotFoundError):
            store.get_to_file(cid_of(b"never stored"), fifo)
    finally:
        monkeypatch.undo()
        written = os.read(reader, 1)
        os.close(reader)
    assert opened == [] and written == b""
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert leftovers(out) == ["pipe"]


@pytest.mark.parametrize(
    ("make", "target", "message"),
    [
        (lambda out: None, "nodir/sub/out", "does not exist"),
        (lambda out: (out / "file.txt").write_text("x"), "file.txt/x", "is not a directory"),
        (lambda out: (out / "file.txt").write_text("x"), "file.txt/x/y", "does not exist"),
        (lambda out: (out / "d").mkdir(), "d", "is a directory"),
        (lambda out: (out / "loop").symlink_to("loop"), "loop", "loop"),
    ],
)
def test_a_target_that_cannot_be_written_is_refused_and_nothing_created(
    store, out, make, target, message
):
    cid = store.put(b"content")
    make(out)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    with pytest.raises(StorageError, match=message) as refused:
        store.get_to_file(cid, out / target)
    assert target.split("/")[0] in str(refused.value)  # the message names the path
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert leftovers(store.root / "tmp") == []
