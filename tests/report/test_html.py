"""The report page: claims per section, the verdict summary, the header, folded tables, and
sections written before claims existed (a plug-in's, or a saved section.json) still render."""

from __future__ import annotations

import json
import re

import pytest

from mercat.report.claims import Claim, fmt_ratio, ratio, tally, verdict
from mercat.report.html import (
    FOLD_ROWS,
    Figure,
    RunInfo,
    Section,
    Table,
    section_from_dict,
    section_to_dict,
    write_report,
)


def claim(paper="000", verdict_="holds", source="Fig. 4"):
    return Claim(paper, source, "a claim", "1%", "1.1%", verdict_, "within the rule")


def test_a_section_without_claims_is_still_a_section():
    # The Section API before claims: positional key, title, summary; nothing else required.
    section = Section("old", "An experiment", "<p>text</p>", facts={"x": 1})
    assert section.claims == () and section.paper == ""
    saved = {"key": "old", "title": "t", "summary": "s", "tables": [], "figures": []}
    assert section_from_dict(saved).claims == ()


def test_claims_survive_the_saved_section_json():
    section = Section("s", "t", "p", paper="001", claims=[claim("001", "differs")])
    again = section_from_dict(json.loads(json.dumps(section_to_dict(section))))
    assert again == section and isinstance(again.claims, tuple)


def test_a_claim_names_a_known_paper_and_verdict():
    with pytest.raises(ValueError, match="verdict"):
        claim(verdict_="roughly")
    with pytest.raises(ValueError, match="paper"):
        claim(paper="007")
    with pytest.raises(ValueError, match="paper"):
        Section("s", "t", "p", paper="9")


def test_verdicts_and_ratios_guard_what_cannot_be_measured():
    assert (verdict(True), verdict(False), verdict(None)) == ("holds", "differs", "not measurable")
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(1.0, 0.0) is None and ratio(1.0, float("nan")) is None
    assert fmt_ratio(None) == "not measurable" and fmt_ratio(2.0) == "2.00×"
    counts = tally([claim(), claim(verdict_="differs"), claim(verdict_="not measurable")])
    assert counts == {"holds": 1, "differs": 1, "not measurable": 1}


def _report(tmp_path, run=None):
    big = Table("every row", ("a_long_name", "b"), [(i, i * 0.5) for i in range(FOLD_ROWS + 1)])
    small = Table("few rows", ("a", "b"), [(1, 2)])
    sections = [
        Section("plugin", "A plug-in's section", "<p>no claims</p>"),
        Section(
            "fig4",
            "Fig. 4",
            "<p>summary of fig4</p>",
            tables=(big, small),
            figures=(Figure("fig4/a.png", "the caption"),),
            paper="000",
            claims=(claim(), claim(verdict_="differs", source="Fig. 4, Free")),
        ),
        Section("seed003", "Seed 003", "<p>s</p>", paper="003", claims=(claim("003"),)),
    ]
    path = write_report(tmp_path, sections, run=run)
    return path.read_text(encoding="utf-8")


def test_the_page_groups_sections_by_paper_and_summarises_the_verdicts(tmp_path):
    page = _report(tmp_path)
    # Papers in seed order, each named, sections without a paper last.
    order = [page.index(h) for h in ('id="paper-000"', 'id="paper-003"', 'id="paper-other"')]
    assert order == sorted(order)
    assert "Collective Incentives" in page and "Distributed auctioneer" in page
    summary = page[page.index('id="claims-summary"') : page.index('id="paper-000"')]
    assert "3 claims with a number, from 2 of the four papers" in summary
    assert "2 hold" in summary and "1 differ" in summary
    # The claim that differs is listed, linked to its section.
    assert re.search(r'<a href="#fig4">seed 000, Fig\. 4, Free</a>', summary)
    # Inside the section: claims table, then text, then figures, then the tables.
    fig4 = page[page.index('<section id="fig4">') :]
    positions = [fig4.index(x) for x in ('class="claims"', "summary of fig4", "<figure", "every")]
    assert positions == sorted(positions)
    # The long table is folded, the short one is not.
    assert f'<details class="table"><summary>every row: {FOLD_ROWS + 1} rows' in fig4
    assert "<h4>few rows</h4>" in fig4
    # Wide headers may break after underscores.
    assert "a_<wbr>long_<wbr>name" in fig4
    facts = json.loads((tmp_path / "facts.json").read_text(encoding="utf-8"))
    assert facts["fig4"]["paper"] == "000" and len(facts["fig4"]["claims"]) == 2


def test_the_header_says_how_the_report_was_made(tmp_path):
    run = RunInfo("mercat reproduce all --quick --out report --seed 1", 1, "0.1.0",
                  "2026-12-03 20:40 UTC", True, 123.4)  # fmt: skip
    page = _report(tmp_path, run)
    header = page[: page.index("<nav>")]
    for text in ("mercat reproduce all --quick --out report --seed 1", "RNG seed", "0.1.0",
                 "2026-12-03 20:40 UTC", "--quick", "123.4 s"):  # fmt: skip
        assert text in header
    assert json.loads((tmp_path / "facts.json").read_text())["run"]["quick"] is True


def test_sections_of_an_earlier_command_say_their_own_settings(tmp_path):
    # A page refreshed one experiment at a time: fig3 from a full run with seed 2, fig4 now.
    old = Section("fig3", "Fig. 3", "<p>s</p>", seconds=9.0, paper="000", quick=False,
                  rng_seed=2, claims=(claim(),))  # fmt: skip
    new = Section("fig4", "Fig. 4", "<p>s</p>", seconds=1.0, paper="000", quick=True,
                  rng_seed=1, claims=(claim(),))  # fmt: skip
    run = RunInfo("mercat reproduce fig4 --quick --out r --seed 1", 1, "0.1.0", "d", True, 1.0)
    page = write_report(tmp_path, [old, new], run=run).read_text(encoding="utf-8")
    header = page[: page.index("<nav>")]
    note = header[header.index("earlier command with other settings") :]
    assert note.endswith("fig3</p>")
    assert "computed in 9.0 s (RNG seed 2)" in page
    assert "computed in 1.0 s (quick sizes, RNG seed 1)" in page
    again = section_from_dict(json.loads(json.dumps(section_to_dict(old))))
    assert again.quick is False and again.rng_seed == 2


def test_the_report_order_does_not_depend_on_which_experiment_module_was_imported_first():
    # A test (or a user) that imports seed 001's experiments before seed 000's registers them
    # first; the report still follows the modules' order in the registry.
    from mercat.report import experiments

    expected = list(experiments.experiments())
    saved = dict(experiments._REGISTRY)
    try:
        experiments._REGISTRY.clear()
        experiments._REGISTRY["seed001"] = saved["seed001"]  # registered first
        experiments._REGISTRY.update(saved)
        assert list(experiments.experiments()) == expected
    finally:
        experiments._REGISTRY.clear()
        experiments._REGISTRY.update(saved)
    assert expected[:4] == ["fig3", "fig4", "fig5", "table1"]


def test_a_report_that_fails_to_write_leaves_the_earlier_one_whole(tmp_path):
    before = _report(tmp_path)
    # a lone surrogate cannot be written as UTF-8: the write fails once the file is open
    broken = Section("fig4", "Fig. 4", "<p>\ud800</p>", paper="000", claims=(claim(),))
    with pytest.raises(UnicodeEncodeError):
        write_report(tmp_path, [broken])
    assert (tmp_path / "index.html").read_text(encoding="utf-8") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["facts.json", "index.html"]
