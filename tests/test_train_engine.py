"""Engine pieces on a tiny network: schedules, loss, optimizers, train step (modes, loss scale, clipping), EMA, AMP."""

from __future__ import annotations

import math
import os
import socket

import mindspore as ms
import numpy as np
import psutil
import pytest
from mindspore import Tensor, nn, ops

from mindcv_mobilenet.engine.amp import apply_amp
from mindcv_mobilenet.engine.checkpoint_manager import CheckpointManager
from mindcv_mobilenet.engine.distributed import DistInfo, Reducer, launcher, mpi_world
from mindcv_mobilenet.engine.ema import EMA
from mindcv_mobilenet.engine.loss import CrossEntropySmooth
from mindcv_mobilenet.engine.metrics import evaluate, topk_correct
from mindcv_mobilenet.engine.mpi_cluster import choose_scheduler_address, join_cluster_under_mpirun
from mindcv_mobilenet.engine.optim import Momentum, create_optimizer, param_groups
from mindcv_mobilenet.engine.scheduler import create_scheduler
from mindcv_mobilenet.engine.train_step import TrainStep
from mindcv_mobilenet.runtime import jit_forward
from mindcv_mobilenet.utils.checkpoint import load_model_weights, save_checkpoint
from mindcv_mobilenet.utils.errors import ConfigError


class Tiny(nn.Cell):
    """conv-BN-ReLU-pool-dense: every kind of parameter the MobileNets have, compiled in a second."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, has_bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Dense(4, classes)

    def construct(self, x):
        return self.fc(ops.mean(ops.relu(self.bn(self.conv(x))), axis=(2, 3)))


def _data(seed: int = 0, n: int = 4):
    rng = np.random.RandomState(seed)
    return Tensor(rng.randn(n, 3, 8, 8).astype(np.float32)), Tensor(rng.randint(0, 3, n).astype(np.int32))


def _tiny(seed: int = 0) -> Tiny:
    ms.set_seed(seed)
    return Tiny()


def _weights(net: nn.Cell) -> dict[str, np.ndarray]:
    return {p.name: p.asnumpy().copy() for p in net.get_parameters()}


def _run_steps(mode: int, steps: int = 3, opt: str = "momentum", jit: bool = False, **step_kw) -> tuple[list, dict]:
    ms.set_context(mode=mode)
    net = _tiny()
    if jit:
        jit_forward(net)
    optimizer = create_optimizer(net.trainable_params(), opt, 0.1, 1e-4, momentum=0.9)
    step = TrainStep(nn.WithLossCell(net, CrossEntropySmooth(0.1)), optimizer, **step_kw)
    step.set_train()
    losses = []
    for i in range(steps):
        loss, _, _ = step(*_data(i))
        losses.append(float(loss.asnumpy()))
    return losses, _weights(net)


# ---------------------------------------------------------------- schedules
def test_warmup_then_cosine():
    lrs = create_scheduler(10, "cosine_decay", lr=1.0, min_lr=0.1, warmup_epochs=2, num_epochs=12)
    assert len(lrs) == 120
    np.testing.assert_allclose(lrs[:20], np.arange(20) / 20, atol=1e-6)  # linear from 0
    assert lrs[20] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 9.9 / 10)), rel=1e-5)
    assert np.all(np.diff(lrs[20:]) <= 1e-7)


@pytest.mark.parametrize("name,kw,at_epoch,expected", [
    ("step_decay", dict(decay_epochs=2, decay_rate=0.5), 5, 0.25),
    ("multi_step_decay", dict(milestones=[1, 3], decay_rate=0.1), 3, 0.01),
    ("exponential_decay", dict(decay_rate=0.5), 2, 0.25),
    ("polynomial_decay", dict(decay_rate=2.0), 3, 0.25),
    ("constant", {}, 5, 1.0),
])
def test_decays(name, kw, at_epoch, expected):
    lrs = create_scheduler(4, name, lr=1.0, num_epochs=6, **kw)
    assert lrs[at_epoch * 4] == pytest.approx(expected, rel=1e-5)


def test_epoch_stair_and_errors():
    lrs = create_scheduler(5, "cosine_decay", lr=1.0, num_epochs=4, lr_epoch_stair=True)
    assert len(set(lrs[5:10].tolist())) == 1 and lrs[5] < lrs[0]
    with pytest.raises(ConfigError, match="unknown scheduler"):
        create_scheduler(5, "linear", num_epochs=2)


# ---------------------------------------------------------------- loss
def test_label_smoothing_and_soft_targets():
    logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]], np.float32)
    labels = np.array([0, 2], np.int32)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    s = 0.1
    target = np.full((2, 3), s / 3) + np.eye(3)[labels] * (1 - s)
    expected = -(target * logp).sum(1).mean()
    loss = CrossEntropySmooth(s)
    assert float(loss(Tensor(logits), Tensor(labels)).asnumpy()) == pytest.approx(expected, rel=1e-5)
    soft = np.array([[0.7, 0.3, 0.0], [0.0, 0.5, 0.5]], np.float32)  # mixup targets: used as given
    assert float(loss(Tensor(logits), Tensor(soft)).asnumpy()) == pytest.approx(-(soft * logp).sum(1).mean(), rel=1e-5)


# ---------------------------------------------------------------- optimizers
def test_weight_decay_groups_skip_bias_and_bn():
    groups = param_groups(_tiny().trainable_params(), 1e-4, True)
    assert sorted(p.name for p in groups[1]["params"]) == ["bn.beta", "bn.gamma", "fc.bias"]
    assert groups[0]["weight_decay"] == 1e-4 and groups[1]["weight_decay"] == 0.0


def test_rmsprop_is_tensorflow_style():
    """MindSpore's RMSProp: ms starts at 1 and eps is added inside the sqrt (TF), not after it (PyTorch)."""
    ms.set_context(mode=1)
    w = ms.Parameter(Tensor(np.array([1.0, -2.0], np.float32)), name="w")
    opt = create_optimizer([w], "rmsprop", lr=0.1, momentum=0.9, eps=1e-3, filter_bias_and_bn=False)
    grads = [np.array([0.5, 0.01], np.float32), np.array([-0.3, 0.02], np.float32)]
    ref_w, ms_, mom = np.array([1.0, -2.0]), np.ones(2), np.zeros(2)
    for g in grads:
        opt((Tensor(g),))
        ms_ = 0.9 * ms_ + 0.1 * g**2
        mom = 0.9 * mom + 0.1 * g / np.sqrt(ms_ + 1e-3)
        ref_w = ref_w - mom
    np.testing.assert_allclose(w.asnumpy(), ref_w, rtol=1e-5)


@pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE])
@pytest.mark.parametrize("setting", ["plain", "decay", "groups", "schedule"])
def test_momentum_kernel_matches_stock_optimizer(mode, setting):
    """One kernel call for every parameter (CPU) against nn.Momentum's ApplyMomentum per parameter: parameters,
    moments and step count after three steps, with weight decay (MindSpore's name filter or per group), per-group
    learning rates and a per-step schedule."""
    ms.set_context(mode=mode)
    nets = [_tiny(), _tiny()]
    lr = Tensor(np.array([0.3, 0.2, 0.1], np.float32)) if setting == "schedule" else 0.1
    decay = 1e-2 if setting == "decay" else 0.0

    def params(net):
        if setting != "groups":
            return net.trainable_params()
        groups = param_groups(net.trainable_params(), 1e-2, True, 0.1, [1.0, 0.5, 0.25, 1.0, 2.0])
        return [dict(g, lr=Tensor(np.float32(g["lr"]))) if "lr" in g else g for g in groups]

    ours, stock = Momentum(params(nets[0]), lr, 0.9, decay), nn.Momentum(params(nets[1]), lr, 0.9, decay)
    assert ours.update is not None
    steps = [nn.TrainOneStepCell(nn.WithLossCell(net, nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")),
                                 optimizer) for net, optimizer in zip(nets, (ours, stock), strict=True)]
    for i in range(3):
        losses = [float(step(*_data(i)).asnumpy()) for step in steps]
        assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for mine, theirs in zip(ours.get_parameters(), stock.get_parameters(), strict=True):  # weights, moments, step
        np.testing.assert_allclose(mine.asnumpy(), theirs.asnumpy(), rtol=1e-5, atol=1e-7, err_msg=mine.name)
    assert int(ours.global_step.asnumpy()[0]) == 3


@pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE])
def test_momentum_kernel_applies_nesterov(mode):
    """Nesterov against its formula (MindSpore 2.10's CPU ApplyMomentum ignores ``use_nesterov``; the kernel does
    what GPU and Ascend do)."""
    ms.set_context(mode=mode)
    w0 = np.array([1.0, -2.0, 0.5], np.float32)
    w = ms.Parameter(Tensor(w0), name="w")
    opt = Momentum([w], 0.1, 0.9, weight_decay=0.01, use_nesterov=True)
    want, moment = w0.astype(np.float64), np.zeros(3)
    for g in (np.array([0.5, 0.01, -1.0], np.float32), np.array([-0.3, 0.02, 0.4], np.float32)):
        opt((Tensor(g),))
        grad = g + 0.01 * want
        moment = 0.9 * moment + grad
        want = want - 0.1 * (grad + 0.9 * moment)
    np.testing.assert_allclose(w.asnumpy(), want, rtol=1e-6)


def test_momentum_takes_the_stock_path_where_the_kernel_does_not_apply():
    ms.set_context(mode=ms.PYNATIVE_MODE)
    net = _tiny()
    assert Momentum(net.trainable_params(), 0.1, 0.9, loss_scale=8.0).update is None
    assert Momentum(net.trainable_params(), 0.1, 0.9).update is not None


@pytest.mark.parametrize("opt", ["sgd", "adamw", "adam", "rmsprop"])
def test_every_optimizer_lowers_the_loss(opt):
    ms.set_context(mode=1)
    net = _tiny()
    lr = 0.01 if opt in ("adamw", "adam", "rmsprop") else 0.5
    step = TrainStep(nn.WithLossCell(net, CrossEntropySmooth()),
                     create_optimizer(net.trainable_params(), opt, lr, 0.0, momentum=0.5 if opt != "sgd" else 0.0))
    step.set_train()
    x, y = _data(0, 8)
    losses = [float(step(x, y)[0].asnumpy()) for _ in range(8)]
    assert losses[-1] < losses[0]


# ---------------------------------------------------------------- train step
def test_graph_and_pynative_agree():
    graph_losses, graph_weights = _run_steps(0)
    eager_losses, eager_weights = _run_steps(1)
    np.testing.assert_allclose(graph_losses, eager_losses, rtol=1e-5)
    for name, value in graph_weights.items():
        np.testing.assert_allclose(value, eager_weights[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_pynative_with_a_jit_forward_agrees():
    eager_losses, eager_weights = _run_steps(1)
    jit_losses, jit_weights = _run_steps(1, jit=True)
    np.testing.assert_allclose(jit_losses, eager_losses, rtol=1e-5)
    for name, value in jit_weights.items():
        np.testing.assert_allclose(value, eager_weights[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_step_matches_a_plain_sgd_update():
    ms.set_context(mode=1)
    net = _tiny()
    wl = nn.WithLossCell(net, CrossEntropySmooth())
    wl.set_train()
    x, y = _data()
    before = {p.name: p.asnumpy().copy() for p in net.trainable_params()}
    _, grads = ms.value_and_grad(wl, None, net.trainable_params())(x, y)
    step = TrainStep(wl, create_optimizer(net.trainable_params(), "sgd", 0.1, 0.0, momentum=0.0), loss_scale=128.0)
    step.set_train()
    step(x, y)
    for p, g in zip(net.trainable_params(), grads, strict=True):  # the loss scale is undone exactly
        np.testing.assert_allclose(p.asnumpy(), before[p.name] - 0.1 * g.asnumpy(), rtol=1e-5, atol=1e-7)


def test_fixed_loss_scale_gives_the_same_training():
    plain, _ = _run_steps(1)
    scaled, _ = _run_steps(1, loss_scale=1024.0)
    np.testing.assert_allclose(plain, scaled, rtol=1e-5)


@pytest.mark.parametrize("mode", [0, 1])
def test_overflow_skips_the_update_and_lowers_a_dynamic_scale(mode):
    """Scale 3e38 and inputs of 1e4 overflow the float32 conv gradients while the loss stays finite (BN)."""
    ms.set_context(mode=mode)
    net = _tiny()
    optimizer = create_optimizer(net.trainable_params(), "momentum", 0.1, 0.0)
    step = TrainStep(nn.WithLossCell(net, CrossEntropySmooth()), optimizer, loss_scale=3e38,
                     dynamic_loss_scale=True, scale_window=2)
    step.set_train()
    before = {p.name: p.asnumpy().copy() for p in net.trainable_params()}
    x, y = _data()
    loss, finite, scale = step(x * 1e4, y)
    assert math.isfinite(float(loss.asnumpy())) and not bool(finite.asnumpy())
    assert float(scale.asnumpy()) == pytest.approx(3e38)
    assert float(step.scale_sense.asnumpy()) == pytest.approx(1.5e38)
    for p in net.trainable_params():
        np.testing.assert_array_equal(p.asnumpy(), before[p.name])
    assert int(optimizer.global_step.asnumpy()[0]) == 0  # the LR schedule does not advance either
    step.scale_sense.set_data(Tensor(4.0, ms.float32))
    for _ in range(2):
        assert bool(step(*_data())[1].asnumpy())
    assert float(step.scale_sense.asnumpy()) == pytest.approx(8.0)  # doubled after scale_window good steps


def test_gradient_clipping_bounds_the_update():
    ms.set_context(mode=1)
    net = _tiny()
    before = {p.name: p.asnumpy().copy() for p in net.trainable_params()}
    step = TrainStep(nn.WithLossCell(net, CrossEntropySmooth()),
                     create_optimizer(net.trainable_params(), "sgd", 1.0, 0.0, momentum=0.0),
                     clip_grad=True, clip_value=1e-3)
    step.set_train()
    step(*_data())
    change = math.sqrt(sum(((p.asnumpy() - before[p.name]) ** 2).sum() for p in net.trainable_params()))
    assert 0 < change <= 1e-3 * 1.001


@pytest.mark.parametrize("level", ["O1", "O2", "O3"])
def test_mixed_precision_trains_on_this_device(level):
    ms.set_context(mode=1)
    net = _tiny()
    names = [p.name for p in net.get_parameters()]
    network = apply_amp(net, level)
    assert [p.name for p in net.get_parameters()] == names
    step = TrainStep(nn.WithLossCell(network, CrossEntropySmooth()),
                     create_optimizer(net.trainable_params(), "momentum", 0.1, 0.0), loss_scale=1024.0,
                     dynamic_loss_scale=True)
    step.set_train()
    x, y = _data(0, 8)
    losses = [float(step(x, y)[0].asnumpy()) for _ in range(4)]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    assert all(p.dtype == ms.float32 for p in net.get_parameters())


# ---------------------------------------------------------------- EMA
def test_ema_follows_the_formula_and_loads_as_model_weights(tmp_path):
    ms.set_context(mode=1)
    net = _tiny()
    ema = EMA(net, decay=0.99)
    start = _weights(net)
    step = TrainStep(nn.WithLossCell(net, CrossEntropySmooth()),
                     create_optimizer(net.trainable_params(), "sgd", 0.5, 0.0, momentum=0.0), ema=ema)
    step.set_train()
    expected = dict(start)
    for i in range(3):
        step(*_data(i))
        d = 0.99 * (1 - math.exp(-(i + 1) / 2000))
        expected = {k: d * v + (1 - d) * p.asnumpy() for k, v in expected.items()
                    for p in net.get_parameters() if p.name == k}
    for p in ema.ema_weights:
        np.testing.assert_allclose(p.asnumpy(), expected[p.name[len("ema."):]], rtol=1e-5, atol=1e-7)
    path = str(tmp_path / "ema.ckpt")
    save_checkpoint({**{p.name: p for p in net.get_parameters()}, **ema.state()}, path)
    fresh = _tiny(seed=5)
    load_model_weights(fresh, path, ema=True)
    for p in fresh.get_parameters():
        np.testing.assert_allclose(p.asnumpy(), expected[p.name], rtol=1e-5, atol=1e-7)
    raw = _weights(net)
    with ema.swapped_in():
        np.testing.assert_allclose(net.fc.weight.asnumpy(), expected["fc.weight"], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(net.fc.weight.asnumpy(), raw["fc.weight"])


# ---------------------------------------------------------------- metrics, checkpoints, launchers
def test_topk_and_exact_evaluation():
    logits = np.array([[0.1, 0.9, 0.0], [0.8, 0.05, 0.15], [0.2, 0.3, 0.5]], np.float32)
    assert topk_correct(logits, np.array([1, 2, 0]), (1, 2, 5)) == [1, 2, 3]

    class Fixed(nn.Cell):
        def construct(self, x):
            return x

    batches = [(Tensor(logits[:2]), Tensor(np.array([1, 1], np.int32))),
               (Tensor(logits[2:]), Tensor(np.array([2], np.int32)))]  # a last smaller batch
    result = evaluate(Fixed(), batches, Reducer(DistInfo()))
    assert result["count"] == 3 and result["top1"] == pytest.approx(200 / 3)


def test_checkpoint_manager_keeps_last_and_best(tmp_path):
    manager = CheckpointManager(str(tmp_path), "m", keep_max=2)
    entries = {"w": np.zeros(2, np.float32)}
    for epoch in range(1, 5):
        manager.save(entries, epoch, epoch * 10)
    manager.save_best(entries)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-3_30.ckpt", "m-4_40.ckpt", "m_best.ckpt"]
    assert CheckpointManager(str(tmp_path), "m", 2, enabled=False).save(entries, 5, 50) is None


def test_the_launcher_is_read_from_the_environment():
    assert launcher({"OMPI_COMM_WORLD_SIZE": "4"}) == "mpirun"
    assert launcher({"PMI_SIZE": "4"}) == "mpirun"
    assert launcher({"MS_ROLE": "MS_WORKER", "OMPI_COMM_WORLD_SIZE": "4"}) == "msrun"
    # MindSpore's scheduler address set by an mpirun user (-x MS_SCHED_HOST=...) does not make it msrun
    assert launcher({"MS_SCHED_HOST": "10.0.0.1", "MS_SCHED_PORT": "8118", "OMPI_COMM_WORLD_SIZE": "4"}) == "mpirun"
    assert launcher({}) == ""


def test_a_rank_under_mpirun_joins_as_msrun_would_set_it():
    """Rank 1 of 2 with the scheduler's address given: no broadcast, no scheduler of its own, MindSpore's cluster
    variables as msrun sets them, returned and not written into the environment (the mpirun runs themselves:
    tests/test_distributed.py)."""
    env = {"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "2",
           "MS_SCHED_HOST": "127.0.0.1", "MS_SCHED_PORT": "18118"}
    before = dict(os.environ)
    assert join_cluster_under_mpirun(*mpi_world(env), env=env) == {
        "MS_WORKER_NUM": "2", "MS_SCHED_HOST": "127.0.0.1", "MS_SCHED_PORT": "18118", "MS_ROLE": "MS_WORKER",
        "MS_NODE_ID": "1", "RANK_ID": "1"}
    assert dict(os.environ) == before


def test_the_scheduler_address_under_mpirun():
    """Rank 0's choice: loopback and a free port on one host; MS_SCHED_HOST/PORT when the user sets them; across
    hosts rank 0's address on the route to mpirun's host (from Open MPI's URI of it)."""
    one_host = {"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_LOCAL_SIZE": "2", "OMPI_COMM_WORLD_RANK": "0"}
    host, port = choose_scheduler_address(one_host)
    assert host == "127.0.0.1" and 1024 <= port < 65536
    with socket.socket() as probe:
        probe.bind((host, port))  # it was free
    assert choose_scheduler_address({**one_host, "MS_SCHED_HOST": "10.1.2.3", "MS_SCHED_PORT": "8118"}) == (
        "10.1.2.3", 8118)
    own = [a.address for addresses in psutil.net_if_addrs().values() for a in addresses
           if a.family == socket.AF_INET and not a.address.startswith("127.")]
    if own:  # mpirun's host is this one, reached by its outward address: rank 0 offers that, not loopback
        two_hosts = {**one_host, "OMPI_COMM_WORLD_LOCAL_SIZE": "1",
                     "OMPI_MCA_orte_hnp_uri": f"3452567552.0;tcp://127.0.0.1,{own[0]}:41235"}
        assert choose_scheduler_address({**two_hosts, "MS_SCHED_PORT": "8118"}) == (own[0], 8118)
    assert mpi_world(one_host) == (0, 2) and mpi_world({}) is None
