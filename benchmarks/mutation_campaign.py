"""A small mutation campaign: which injected bugs in the logic that matters does the suite miss?

One mutant at a time, a comparison is flipped (< and <=, > and >=, == and !=), a number is
moved (n -> n + 1, 0 -> 1, 1 -> 0), `and` and `or` are swapped, or `min` and `max`, inside
the functions listed in TARGETS: the clearing mechanisms, the market's economics and
constraints, the collective rule (float and integer) and the ledger's settlement. Each
mutant runs the tests listed for its module; it is *killed* when one of them fails (or the
run exceeds its time limit), and *survives* otherwise. Survivors are printed with their
place, so that a test can be written for the ones that matter (some are equivalent: the
changed code computes the same thing on every input).

Speed: a mutant does not reinstall or re-import anything. The campaign imports mercat once;
for each mutant a forked child swaps the code object of the one function that holds the
mutation (`function.__code__`, so every reference to the function sees it, also names
imported elsewhere with `from ... import`) and runs pytest in the child. Hypothesis runs
with a fixed seed, so a campaign is repeatable.

    .venv/bin/python benchmarks/mutation_campaign.py [--only NAME ...] [--jobs 2]
        [--ignore TESTFILE ...] [--deselect NODEID ...] [--limit N]

prints JSON: mutants, killed, survived, timed out, per target, and the survivors.
`--ignore` (a test file) and `--deselect` (a test id) run the campaign against a smaller
test set, e.g. the suite as it was before a set of tests was added.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import os
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    """A module, the functions (qualified names) whose bodies are mutated, and its tests."""

    name: str
    module: str
    functions: tuple[str, ...] | None  # None: every function and method of the module
    tests: tuple[str, ...]


TARGETS = (
    Target(
        "vcg payments",
        "mercat.clearing.vcg.mechanism",
        ("payments_from", "_refill_without", "clarke_payments", "VCGMechanism.clear"),
        ("tests/clearing/vcg/test_vcg_core.py", "tests/clearing/vcg/test_vcg_mechanism.py"),
    ),
    Target(
        "double auction",
        "mercat.clearing.double_auction",
        ("trade_reduction", "_first_non_trader", "clearing_from", "DoubleAuction.clear"),
        ("tests/clearing/test_double_auction.py",),
    ),
    Target(
        "optimal",
        "mercat.clearing.optimal",
        ("solve_welfare", "overfull"),
        ("tests/clearing/test_optimal.py", "tests/clearing/test_capacity_rule.py"),
    ),
    Target(
        "collective selection",
        "mercat.clearing.collective",
        (
            "CollectiveSelection.clear",
            "_draw",
            "_pay_as_ask",
            "_RoundState.eligible",
            "_RoundState._fits",
            "_RoundState.serve",
        ),
        ("tests/clearing/test_collective.py",),
    ),
    Target(
        "posted-price improvement",
        "mercat.clearing.posted_price.template",
        (
            "MinimumMargin.improvement",
            "strict_improvement",
            "improvement_and_slack",
            "reprice",
            "ToleranceImprovement.improvement",
        ),
        (
            "tests/clearing/posted_price/test_posted_price_template.py",
            "tests/clearing/posted_price/test_posted_price_equal_terms.py",
        ),
    ),
    Target(
        "economics",
        "mercat.market.economics",
        (
            "request_value",
            "node_cost",
            "welfare",
            "margin",
            "ir_violations",
            "_scale",
            "budget_balanced",
            "non_extractive",
            "zero_margin_prices",
            "summarize",
        ),
        ("tests/market/test_economics.py", "tests/clearing/test_optimal.py"),
    ),
    Target(
        "constraints",
        "mercat.market.constraints",
        (
            "served_fraction",
            "node_load",
            "is_valid",
            "fits_alone",
            "capacity_row",
            "encode",
            "MilpEncoding.decode",
        ),
        (
            "tests/market/test_constraints.py",
            "tests/market/test_brute_force.py",
            "tests/clearing/test_optimal.py",
            "tests/clearing/test_capacity_rule.py",
        ),
    ),
    Target(
        "collective rule",
        "mercat.incentives.collective",
        None,  # every function of the module
        ("tests/incentives/test_collective.py",),
    ),
    Target(
        "integer (ledger) rule",
        "mercat.incentives.integer_rule",
        None,
        ("tests/ledger/test_rule_and_messages.py", "tests/ledger/test_collective_parity.py"),
    ),
    Target(
        "settlement",
        "mercat.ledger.settlement",
        ("_apply_outcome", "settle"),
        ("tests/ledger/test_settlement.py", "tests/ledger/test_settlement_after_removal.py"),
    ),
)

FLIPS = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
}


@dataclass
class Mutant:
    target: str
    function: str  # the outermost function whose code object is swapped
    line: int
    change: str
    path: list = field(repr=False)  # how to find the node again: (field, index) steps


def _walk_functions(tree: ast.Module, wanted: tuple[str, ...] | None):
    """(qualified name, node) of the module's top-level functions and methods."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if wanted is None or node.name in wanted:
                yield node.name, node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                name = f"{node.name}.{item.name}" if hasattr(item, "name") else ""
                if isinstance(item, ast.FunctionDef) and (wanted is None or name in wanted):
                    yield name, item


def _skipped(node: ast.AST) -> bool:
    """Subtrees that hold no logic: messages, assertions, docstrings, annotations."""
    return isinstance(node, ast.JoinedStr | ast.Assert | ast.Raise | ast.arg)


def _points(node: ast.AST, path: list):
    """(path, node, change) for every mutation inside `node`."""
    if _skipped(node):
        return
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in FLIPS:
                yield (
                    [*path, ("ops", i)],
                    node,
                    f"{type(op).__name__} -> {FLIPS[type(op)].__name__}",
                )
    elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
        value = node.value
        new = 1 if value == 0 else 0 if value == 1 else value + 1
        yield path, node, f"{value!r} -> {type(value)(new)!r}"
    elif isinstance(node, ast.BoolOp):
        other = "Or" if isinstance(node.op, ast.And) else "And"
        yield path, node, f"{type(node.op).__name__} -> {other}"
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("min", "max")
    ):
        yield path, node, f"{node.func.id} -> {'max' if node.func.id == 'min' else 'min'}"
    for name, value in ast.iter_fields(node):
        if name in ("decorator_list", "returns", "annotation", "args") and isinstance(
            node, ast.FunctionDef
        ):
            continue  # defaults and annotations are not in the function's code object
        if isinstance(value, list):
            for i, child in enumerate(value):
                if isinstance(child, ast.AST):
                    yield from _points(child, [*path, (name, i)])
        elif isinstance(value, ast.AST):
            yield from _points(value, [*path, (name, None)])


def _node_at(tree: ast.AST, path: list) -> ast.AST:
    node = tree
    for name, index in path:
        value = getattr(node, name)
        node = value if index is None else value[index]
    return node


def _body_without_docstring(func: ast.FunctionDef) -> list[tuple[int, ast.stmt]]:
    body = list(enumerate(func.body))
    first = func.body[0] if func.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        body = body[1:]
    return body


def mutants_of(target: Target) -> list[Mutant]:
    module = importlib.import_module(target.module)
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    found = []
    for qualname, func in _walk_functions(tree, target.functions):
        func_path = _path_to(tree, func)
        for index, stmt in _body_without_docstring(func):
            for path, node, change in _points(stmt, [*func_path, ("body", index)]):
                if isinstance(node, ast.Compare):  # the op index is the last step
                    line = node.lineno
                else:
                    line = getattr(node, "lineno", func.lineno)
                found.append(Mutant(target.name, qualname, line, change, path))
    return found


def _path_to(tree: ast.Module, func: ast.FunctionDef) -> list:
    for i, node in enumerate(tree.body):
        if node is func:
            return [("body", i)]
        if isinstance(node, ast.ClassDef):
            for j, item in enumerate(node.body):
                if item is func:
                    return [("body", i), ("body", j)]
    raise LookupError(func.name)


def _apply(tree: ast.Module, mutant: Mutant) -> None:
    *path, last = mutant.path
    if last[0] == "ops":
        node = _node_at(tree, path)
        op = node.ops[last[1]]
        node.ops[last[1]] = FLIPS[type(op)]()
        return
    node = _node_at(tree, mutant.path)
    if isinstance(node, ast.Constant):
        value = node.value
        node.value = type(value)(1 if value == 0 else 0 if value == 1 else value + 1)
    elif isinstance(node, ast.BoolOp):
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif isinstance(node, ast.Call):
        node.func.id = "max" if node.func.id == "min" else "min"


def _code_objects(code: types.CodeType):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def install(target: Target, mutant: Mutant) -> None:
    """Swap the live function's code object for the mutated one (in this process only)."""
    module = importlib.import_module(target.module)
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    _apply(tree, mutant)
    compiled = compile(ast.fix_missing_locations(tree), module.__file__, "exec")
    codes = {c.co_qualname: c for c in _code_objects(compiled)}
    owner, _, name = mutant.function.rpartition(".")
    holder = getattr(module, owner) if owner else module
    live = holder.__dict__[name] if owner else getattr(module, name)
    if isinstance(live, staticmethod | classmethod):
        live = live.__func__
    live.__code__ = codes[mutant.function]


# titanoboa's plugin imports the Vyper compiler (seconds), coverage and xdist are unused.
PYTEST_ARGS = ["-q", "-p", "no:cacheprovider", "-p", "no:boa_test", "-p", "no:pytest_cov",
               "-p", "no:xdist", "--hypothesis-seed=0"]  # fmt: skip


def run_tests(tests: tuple[str, ...], extra: list[str]) -> int:
    import pytest

    with open(os.devnull, "w") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        return int(pytest.main(["-x", *PYTEST_ARGS, *tests, *extra]))


def warm_up(targets) -> None:
    """Collect every target's tests once in this process, so that each forked child finds
    pytest's plugins, the test modules and what they import already loaded."""
    import pytest

    tests = sorted({t for target in targets for t in target.tests})
    saved = os.dup(1), os.dup(2)
    with open(os.devnull, "w") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            pytest.main(["--collect-only", *PYTEST_ARGS, *tests])
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)


def _fork(target: Target, mutant: Mutant | None, extra: list[str]) -> int:
    pid = os.fork()
    if pid == 0:  # the child: mutate, test, leave without running the parent's cleanup
        code = 3
        try:
            if mutant is not None:
                install(target, mutant)
            code = run_tests(target.tests, extra)
        finally:
            os._exit(code)
    return pid


def campaign(targets, extra: list[str], jobs: int, timeout: float, limit: int | None):
    results = []
    for target in targets:
        baseline_pid = _fork(target, None, extra)
        _, status = os.waitpid(baseline_pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            results.append({"target": target.name, "error": "tests fail without a mutant"})
            continue
        mutants = mutants_of(target)[:limit]
        outcome: dict[int, str] = {}
        pending = list(enumerate(mutants))
        running: dict[int, tuple[int, float]] = {}
        while pending or running:
            while pending and len(running) < jobs:
                k, mutant = pending.pop(0)
                running[_fork(target, mutant, extra)] = (k, time.monotonic())
            time.sleep(0.05)
            for pid, (k, started) in list(running.items()):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    code = os.waitstatus_to_exitcode(status)
                    outcome[k] = "survived" if code == 0 else "killed"
                    del running[pid]
                elif time.monotonic() - started > timeout:
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
                    outcome[k] = "timeout"
                    del running[pid]
        survivors = [
            {"function": m.function, "line": m.line, "change": m.change}
            for k, m in enumerate(mutants)
            if outcome[k] == "survived"
        ]
        results.append(
            {
                "target": target.name,
                "module": target.module,
                "mutants": len(mutants),
                "killed": sum(v == "killed" for v in outcome.values()),
                "timed_out": sum(v == "timeout" for v in outcome.values()),
                "survived": len(survivors),
                "survivors": survivors,
            }
        )
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="target names (default: all)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant")
    parser.add_argument("--limit", type=int, default=None, help="mutants per target")
    parser.add_argument("--ignore", action="append", default=[], help="a test file to leave out")
    parser.add_argument("--deselect", action="append", default=[], help="a test id to leave out")
    parser.add_argument("--list", action="store_true", help="only list the mutants")
    args = parser.parse_args()
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    targets = [t for t in TARGETS if not args.only or t.name in args.only]
    if args.list:
        for t in targets:
            for m in mutants_of(t):
                print(f"{t.name}: {m.function}:{m.line} {m.change}")
        return
    for t in targets:  # imported once, before forking: the children share them
        importlib.import_module(t.module)
    import mercat.clearing.registry  # noqa: F401 - every mechanism, for the tests' imports

    warm_up(targets)

    # pytest's own --ignore does not apply to files named on its command line: drop them here.
    targets = [
        Target(t.name, t.module, t.functions, tuple(f for f in t.tests if f not in args.ignore))
        for t in targets
    ]
    extra = [f"--deselect={d}" for d in args.deselect]
    start = time.monotonic()
    results = campaign(targets, extra, args.jobs, args.timeout, args.limit)
    counted = [r for r in results if "mutants" in r]
    summary = {
        "mutants": sum(r["mutants"] for r in counted),
        "killed": sum(r["killed"] for r in counted),
        "timed_out": sum(r["timed_out"] for r in counted),
        "survived": sum(r["survived"] for r in counted),
        "seconds": round(time.monotonic() - start, 1),
        "ignored_tests": args.ignore,
        "deselected_tests": args.deselect,
        "targets": results,
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
