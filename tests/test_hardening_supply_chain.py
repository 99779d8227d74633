"""Set Up Engine installs only hash-locked wheels and never a second numpy."""

from __future__ import annotations

import re

import pytest

from blender_addon import engine_setup

pytestmark = pytest.mark.timeout(60)
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)")


def _requirements(text: str) -> list[tuple[str, str, list[str]]]:
    """(name, version, hashes) per requirement of a pip requirements file with continuation lines."""
    joined = text.replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        if line.strip() and not line.startswith("#"):
            pin = _PIN.match(line.strip())
            assert pin is not None, f"unpinned requirement: {line}"
            out.append((pin[1].lower(), pin[2], re.findall(r"--hash=sha256:([0-9a-f]{64})", line)))
    return out


@pytest.mark.parametrize("variant", [None, "CPU", "CUDA"])
def test_shipped_locks_pin_and_hash_every_package_and_leave_numpy_to_blender(variant):
    path = engine_setup.lock_path(variant)
    requirements = _requirements(path.read_text())
    assert requirements and all(hashes for _, _, hashes in requirements)
    names = {name for name, _, _ in requirements}
    assert "numpy" not in names
    assert "3.11" in engine_setup.lock_pythons(path)
    if variant is None:
        assert {"librosa", "scipy", "soundfile", "safetensors", "soxr", "numba"} <= names
    else:
        assert ("torch", engine_setup.torch_version(variant)) in {(n, v) for n, v, _ in requirements}


def test_pip_installs_exactly_the_lock_wheels_only(tmp_path):
    for command in engine_setup.pip_commands(tmp_path, "CPU", python="/py"):
        for flag in ("--require-hashes", "--no-deps", "--target"):
            assert flag in command
        assert command[command.index("--only-binary") + 1] == ":all:"
        assert command[command.index("-c") + 1] == str(tmp_path / engine_setup.CONSTRAINTS_NAME)
        assert command[-2] == "-r" and command[-1] in {
            str(engine_setup.lock_path("CPU")),
            str(engine_setup.lock_path(None)),
        }
        requested = [a for a in command if re.match(r"^[a-z]+[=<>]", a)]
        assert requested == []  # nothing outside the lock, numpy least of all


def test_constraint_pins_the_running_numpy_and_a_missing_lock_is_refused_with_the_fix(tmp_path, monkeypatch):
    import numpy

    assert engine_setup.write_constraints(tmp_path).read_text() == f"numpy=={numpy.__version__}\n"
    engine_setup.check_locks("CPU")  # this Python (3.11) is covered
    monkeypatch.setattr("sys.platform", "win32")
    with pytest.raises(RuntimeError, match="Linux x86-64 wheels only"):
        engine_setup.check_locks("CUDA")
    monkeypatch.setattr(engine_setup, "LOCK_DIR", tmp_path / "nowhere")
    with pytest.raises(RuntimeError, match=r"lock_engine.py --variant CUDA"):
        engine_setup.check_locks("CUDA")


class _RunsCode:
    def __reduce__(self):
        return (print, ("this ran while loading a dataset",))


def test_dataset_templates_unpickle_only_arrays_unless_the_user_opts_in(tmp_path, monkeypatch, capsys):
    import collections
    import pickle

    import numpy as np

    from engine.data.readers import TRUST_PICKLE_ENV, DatasetError, _load_templates

    face = np.zeros((4, 3), np.float32)
    plain, hostile, exotic = tmp_path / "plain.pkl", tmp_path / "hostile.pkl", tmp_path / "exotic.pkl"
    plain.write_bytes(pickle.dumps({"s1": face, "s2": face.ravel().tolist()}, protocol=2))
    hostile.write_bytes(pickle.dumps({"s1": face, "x": _RunsCode()}))
    exotic.write_bytes(pickle.dumps(collections.OrderedDict(s1=face)))
    monkeypatch.delenv(TRUST_PICKLE_ENV, raising=False)
    assert set(_load_templates(plain, 4)) == {"s1", "s2"}
    with pytest.raises(
        DatasetError, match=rf"builtins.print, which DualFace does not unpickle.*{TRUST_PICKLE_ENV}=1"
    ):
        _load_templates(hostile, 4)
    with pytest.raises(DatasetError, match="collections.OrderedDict"):
        _load_templates(exotic, 4)
    assert capsys.readouterr().out == ""
    monkeypatch.setenv(TRUST_PICKLE_ENV, "1")
    assert list(_load_templates(exotic, 4)) == ["s1"]
