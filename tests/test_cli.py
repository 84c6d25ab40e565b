import re
import subprocess
import sys

import pytest

from deinforeg_sklearn.cli import format_table, main, run_demo


def test_demo_rows_and_table():
    rows = run_demo(max_iter=2)
    assert [r[0] for r in rows] == ["DeInfoReg", "BP"]
    assert all(0.0 <= acc <= 1.0 and sec > 0 for _, acc, sec in rows)
    table = format_table(rows)
    assert "DeInfoReg" in table and "test accuracy" in table


def test_main_prints_table(capsys):
    assert main(["demo", "--max-iter", "1"]) == 0
    out = capsys.readouterr().out
    assert "DeInfoReg" in out and "BP" in out and "fit time" in out


@pytest.mark.slow
def test_console_script_full_demo():
    out = subprocess.run(
        [sys.executable, "-m", "deinforeg_sklearn.cli", "demo"], capture_output=True, text=True, check=True
    ).stdout
    rows = [m.groups() for m in re.finditer(r"^(DeInfoReg|BP)\s+([0-9.]+)\s+([0-9.]+)$", out, re.MULTILINE)]
    assert [r[0] for r in rows] == ["DeInfoReg", "BP"]
    assert all(float(acc) >= 0.95 for _, acc, _ in rows)
