"""Every parser of outside text refuses deeply nested input with its own one-line error.

About a thousand levels of brackets (a few kilobytes) used to end in a RecursionError
traceback: in `mercat clear`, in the node (a 500), in a ledger message, in the distributed
auctioneer's message and outcome decoding (a provider's receive path) and in peers files.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from mercat.auctioneer.config import load_peers
from mercat.auctioneer.messages import decode
from mercat.auctioneer.outcome import Outcome
from mercat.cli import app
from mercat.errors import AuctioneerConfigError, InvalidMarketError, MalformedMessageError
from mercat.ledger import IntegerRule, Keypair, Ledger, LedgerConfig
from mercat.ledger.messages import SignedMessage, parse
from mercat.market.market_io import load_market, loads_market
from mercat.node.app import create_app

DEEP = "[" * 1000 + "]" * 1000
DEEP_OBJECT = '{"a": ' * 1000 + "1" + "}" * 1000


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text and len(text) < 300, text
    return text


@pytest.mark.parametrize("text", [DEEP, DEEP_OBJECT])
def test_markets(tmp_path, text):
    with pytest.raises(InvalidMarketError) as caught:
        loads_market(text)
    assert "levels deep" in one_line(caught.value)
    path = tmp_path / "deep.json"
    path.write_text(text)
    with pytest.raises(InvalidMarketError, match=r"deep\.json: the market nests"):
        load_market(path)


def test_signed_ledger_messages_and_their_payloads():
    with pytest.raises(MalformedMessageError) as caught:
        SignedMessage.from_json(DEEP)
    assert one_line(caught.value).startswith("a signed message nests")
    # A payload that is deep inside (the body of an envelope, where oracle reports travel).
    payload = ('{"body": ' + DEEP_OBJECT + ', "domain": "mercat/ledger/1"}').encode()
    with pytest.raises(MalformedMessageError, match="the payload nests"):
        parse(SignedMessage(payload, bytes(64)))


def test_auctioneer_headers_and_outcomes():
    with pytest.raises(MalformedMessageError, match="header nests"):
        decode([DEEP.encode(), b"", bytes(64)], lambda *_: None)
    header = DEEP.encode()
    sizes = [len(header), 0, 0, 0, 0, 0]
    encoded = b"OUT1" + b"".join(s.to_bytes(8, "little") for s in sizes) + header
    with pytest.raises(MalformedMessageError, match="outcome header nests"):
        Outcome.decode(encoded)


def test_peers_files(tmp_path):
    path = tmp_path / "peers.toml"
    path.write_text("[auction]\nk = " + DEEP + "\n")
    with pytest.raises(AuctioneerConfigError) as caught:
        load_peers(path)
    assert "levels deep" in one_line(caught.value)


def test_the_nodes_request_bodies(tmp_path):
    with TestClient(create_app(None, None)) as client:
        for path in ("/clearing/optimal", "/privacy/check"):
            reply = client.post(path, content=DEEP)
            assert reply.status_code == 422, reply.text
            assert "levels deep" in one_line(reply.json()["detail"])
    url = f"sqlite:///{tmp_path}/ledger.db"
    operator = Keypair.generate().public
    Ledger.init(url, LedgerConfig(operator=operator, rule=IntegerRule(99, 1, True), unit=1)).close()
    with TestClient(create_app(url, None)) as client:
        reply = client.post("/ledger/messages", content=DEEP)
        assert reply.status_code == 422, reply.text
        assert one_line(reply.json()["detail"]).startswith("a signed message nests")


def test_the_command_line(tmp_path):
    runner = CliRunner()
    path = tmp_path / "deep.json"
    path.write_text(DEEP)
    example = tmp_path / "m.json"
    example.write_text('{"requests": [], "nodes": [{"id": "n"}]}')
    for args in (["clear", str(path)], ["clear", str(example), "-O", "time_limit=" + DEEP]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "levels deep" in result.output and "Traceback" not in result.output
