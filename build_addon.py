"""Build the installable extension: dist/dualface-<version>.zip, validated by Blender's own checker.

The zip holds the add-on package (blender_addon/ at the archive root), blender_manifest.toml, the
engine package as a pure-Python wheel (Blender installs wheels listed in the manifest when the
extension is enabled) and the model weights. Exit code 0 on success, 1 when something is missing
or the validator rejects the package.

    python build_addon.py [--weights weights/dualface.safetensors] [--no-weights] [--out dist]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.util
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from engine.request import DEFAULT_WEIGHTS

ROOT = Path(__file__).resolve().parent
ADDON_DIR = ROOT / "blender_addon"
ENGINE_DIR = ROOT / "engine"
MANIFEST = ROOT / "blender_manifest.toml"
WHEEL_DIST_NAME = "dualface_engine"
_SKIP_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
_SKIP_SUFFIXES = {".pyc", ".pyo", ".partial"}
# Fixed timestamp: the same sources give byte-identical archives.
_DATE = (2026, 1, 1, 0, 0, 0)


# What an in-process take in a stock Blender (numpy only) loads from the wheel: checked in every build.
NUMPY_RUNTIME_FILES = (
    "engine/api.py",
    "engine/numpy_runtime/runtime.py",
    "engine/numpy_runtime/network.py",
    "engine/numpy_runtime/decode.py",
    "engine/numpy_runtime/safetensors.py",
    "engine/audio/stock_io.py",
    "engine/inference/chunking.py",
    "engine/assets/lexicon_en.txt",
)


class BuildError(RuntimeError):
    pass


def package_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and not (_SKIP_PARTS & set(p.relative_to(folder).parts))
        and p.suffix not in _SKIP_SUFFIXES
    )


def _write(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def build_engine_wheel(version: str, out_dir: Path) -> Path:
    """A py3-none-any wheel of engine/ (code and assets), written without needing pip or network."""
    wheel = out_dir / f"{WHEEL_DIST_NAME}-{version}-py3-none-any.whl"
    dist_info = f"{WHEEL_DIST_NAME}-{version}.dist-info"
    records: list[str] = []

    def add(archive, name: str, data: bytes) -> None:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        records.append(f"{name},sha256={digest},{len(data)}")
        _write(archive, name, data)

    with zipfile.ZipFile(wheel, "w") as archive:
        for path in package_files(ENGINE_DIR):
            add(archive, f"engine/{path.relative_to(ENGINE_DIR).as_posix()}", path.read_bytes())
        metadata = (
            f"Metadata-Version: 2.1\nName: {WHEEL_DIST_NAME}\nVersion: {version}\n"
            "Summary: DualFace engine (voice to facial animation)\nLicense: GPL-3.0-or-later\n"
            "Requires-Python: >=3.11\n"
        )
        add(archive, f"{dist_info}/METADATA", metadata.encode())
        add(
            archive,
            f"{dist_info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: dualface build_addon\n"
            b"Root-Is-Purelib: true\nTag: py3-none-any\n",
        )
        missing = [name for name in NUMPY_RUNTIME_FILES if not (ROOT / name).is_file()]
        if missing:
            raise BuildError(
                f"the engine wheel would lack {missing}: the numpy runtime cannot run without them"
            )
        add(archive, f"{dist_info}/top_level.txt", b"engine\n")
        records.append(f"{dist_info}/RECORD,,")
        _write(archive, f"{dist_info}/RECORD", ("\n".join(records) + "\n").encode())
    return wheel


def build(out_dir: Path, weights: Path | None, manifest_path: Path = MANIFEST) -> Path:
    manifest = tomllib.loads(manifest_path.read_text(encoding="utf-8"))
    version = manifest["version"]
    if weights is not None and not weights.is_file():
        raise BuildError(
            f"weights not found: {weights} -- train or download them first (see README), "
            "pass --weights PATH, or build a development zip with --no-weights"
        )
    expected_wheel = f"./wheels/{WHEEL_DIST_NAME}-{version}-py3-none-any.whl"
    if manifest.get("wheels") != [expected_wheel]:
        raise BuildError(
            f'blender_manifest.toml must list wheels = ["{expected_wheel}"] for version {version}'
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = build_engine_wheel(version, out_dir)
    target = out_dir / f"dualface-{version}.zip"
    partial = target.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w") as archive:
        _write(archive, "blender_manifest.toml", manifest_path.read_bytes())
        for path in package_files(ADDON_DIR):
            _write(archive, path.relative_to(ADDON_DIR).as_posix(), path.read_bytes())
        _write(archive, f"wheels/{wheel.name}", wheel.read_bytes())
        if weights is not None:
            info = zipfile.ZipInfo("weights/dualface.safetensors", date_time=_DATE)
            info.compress_type = zipfile.ZIP_STORED  # float weights do not compress
            info.external_attr = 0o644 << 16
            archive.writestr(info, weights.read_bytes())
            sidecar = weights.with_suffix(".json")  # engine.weights' integrity side-car
            if sidecar.is_file():
                _write(archive, "weights/dualface.json", sidecar.read_bytes())
    partial.replace(target)
    wheel.unlink()
    return target


def validator_command(archive: Path) -> list[str]:
    """Blender's own `extension validate`: from the bpy module's scripts when installed (no bpy
    import needed), else a `blender` executable on PATH."""
    spec = importlib.util.find_spec("bpy")
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            found = sorted(Path(root).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
            if found:
                return [sys.executable, str(found[-1]), "validate", str(archive)]
    blender = shutil.which("blender")
    if blender:
        return [blender, "--factory-startup", "--command", "extension", "validate", str(archive)]
    raise BuildError("cannot validate: install the bpy module (pip install bpy) or put `blender` on PATH")


def validate(archive: Path) -> None:
    result = subprocess.run(validator_command(archive), capture_output=True, text=True, timeout=300)
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0 or "error" in output.lower():
        raise BuildError(f"Blender's validator rejected {archive.name}:\n{output}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="checkpoint to bundle")
    parser.add_argument("--no-weights", action="store_true", help="development build without weights")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default dist/)")
    parser.add_argument("--skip-validate", action="store_true", help="do not run Blender's validator")
    options = parser.parse_args(argv)
    try:
        archive = build(options.out, None if options.no_weights else options.weights)
        if not options.skip_validate:
            validate(archive)
    except BuildError as error:
        print(f"build_addon: error: {error}", file=sys.stderr)
        return 1
    size = archive.stat().st_size / 1e6
    print(f"build_addon: wrote {archive} ({size:.1f} MB){'' if options.skip_validate else ', validated'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
