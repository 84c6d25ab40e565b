"""Schedules that drive a network's step trainers over the batches of an epoch.

``sequential``: one device, unit after unit. ``threads``: one thread per stage in this
process. ``processes``: one process per stage (or per stage x data-parallel replica) over
torch.distributed. ``setup`` is the one entry point the estimators use: it measures, places,
chooses and starts the engine of a fit.
"""

from __future__ import annotations

from deinforeg_sklearn.engines.base import Engine
from deinforeg_sklearn.engines.choice import (
    SMALL_STEP_S,
    available_cores,
    cpu_threads_per_stage,
    default_engine,
)
from deinforeg_sklearn.engines.placement import (
    balance,
    check_placement,
    measure_block_costs,
    place_units,
    stage_units,
)
from deinforeg_sklearn.engines.processes import Boundary, ProcessEngine
from deinforeg_sklearn.engines.sequential import SequentialEngine
from deinforeg_sklearn.engines.setup import EngineRequest, start_engine
from deinforeg_sklearn.engines.threads import ThreadEngine
from deinforeg_sklearn.training.evaluate import evaluate_logits

__all__ = [
    "SMALL_STEP_S",
    "Boundary",
    "Engine",
    "EngineRequest",
    "ProcessEngine",
    "SequentialEngine",
    "ThreadEngine",
    "available_cores",
    "balance",
    "check_placement",
    "cpu_threads_per_stage",
    "default_engine",
    "evaluate_logits",
    "measure_block_costs",
    "place_units",
    "stage_units",
    "start_engine",
]
