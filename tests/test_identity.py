"""Key files: what `Keypair.from_file` reads, and how it says what is wrong."""

import pytest

from mercat.errors import InvalidParameterError
from mercat.identity import Keypair


def test_a_key_file_round_trips(tmp_path):
    key = Keypair.generate()
    path = tmp_path / "k.key"
    path.write_text(key.seed.hex() + "\n")
    assert Keypair.from_file(path).public == key.public


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"\xff\xfe\x00", "holds binary data, not hex"),
        (b"zz", "64 hex digits"),
        (b"ab" * 31, "64 hex digits"),
    ],
)
def test_bad_key_files_name_the_file_and_the_problem(tmp_path, content, words):
    path = tmp_path / "bad.key"
    path.write_bytes(content)
    with pytest.raises(InvalidParameterError, match=f"key file .*bad.key.*{words}"):
        Keypair.from_file(path)


def test_missing_and_unreadable_key_files(tmp_path):
    with pytest.raises(InvalidParameterError, match="does not exist"):
        Keypair.from_file(tmp_path / "none.key")
    with pytest.raises(InvalidParameterError, match="cannot be read: Is a directory"):
        Keypair.from_file(tmp_path)
