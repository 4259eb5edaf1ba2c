"""Training engine: the trainer and its parts (run, data, epoch, evaluation, checkpoints), optimizers, LR schedules,
loss, train step, EMA, metrics, data parallel."""

from .loss import CrossEntropySmooth, create_loss
from .optim import create_optimizer
from .scheduler import create_scheduler

__all__ = ["CrossEntropySmooth", "create_loss", "create_optimizer", "create_scheduler"]
