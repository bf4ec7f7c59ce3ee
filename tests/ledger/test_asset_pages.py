"""Assets read a page at a time by the database: in the byte order Python compares ids in,
on SQLite and PostgreSQL alike, with the offers, status counts and active offers the
market's endpoints show."""

import uuid

from sqlalchemy import update

from mercat.ledger import schema as s
from tests.ledger.market import Market

# Ids a locale collation orders otherwise than bytes do: case, and punctuation that a
# locale skips at first ("a-b" between "aB" and "ac" by letters, before "aB" by bytes).
IDS = ["ab", "a-b", "aB", "A1", "a.c", "b", "a_b", "ac", "Z", "0x"]


def test_the_locale_collated_database_sorts_ids_otherwise_than_bytes(postgres):
    # what makes the en-US case worth running: its own ORDER BY is not byte order
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres.create_database(f"t_{uuid.uuid4().hex[:16]}", "en-US"))
    with engine.connect() as connection:
        values = ", ".join(f"('{i}')" for i in IDS)
        query = f"SELECT id FROM (VALUES {values}) AS v(id) ORDER BY id"
        assert [r[0] for r in connection.execute(text(query))] != sorted(IDS)
    engine.dispose()


def market_with_assets(url):
    m = Market(url, users=1)
    (owner,) = m.users
    m.fund(owner, 100_000)
    for name in IDS:
        m.asset(owner, 100, name)
    with m.ledger.engine.begin() as connection:  # two assets no longer active
        connection.execute(
            update(s.assets).where(s.assets.c.id.in_(["a.c", "Z"])).values(status="removed")
        )
    return m


def test_pages_of_assets_follow_byte_order_and_join_up(collated_url):
    ledger = market_with_assets(collated_url).ledger
    assert [a.id for a in ledger.assets()] == sorted(IDS)
    pages, after = [], None
    while page := ledger.assets(after=after, limit=3):
        assert len(page) <= 3
        pages.append([a.id for a in page])
        after = page[-1].id
    assert [i for page in pages for i in page] == sorted(IDS)
    assert len(pages) == 4
    assert ledger.assets(after="zz") == []


def test_offers_statuses_and_active_offers_of_a_page(collated_url):
    ledger = market_with_assets(collated_url).ledger
    everything = ledger.offers()
    assert set(everything) == set(IDS)
    some = ["b", "a-b", "nothing-here"]
    assert ledger.offers(some) == {k: everything[k] for k in ("b", "a-b")}
    assert ledger.offers([]) == {}
    assert ledger.asset_statuses() == {"active": len(IDS) - 2, "removed": 2}
    active = ledger.active_offers(limit=4)
    expected = [i for i in sorted(IDS) if i not in ("a.c", "Z")][:4]
    assert [asset.id for asset, _ in active] == expected
    assert all(
        asset.status == "active" and offer == everything[asset.id] for asset, offer in active
    )
