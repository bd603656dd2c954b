"""The package as a user installs it: ``python -m build`` makes a wheel and an sdist that hold what a show needs.

``make test`` builds both and checks what is inside. ``make wheel-check``
(which CI runs) goes further: a fresh virtual environment with only the
wheel installed, run from a folder outside the checkout, plays the demo,
scores a folder of recordings and runs a show on the default model.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.test_cli import RunningSim

ROOT = Path(__file__).resolve().parent.parent
NAME, VERSION = "ailive_bridge", "0.1.0"
#: What the wheel must carry besides code: the demo's shows and multitrack, the shipped models, the desks, the web page.
SHIPPED = [
    *(f"ailive/bridge/examples/{desk}-demo.toml" for desk in ("x32", "xair", "wing", "digico")),
    *(f"ailive/bridge/examples/multitrack/{name}.flac" for name in
      ("01-kick", "02-snare", "03-bass", "04-guitar", "05-keys-l", "06-keys-r", "07-vocal", "08-talkback")),
    "ailive/bridge/examples/multitrack/target.toml",
    *(f"ailive/models/weights/{model}/{file}" for model in ("alm-mr", "alm-sr", "dmc-b-0l")
      for file in ("card.json", "slow.onnx", "fast.onnx")),
    "ailive/consoles/profiles/x32.toml",
    "ailive/bridge/remote/static/index.html",
    "ailive/bridge/audio/tap_process.py",
    "ailive/bridge/audio/tap_ring.py",
]
#: Only the train extra may bring these.
TRAINING_ONLY = ("torch", "onnx", "music21", "pretty_midi", "tinysoundfont", "pyroomacoustics")


def clean_copy(folder: Path) -> Path:
    """The checkout's files (tracked, or new and not ignored) without build leftovers such as a stale egg-info."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source, target = ROOT / name, folder / name
        if source.is_symlink() or source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """``python -m build`` on a clean copy of the checkout, with the build tools of this environment (no download)."""
    source = clean_copy(tmp_path_factory.mktemp("source"))
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
                            capture_output=True, text=True, timeout=300, cwd=out)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return {"wheel": out / f"{NAME}-{VERSION}-py3-none-any.whl", "sdist": out / f"{NAME}-{VERSION}.tar.gz"}


def test_the_wheel_holds_the_code_the_demo_the_models_and_the_desks(built):
    with zipfile.ZipFile(built["wheel"]) as wheel:
        names = set(wheel.namelist())
        metadata = Parser().parsestr(wheel.read(f"{NAME}-{VERSION}.dist-info/METADATA").decode())
        entry_points = wheel.read(f"{NAME}-{VERSION}.dist-info/entry_points.txt").decode()
        card = json.loads(wheel.read("ailive/models/weights/alm-mr/card.json"))
    assert sorted(path for path in SHIPPED if path not in names) == []
    assert not any(name.startswith(("tests/", "benchmarks/", "examples/")) for name in names)
    assert "ailive = ailive.bridge.cli:main" in entry_points
    assert card["name"] == "alm-mr"
    requirements = metadata.get_all("Requires-Dist")
    plain = {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() for r in requirements if "extra ==" not in r}
    assert {"onnxruntime", "numpy", "soundfile", "pyloudnorm"} <= plain
    assert plain.isdisjoint(TRAINING_ONLY)


def test_the_sdist_builds_the_same_package(built):
    with tarfile.open(built["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert "pyproject.toml" in names
    assert "bridge/examples/multitrack/07-vocal.flac" in names
    assert "models/weights/alm-mr/fast.onnx" in names


# ----- make wheel-check: the wheel alone ------------------------------------------------------


@pytest.fixture(scope="module")
def alone(built, tmp_path_factory) -> dict[str, Path]:
    """A fresh environment with only the wheel (and its runtime dependencies, from the package index) installed."""
    home = tmp_path_factory.mktemp("alone")
    venv.create(home / "env", with_pip=True)
    python = home / "env" / "bin" / "python"
    result = subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(built["wheel"])],
                            capture_output=True, text=True, timeout=900, cwd=home)
    assert result.returncode == 0, result.stderr[-3000:]
    return {"home": home, "python": python, "ailive": home / "env" / "bin" / "ailive"}


def run_alone(alone: dict[str, Path], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The installed ``ailive`` from a folder outside the checkout, with nothing of the checkout on its path."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(alone["home"]), "COLUMNS": "200"}
    return subprocess.run([str(alone["ailive"]), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=alone["home"], env=env)


@pytest.mark.wheel
def test_alone_nothing_comes_from_the_checkout_and_no_training_package_is_installed(alone):
    code = ("import importlib.util, json, ailive.bridge.cli\n"
            "print(json.dumps({'cli': ailive.bridge.cli.__file__,"
            f" 'training': [n for n in {TRAINING_ONLY!r} if importlib.util.find_spec(n)]}}))")
    result = subprocess.run([str(alone["python"]), "-c", code], capture_output=True, text=True, cwd=alone["home"],
                            env={"PATH": "/usr/bin:/bin"}, check=True)
    seen = json.loads(result.stdout)
    assert seen["cli"].startswith(str(alone["home"])) and "site-packages" in seen["cli"]
    assert seen["training"] == []


@pytest.mark.wheel
def test_alone_the_demo_runs_headless(alone):
    result = run_alone(alone, "demo", "--headless", "--out", "demo")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((alone["home"] / "demo" / "summary.json").read_text())
    assert summary["model"] == "alm-mr" and summary["moves"] > 0


@pytest.mark.wheel
def test_alone_eval_scores_a_folder_of_recordings(alone):
    shipped = alone["home"] / "env" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / \
        "site-packages" / "ailive" / "bridge" / "examples" / "multitrack"
    recordings = alone["home"] / "recordings"
    recordings.mkdir()
    channels = []
    for name in ("01-kick", "03-bass", "07-vocal"):
        samples, rate = soundfile.read(shipped / f"{name}.flac", dtype="float32")
        soundfile.write(recordings / f"{name}.flac", samples, rate)
        channels.append(samples)
    soundfile.write(recordings / "mix.flac", np.sum(channels, axis=0) * 0.5, rate)  # the reference mix
    result = run_alone(alone, "eval", "--models", "loudness,alm-mr", "--set", "recordings", "--out", "eval", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    scores = json.loads(result.stdout)["models"]
    assert set(scores) == {"loudness", "alm-mr"}
    assert all(s["gain_error_median_db"] is not None and s["loudness_diff_lu"] is not None for s in scores.values())


@pytest.mark.wheel
def test_alone_run_finds_its_default_model(alone):
    sim = RunningSim("x32")
    try:
        shipped = subprocess.run([str(alone["python"]), "-c", "from ailive.bridge.offline.demo import EXAMPLES; print(EXAMPLES)"],
                                 capture_output=True, text=True, cwd=alone["home"], check=True).stdout.strip()
        result = run_alone(alone, "run", f"{shipped}/x32-demo.toml", "--source", f"{shipped}/multitrack", "--fast",
                           "--duration", "3", "--headless", "--desk", f"127.0.0.1:{sim.port}", "--journal", "journal")
    finally:
        sim.stop()
    assert result.returncode == 0, result.stderr[-3000:]
    start = json.loads((alone["home"] / "journal" / "x32-demo.jsonl").read_text().splitlines()[0])
    assert start["kind"] == "start" and start["model"] == "alm-mr"
