"""No code runs from a user's file: safe .npz reading, and no unsafe loader anywhere."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from workbench.data.readers import read_deepprofiler
from workbench.data.readers._safe_npz import load_npz
from workbench.errors import InputFormatError

PACKAGE = Path(__file__).resolve().parents[3] / "workbench"


class _Payload:
    """Unpickling this calls ``Path.touch`` on the marker: the classic pickle exploit."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _crafted(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "payload_ran"
    meta = np.empty((), dtype=object)
    meta[()] = {"Metadata_Plate": "P1", "evil": _Payload(marker)}
    f = tmp_path / "cells.npz"
    np.savez(f, features=np.zeros((3, 4), np.float32), metadata=meta)
    return f, marker


def test_a_pickle_payload_in_an_npz_is_refused_and_never_runs(tmp_path):
    f, marker = _crafted(tmp_path)
    with pytest.raises(InputFormatError, match="pickled .*touch"):
        load_npz(f)
    assert not marker.exists()


def test_import_of_a_crafted_deepprofiler_file_runs_nothing(tmp_path):
    f, marker = _crafted(tmp_path)
    with pytest.raises(InputFormatError):
        read_deepprofiler(f)
    assert not marker.exists()


def test_plain_metadata_still_reads(tmp_path):
    meta = np.empty((), dtype=object)
    meta[()] = {"Metadata_Plate": "P1", "Metadata_Well": "A01", "Metadata_Site": 5,
                "values": np.arange(3)}
    f = tmp_path / "ok.npz"
    np.savez(f, features=np.ones((2, 3), np.float32), metadata=meta)
    z = load_npz(f)
    assert z["metadata"]["Metadata_Well"] == "A01"
    np.testing.assert_array_equal(z["metadata"]["values"], np.arange(3))
    np.testing.assert_array_equal(z["features"], np.ones((2, 3), np.float32))


UNSAFE = [
    (re.compile(r"allow_pickle\s*=\s*True"), "allow_pickle=True"),
    (re.compile(r"torch\.load\((?![^)]*weights_only\s*=\s*True)"), "torch.load without weights_only=True"),
    (re.compile(r"yaml\.(unsafe_)?load\((?![^)]*Loader\s*=\s*yaml\.SafeLoader)"), "yaml.load"),
    (re.compile(r"\bpickle\.loads?\("), "pickle.load"),
    (re.compile(r"(?<![.\w])(eval|exec)\("), "eval/exec"),
]


def test_no_unsafe_loader_anywhere_in_the_package():
    found = []
    for f in sorted(PACKAGE.rglob("*.py")):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if code.lstrip().startswith(('"', "'", "``")):
                continue
            for pattern, what in UNSAFE:
                if pattern.search(code) and "_PlainUnpickler" not in code:
                    found.append(f"{f.relative_to(PACKAGE.parent)}:{n}: {what}: {line.strip()}")
    assert not found, "\n".join(found)
