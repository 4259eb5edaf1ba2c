"""One training step as one cell: forward, scaled backward, gradient all-reduce, overflow check, clip, update, EMA.

MindSpore's stock loss-scale cell reads an NPU overflow flag that does not exist on CPU, so this step checks the
gradients itself (``isfinite`` over every gradient, after the all-reduce so every rank decides alike). A step with
non-finite gradients is skipped (no weight, optimizer-state or EMA change); with a dynamic scale the scale is halved
(not below 1), and doubled after ``scale_window`` good steps in a row.
"""

from __future__ import annotations

import mindspore as ms
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops
from mindspore.context import ParallelMode

from .ema import EMA


def _unscale(scale: Tensor, grad: Tensor) -> Tensor:
    return grad * ops.cast(ops.reciprocal(scale), grad.dtype)


def _all_finite(grad: Tensor) -> Tensor:
    return ops.isfinite(grad).all()


class TrainStep(nn.Cell):
    """``(images, labels) -> (loss, finite, loss_scale)`` for a network that returns the loss.

    Args:
        network: cell mapping the inputs to a scalar loss.
        optimizer: optimizer over the trainable parameters.
        loss_scale: the (initial) loss scale; 1 disables scaling.
        dynamic_loss_scale: adapt the scale to overflows.
        scale_window: good steps before the scale doubles.
        clip_grad, clip_value: clip the gradients to this global norm.
        ema: EMA updated after each applied step.
    """

    def __init__(self, network: nn.Cell, optimizer: nn.Optimizer, loss_scale: float = 1.0,
                 dynamic_loss_scale: bool = False, scale_window: int = 1000, clip_grad: bool = False,
                 clip_value: float = 15.0, ema: EMA | None = None) -> None:
        super().__init__(auto_prefix=False)
        self.network = network
        self.network.set_grad()
        self.optimizer = optimizer
        self.weights = ParameterTuple(optimizer.parameters)
        self.grad = ops.GradOperation(get_by_list=True, sens_param=True)
        self.hyper_map = ops.HyperMap()
        self.scale_sense = Parameter(Tensor(loss_scale, ms.float32), name="scale_sense", requires_grad=False)
        self.good_steps = Parameter(Tensor(0, ms.int32), name="loss_scale_good_steps", requires_grad=False)
        self.dynamic = dynamic_loss_scale
        self.scale_window = scale_window
        self.clip_grad = clip_grad
        self.clip_value = clip_value
        self.ema = ema
        self.use_ema = ema is not None
        parallel_mode = ms.get_auto_parallel_context("parallel_mode")
        self.reduce = parallel_mode in (ParallelMode.DATA_PARALLEL, ParallelMode.HYBRID_PARALLEL)
        self.grad_reducer = nn.Identity()
        if self.reduce:
            from mindspore.communication import get_group_size

            self.grad_reducer = nn.DistributedGradReducer(
                self.weights, ms.get_auto_parallel_context("gradients_mean"), get_group_size()
            )

    def construct(self, images: Tensor, labels: Tensor):
        scale = self.scale_sense * 1.0
        loss = self.network(images, labels)
        sens = ops.ones_like(loss) * ops.cast(scale, loss.dtype)
        grads = self.grad(self.network, self.weights)(images, labels, sens)
        grads = self.grad_reducer(grads)
        grads = self.hyper_map(ops.partial(_unscale, scale), grads)
        finite = ops.stack(self.hyper_map(_all_finite, grads)).all()
        if self.dynamic:
            loss = ops.depend(loss, self._update_scale(scale, finite))
        if self.clip_grad:
            grads = ops.clip_by_global_norm(grads, self.clip_value)
        if finite:
            loss = ops.depend(loss, self.optimizer(grads))
            if self.use_ema:
                loss = ops.depend(loss, self.ema())
        return loss, finite, scale

    def _update_scale(self, scale: Tensor, finite: Tensor) -> Tensor:
        good = ops.select(finite, self.good_steps + 1, ops.zeros_like(self.good_steps))
        new_scale = ops.select(finite, scale, ops.maximum(scale * 0.5, ops.ones_like(scale)))
        grow = good >= self.scale_window
        new_scale = ops.select(grow, new_scale * 2.0, new_scale)
        good = ops.select(grow, ops.zeros_like(good), good)
        ops.assign(self.good_steps, good)
        return ops.assign(self.scale_sense, new_scale)

    def state(self) -> dict[str, Parameter]:
        """Loss-scale state for the checkpoint."""
        return {"scale_sense": self.scale_sense, "loss_scale_good_steps": self.good_steps}
