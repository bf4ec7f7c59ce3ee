"""The workloads: deterministic outputs (replicas agree byte for byte), the vectorized
gradients held to their readable twins, what each workload computes, and bad input refused
with a one-line error."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from mercat.errors import InvalidParameterError, InvalidWorkloadError
from mercat.workloads import archive, datasets, learning, reference
from mercat.workloads.catalog import WORKLOADS, execute
from mercat.workloads.federated import fedavg_round, privacy_check
from mercat.workloads.spec import parse

DATA = datasets.classification(300, 6, seed=1)
FEDERATED = datasets.classification(300, 6, seed=2, clients=6)


@pytest.mark.parametrize(
    ("workload", "inputs"),
    [
        ("preprocess", [DATA]),
        ("train-logreg", [DATA]),
        ("train-mlp:steps=50", [DATA]),
        ("fedavg", [FEDERATED, datasets.initial_model(6)]),
    ],
)
def test_every_workload_is_deterministic(workload, inputs):
    first, summary = execute(parse(workload), inputs)
    again, _ = execute(parse(workload), list(reversed(inputs)))
    assert first == again  # same bytes whatever the order of the inputs
    assert archive.load(first)[0] in archive.KINDS
    assert summary


def test_datasets_are_deterministic_and_seeded():
    assert datasets.classification(50, 3, seed=7) == datasets.classification(50, 3, seed=7)
    assert datasets.classification(50, 3, seed=7) != datasets.classification(50, 3, seed=8)
    with pytest.raises(InvalidParameterError, match="clients"):
        datasets.classification(5, 3, seed=1, clients=6)


def test_logistic_regression_learns_the_truth():
    output, summary = execute(parse("train-logreg:steps=300"), [DATA])
    assert summary["accuracy"] > 0.75
    predictions, scored = execute(parse("infer"), [output, DATA])
    kind, arrays = archive.load(predictions)
    assert kind == "predictions"
    assert scored["accuracy"] == pytest.approx(summary["accuracy"])
    assert set(np.unique(arrays["label"])) <= {0, 1}


def test_an_mlp_model_serves_inference_too():
    model, summary = execute(parse("train-mlp:hidden=8,steps=200"), [DATA])
    assert summary["accuracy"] > 0.7
    _, scored = execute(parse("infer"), [model, DATA])
    assert scored["accuracy"] == pytest.approx(summary["accuracy"])


def test_preprocessing_standardizes_every_column():
    output, _ = execute(parse("preprocess:clip=100"), [DATA])
    _, arrays = archive.load(output)
    assert np.allclose(arrays["x"].mean(axis=0), 0, atol=1e-12)
    assert np.allclose(arrays["x"].std(axis=0), 1, atol=1e-12)
    assert np.array_equal(arrays["y"], archive.load(DATA)[1]["y"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_logreg_gradient_equals_its_readable_twin(seed):
    rng = np.random.default_rng(seed)
    xb = learning.with_bias(rng.normal(size=(40, 5)))
    y = (rng.random(40) < 0.5).astype(float)
    w = rng.normal(size=6)
    fast = learning.logreg_gradient(w, xb, y, 0.01)
    assert np.allclose(fast, reference.logreg_gradient(w, xb, y, 0.01), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_mlp_gradient_equals_its_readable_twin(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(30, 4))
    y = (rng.random(30) < 0.5).astype(float)
    params = learning.mlp_init(4, 5, seed)
    params["b1"] = rng.normal(size=5)
    fast = learning.mlp_gradient(params, x, y)
    slow = reference.mlp_gradient(params, x, y)
    for name in fast:
        assert np.allclose(fast[name], slow[name], rtol=1e-12, atol=1e-14), name


def test_a_fedavg_round_clips_and_noises_each_update():
    _, arrays = archive.load(FEDERATED)
    x, y, client = arrays["x"], arrays["y"], arrays["client"]
    w = np.zeros(7)
    noiseless, clients = fedavg_round(
        x, y, client, w, local_steps=5, lr=0.5, clip_norm=1e-3, noise_multiplier=1e-3, seed=0
    )
    # each clipped update is at most C long, so their mean moves the model at most C (+ noise)
    assert clients == 6
    assert np.linalg.norm(noiseless - w) <= 1e-3 + 1e-4
    noisy, _ = fedavg_round(
        x, y, client, w, local_steps=5, lr=0.5, clip_norm=1e-3, noise_multiplier=100.0, seed=0
    )
    assert np.linalg.norm(noisy - w) > 10 * np.linalg.norm(noiseless - w)


def test_algorithm_2_accepts_and_refuses_a_round_by_its_budget():
    assert privacy_check(parse("fedavg:noise=1.1,round=1,epsilon=8")).compliant
    spent = privacy_check(parse("fedavg:noise=1.1,round=1,epsilon=8")).epsilon_actual
    assert not privacy_check(parse(f"fedavg:noise=1.1,round=1,epsilon={spent / 2:.6f}")).compliant
    # rounds compose: 50 rounds spend more than one
    assert privacy_check(parse("fedavg:noise=1.1,round=50")).epsilon_actual > spent


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "NAME"),
        ("train-svm", "unknown workload"),
        ("train-logreg:steps=0", r"steps must lie in \[1, 20000\]"),
        ("train-logreg:steps=1.5", "steps must be an integer"),
        ("train-logreg:lr=nan", "lr must lie"),
        ("train-logreg:depth=3", "takes no parameter 'depth'"),
        ("train-logreg:steps=5,steps=6", "given twice"),
        ("train-logreg:steps", "not KEY=VALUE"),
    ],
)
def test_bad_workload_strings_are_refused(text, message):
    with pytest.raises(InvalidWorkloadError, match=message):
        parse(text)


def test_a_spec_writes_back_to_its_canonical_text():
    spec = parse("train-logreg:lr=0.25,steps=200")
    assert spec.text() == "train-logreg:lr=0.25"
    assert parse(spec.text()) == spec
    assert set(WORKLOADS) == {"preprocess", "train-logreg", "train-mlp", "infer", "fedavg"}


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([], "one dataset"),
        ([DATA, DATA], "one dataset"),
        ([b"not a zip"], "not a workload archive"),
        ([datasets.initial_model(6)], "one dataset"),
    ],
)
def test_inputs_of_the_wrong_kind_are_refused(inputs, message):
    with pytest.raises(InvalidWorkloadError, match=message):
        execute(parse("train-logreg"), inputs)


def test_a_model_that_does_not_fit_the_data_is_refused():
    with pytest.raises(InvalidWorkloadError, match="weights"):
        execute(parse("infer"), [datasets.initial_model(3), DATA])


def _zip(members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def _npy(array) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array(out, np.asarray(array), allow_pickle=True)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            _zip(
                {"kind.npy": _npy(np.array("dataset")), "x.npy": _npy(np.zeros(3))},
                zipfile.ZIP_DEFLATED,
            ),
            "compressed",
        ),
        (_zip({"../x.npy": _npy(np.zeros(3))}), "not NAME.npy"),
        (
            _zip({"kind.npy": _npy(np.array("dataset")), "x.npy": _npy(np.array([{}]))}),
            "does not read",
        ),
        (
            _zip({"kind.npy": _npy(np.array("dataset")), "x.npy": _npy(np.zeros((1, 1, 1)))}),
            "at most 2 dimensions",
        ),
        (_zip({"x.npy": _npy(np.zeros(3))}), "names its kind"),
        (_zip({"kind.npy": _npy(np.array("weights"))}), "names its kind"),
    ],
)
def test_hostile_archives_are_refused_before_numpy_reads_them(data, message):
    with pytest.raises(InvalidWorkloadError, match=message):
        archive.load(data)


def test_an_archive_above_its_bound_is_refused():
    with pytest.raises(InvalidWorkloadError, match="exceeds"):
        archive.load(DATA, max_bytes=100)


def _encrypted(data: bytes) -> bytes:
    """`data` with every member flagged as encrypted (bit 0 of the zip's flags)."""
    flagged = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = flagged.find(signature)
        while at >= 0:
            flagged[at + offset] |= 1
            at = flagged.find(signature, at + 4)
    return bytes(flagged)


def test_an_archive_of_encrypted_members_is_refused_as_an_archive():
    with pytest.raises(InvalidWorkloadError, match="encrypted"):
        archive.load(_encrypted(DATA))


def _header(shape, descr="<f8") -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        out, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return out.getvalue()


@pytest.mark.parametrize("shape", [(1 << 40,), (1_000_000, 1_000_000)])
def test_an_array_header_claiming_more_than_its_bytes_is_refused_unread(shape):
    # 8 TiB claimed by a header of 128 bytes: refused as the archive it is, never allocated
    data = _zip({"kind.npy": _npy(np.array("dataset")), "x.npy": _header(shape)})
    with pytest.raises(InvalidWorkloadError, match="claims"):
        archive.load(data)


def test_an_archive_directory_too_long_for_its_members_is_refused_before_it_is_parsed(
    monkeypatch,
):
    # 60 MiB of empty members made zipfile build 650,000 entries (4 s, 380 MB) before the
    # count was checked; the directory's size, in the archive's last bytes, says so first
    data = _zip({f"a{i}.npy": b"" for i in range(2000)})

    def parsed(*args, **kwargs):
        raise AssertionError("the archive's directory was parsed")

    monkeypatch.setattr(archive.zipfile, "ZipFile", parsed)
    with pytest.raises(InvalidWorkloadError, match="directory"):
        archive.load(data)
