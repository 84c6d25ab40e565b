"""An MLflow run per fit: the estimator's parameters once, each epoch's scalars as metrics."""

from __future__ import annotations

import time
from typing import Any

from deinforeg_sklearn.callbacks.base import Callback
from deinforeg_sklearn.callbacks.records import flat_record

#: MLflow's limit on a parameter value's length (longer reprs are cut, with a mark).
PARAM_CHARS = 6000


class MLflowLogger(Callback):
    """Log each fit as an MLflow run: parameters once, then the epoch's scalars at step ``epoch``.

    Metrics are the :func:`~deinforeg_sklearn.callbacks.flat_record` names (``block1/loss``,
    ``validation_score/2``, ``learning_rate``, ``time``...). The logger talks to the tracking
    server through its own ``mlflow.tracking.MlflowClient``, never through MLflow's global
    active run, so fits in one process (a search's candidates) cannot log into each other's
    runs. The client is made when the fit begins and dropped when it ends; a fit that fails
    ends its run as FAILED, a completed or stopped one as FINISHED. Needs the ``mlflow``
    extra: ``pip install "deinforeg-sklearn[mlflow]"`` (or ``mlflow``).

    Parameters
    ----------
    tracking_uri : str or None, default=None
        Where runs go, e.g. ``"http://mlflow:5000"`` or ``"sqlite:///mlflow.db"``; None:
        MLflow's own default (``MLFLOW_TRACKING_URI``, else its local store).
    experiment_name : str, default="deinforeg"
        Created if missing.
    run_name : str or None, default=None
        None: MLflow names the run.

    Attributes
    ----------
    run_id : str or None
        The run of the last fit (None before any).
    """

    def __init__(
        self, tracking_uri: str | None = None, experiment_name: str = "deinforeg", run_name: str | None = None
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.run_name = run_name

    def on_fit_begin(self, estimator: Any) -> None:
        try:
            from mlflow.entities import Param
            from mlflow.tracking import MlflowClient
        except ImportError as exc:
            raise ImportError(
                'MLflowLogger needs mlflow: pip install "deinforeg-sklearn[mlflow]" (or pip install mlflow).'
            ) from exc
        self.close()
        client = MlflowClient(tracking_uri=self.tracking_uri)
        experiment = client.get_experiment_by_name(self.experiment_name)
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else client.create_experiment(self.experiment_name)
        )
        run = client.create_run(
            experiment_id, run_name=self.run_name, tags={"estimator": type(estimator).__name__}
        )
        self._client, self.run_id = client, run.info.run_id
        params = [
            Param(name, _param_text(value))
            for name, value in sorted(estimator.get_params(deep=False).items())
        ]
        client.log_batch(self.run_id, params=params)

    def on_epoch_end(self, estimator: Any, record: dict) -> None:
        client = getattr(self, "_client", None)
        if client is None:
            return
        from mlflow.entities import Metric

        now, step = int(time.time() * 1000), int(record["epoch"])
        metrics = [
            Metric(name, value, now, step) for name, value in flat_record(record).items() if name != "epoch"
        ]
        client.log_batch(self.run_id, metrics=metrics)

    def on_fit_end(self, estimator: Any) -> None:
        self._end("FINISHED")

    def close(self) -> None:
        """End a run still open (the fit failed or was interrupted) as FAILED."""
        self._end("FAILED")

    def _end(self, status: str) -> None:
        client = getattr(self, "_client", None)
        self._client = None
        if client is not None:
            client.set_terminated(self.run_id, status=status)

    def __getstate__(self) -> dict:
        # never the client (it may hold connections); the last run's id is a plain string
        state = {k: v for k, v in self.__dict__.items() if k != "_client"}
        return state

    def __repr__(self) -> str:
        return f"MLflowLogger(tracking_uri={self.tracking_uri!r}, experiment_name={self.experiment_name!r})"


def _param_text(value: object) -> str:
    text = repr(value)
    return text if len(text) <= PARAM_CHARS else text[: PARAM_CHARS - 3] + "..."
