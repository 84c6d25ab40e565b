"""Starting the process engine's stage processes: what they receive, and every way start-up fails.

Invariant: a stage process that fails at any point of start-up (before its payload, while
reading it, after) makes ``fit`` raise ``StageProcessError`` with the reason within 30 s, and
no stage process outlives the fit.
"""

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from stage_helpers import stage_processes

from deinforeg_sklearn import DeInfoRegClassifier
from deinforeg_sklearn.blocks import Dense
from deinforeg_sklearn.engines import launch, setup
from deinforeg_sklearn.engines.launch import StageProcessError

HERE = os.path.dirname(__file__)

# A script's body: a 2-stage process fit on random data that prints what happened.
FIT = """
import time
import numpy as np
from deinforeg_sklearn import DeInfoRegClassifier
from deinforeg_sklearn.blocks import Dense
from deinforeg_sklearn.engines.launch import StageProcessError
from stage_helpers import stage_processes

def run(blocks):
    rng = np.random.RandomState(0)
    X, y = rng.randn(60, 6).astype(np.float32), rng.randint(0, 2, 60)
    est = DeInfoRegClassifier(blocks=blocks, devices=["cpu", "cpu"], engine="processes", max_iter=1)
    start = time.monotonic()
    try:
        est.fit(X, y)
        print("FITTED", est.score(X, y))
    except StageProcessError as exc:
        print("FAILED after", time.monotonic() - start, "s:", exc)
    print("LEFT", len(stage_processes()))
"""


def run_script(code: str, path=None) -> str:
    """Run ``code`` from standard input (``path`` None) or from a file; its standard output."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, *sys.path]))
    command = [sys.executable, "-"] if path is None else [sys.executable, str(path)]
    if path is not None:
        path.write_text(code)
    done = subprocess.run(
        command,
        input=code if path is None else None,
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "LEFT 0" in done.stdout, done.stdout
    return done.stdout


def seconds_to_failure(output: str) -> float:
    return float(output.split("FAILED after", 1)[1].split()[0])


def test_script_from_standard_input_trains():
    # multiprocessing's spawn would try to re-import "<stdin>" in each stage and die there
    code = FIT + "\nif __name__ == '__main__':\n    run([Dense(6), Dense(6)])\n"
    assert "FITTED" in run_script(code)


@pytest.mark.slow  # 8 s: a script in a subprocess that starts stages
def test_class_defined_in_standard_input_is_reported():
    # the stage cannot unpickle a block class that exists only in the caller's stdin script
    code = FIT + textwrap.dedent(
        """
        from torch import nn

        class Mine(nn.Linear):
            pass

        if __name__ == "__main__":
            run([Dense(6), lambda shape: Mine(shape[0], 6)])
        """
    )
    output = run_script(code)
    assert "pipeline stage 1 (a separate process) failed" in output
    assert "Define custom blocks in a module" in output
    assert seconds_to_failure(output) < 30


@pytest.mark.slow  # 10 s: a script in a subprocess that starts stages
def test_main_module_that_cannot_be_reimported(tmp_path):
    code = "if __name__ != '__main__':\n    raise ImportError('not importable on purpose')\n" + FIT
    code += "\nif __name__ == '__main__':\n    run([Dense(6), Dense(6)])\n"
    output = run_script(code, tmp_path / "script.py")
    assert "not importable on purpose" in output  # the stage's own traceback
    assert seconds_to_failure(output) < 30


def test_script_without_main_guard(tmp_path):
    # each stage re-imports the main module, which would start a fit of its own
    output = run_script(FIT + "\nrun([Dense(6), Dense(6)])\n", tmp_path / "script.py")
    assert "if __name__ == '__main__':" in output
    assert seconds_to_failure(output) < 30


def test_stage_that_dies_before_it_reaches_the_store(tmp_path, monkeypatch):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'no interpreter here' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(launch.spawn, "get_executable", lambda: str(fake))
    rng = np.random.RandomState(0)
    X, y = rng.randn(60, 6).astype(np.float32), rng.randint(0, 2, 60)
    est = DeInfoRegClassifier(blocks=[Dense(6)] * 2, devices=["cpu", "cpu"], engine="processes")
    start = time.monotonic()
    with pytest.raises(StageProcessError, match="exit code 3. Its standard error ends:\nno interpreter here"):
        est.fit(X, y)
    assert time.monotonic() - start < 30
    assert not stage_processes() and not hasattr(est, "network_")


def test_helper_ranks_receive_no_rows(monkeypatch):
    sizes = []
    dumps = setup.dumps

    def measured(obj):
        payload = dumps(obj)
        sizes.append(len(payload))
        return payload

    monkeypatch.setattr(setup, "dumps", measured)
    rng = np.random.RandomState(0)
    X, y = rng.randn(20_000, 64).astype(np.float32), rng.randint(0, 2, 20_000)  # 5 MB
    DeInfoRegClassifier(
        blocks=[Dense(8)] * 2, devices=["cpu", "cpu"], engine="processes", max_iter=1, batch_size=2000
    ).fit(X, y)
    assert len(sizes) == 1 and sizes[0] < 200_000  # the network and the batch order only


def test_helper_plan_keeps_shapes_not_rows():
    from deinforeg_sklearn.estimators._plan import make_plan
    from deinforeg_sklearn.training.plan import FitPlan

    X = np.zeros((50, 12), dtype=np.float32)
    plan, _ = make_plan(
        X,
        np.arange(50) % 2,
        (12,),
        validation_fraction=0.2,
        batch_size=8,
        epochs=1,
        tokens=True,
        augment=None,
        seed=0,
        device=torch.device("cpu"),
    )
    helper = setup.helper_plan(plan)
    assert isinstance(helper, FitPlan)
    assert helper.X.shape == (0, 12) and helper.y.shape == (0,)
    assert helper.mask_steps == plan.mask_steps == 12  # token input: the mask still travels
    assert helper.n_batches == plan.n_batches


def test_failed_start_of_a_later_stage_stops_the_earlier_ones(monkeypatch):
    real_popen, calls = launch.subprocess.Popen, []

    def second_fails(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise OSError("cannot start another process")
        return real_popen(*args, **kwargs)

    monkeypatch.setattr(launch.subprocess, "Popen", second_fails)
    rng = np.random.RandomState(0)
    X, y = rng.randn(60, 6).astype(np.float32), rng.randint(0, 2, 60)
    est = DeInfoRegClassifier(blocks=[Dense(6)] * 3, devices=["cpu"] * 3, engine="processes")
    with pytest.raises(OSError, match="cannot start another process"):
        est.fit(X, y)
    assert len(calls) == 2 and not stage_processes()
