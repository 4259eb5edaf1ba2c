"""Training engine: optimizers, LR schedules, loss, train step, EMA, checkpoints, metrics, data parallel, trainer."""

from .loss import CrossEntropySmooth, create_loss
from .optim import create_optimizer
from .scheduler import create_scheduler

__all__ = ["CrossEntropySmooth", "create_loss", "create_optimizer", "create_scheduler"]
