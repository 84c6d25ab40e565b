"""Local losses: the information-regularisation loss of DeInfoReg (paper Eq. 2-8, Algorithm 1)."""

from deinforeg_sklearn.losses.info_regularization import (
    LOSS_TERMS,
    info_regularization_loss,
)

__all__ = ["LOSS_TERMS", "info_regularization_loss"]
