"""jsonable: what `--json` and the node's HTTP answers turn mercat's results into."""

import json
import math
from dataclasses import dataclass

import numpy as np

from mercat.jsonable import jsonable


@dataclass(frozen=True)
class Result:
    digest: bytes
    weights: np.ndarray
    gap: float
    parts: tuple


def test_results_become_plain_json():
    value = Result(b"\x01\xff", np.array([1.5, 2.0]), math.inf, (np.int64(3), math.nan))
    plain = jsonable(value)
    assert plain == {"digest": "01ff", "weights": [1.5, 2.0], "gap": "inf", "parts": [3, None]}
    json.dumps(plain, allow_nan=False)  # strict JSON: no NaN or Infinity tokens left
