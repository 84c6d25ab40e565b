"""Local losses: DeInfoReg's information-regularisation loss (paper Eq. 2-8, Algorithm 1), and
the supervised contrastive loss of the SCPL baseline."""

from deinforeg_sklearn.losses.contrastive import supervised_contrastive_loss
from deinforeg_sklearn.losses.info_regularization import (
    LOSS_TERMS,
    info_regularization_loss,
)

__all__ = ["LOSS_TERMS", "info_regularization_loss", "supervised_contrastive_loss"]
