"""What ``ailive run`` loads: a show's process holds only what a show uses (memory on a small front-of-house computer).

Checked in a fresh interpreter, as the bridge starts: the CLI, the run path,
the JACK source and the default model loaded and stepped once.
"""
from __future__ import annotations

import json
import subprocess
import sys

#: Never in a show's process: plotting, training and data rendering, filter design and statistics, the web server.
NOT_IN_A_SHOW = ("matplotlib", "torch", "onnx", "scipy.signal", "scipy.stats", "scipy.optimize", "pyloudnorm",
                 "pretty_midi", "music21", "pyroomacoustics", "yaml", "aiohttp", "aiomqtt", "soundfile", "jack",
                 "ailive.models.train", "ailive.models.data", "ailive.bridge.offline.demo", "ailive.bridge.offline.evaluate",
                 "ailive.bridge.offline.evalreport", "ailive.bridge.remote.web", "ailive.consoles.sim.harness")

RUN_PATH = """
import json, sys
import numpy as np
import ailive.bridge.cli, ailive.bridge.runner, ailive.bridge.audio
from ailive.models.registry import default_model, load_model
model = load_model(default_model())
state = model.initial_state(8, 48000)
model.step(state, np.zeros((8, 2400), np.float32))
print(json.dumps({"model": default_model(), "modules": sorted(sys.modules)}))
"""


def loaded(code: str) -> dict:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def test_the_run_path_loads_nothing_a_show_does_not_use():
    seen = loaded(RUN_PATH)
    assert seen["model"] == "alm-mr"
    modules = set(seen["modules"])
    assert "onnxruntime" in modules  # the check itself sees what the run path imports
    assert sorted(name for name in NOT_IN_A_SHOW if name in modules) == []


def test_the_tap_process_loads_neither_the_model_nor_the_desk():
    seen = loaded("import json, sys, ailive.bridge.audio.tap_process; print(json.dumps({'modules': sorted(sys.modules)}))")
    modules = set(seen["modules"])
    assert "ailive.bridge.audio.tap_ring" in modules
    assert sorted(name for name in (*NOT_IN_A_SHOW, "onnxruntime", "scipy", "ailive.models.registry",
                                    "ailive.consoles.driver", "click", "rich") if name in modules) == []
