"""Same-shaped DeInfoReg blocks trained as one computation over stacked parameters.

Why: a dense block step is about 190 small tensor operations, and on a CPU their dispatch, not
their arithmetic, sets the time. Blocks 2-12 of ``[Dense(128)] * 12`` have equal shapes; in the
wavefront (``engines/wavefront.py``) they all train in the same tick, each on its own batch, so
their forwards, losses, backwards and optimiser steps can run as one batched kernel each
(``baddbmm`` for the linear layers, one BatchNorm over the blocks' channels side by side, the
batched local loss of ``losses/batched.py``).

Layout. Inside an epoch all parameters of a group live in one buffer, a (B, ...) chunk per
parameter for B blocks, and their gradients in another. Two sets of views share that storage:
the stacked leaves the batched forward reads (the chunks), and each block's own
``nn.Parameter`` s, whose ``.data`` and ``.grad`` point at their row. So autograd accumulates the
stacked gradients straight into every block's ``.grad``, and each block's own optimiser takes
its own step, unchanged: Adam (fused), SGD and LARS alike, bit for bit the kernel and the
tensor sizes of the sequential loop, with no optimiser state to copy.

Invariant (``tests/test_wavefront.py``): between epochs the blocks own their storage again
(:meth:`StackedGroup.release`, also after an error or Ctrl-C), so ``network_``, ``state_dict``,
pickles, snapshots and checkpoints never see how the blocks were trained.

A narrower first block. The first block of a network usually reads the data, narrower than the
blocks' width (digits' 64 features before ``[Dense(256)] * 4``), so its first weight has
another shape and it would train on its own beside the stack. A group may start with such a
block (:func:`pads_into`): its input is padded with zero columns to the others' width and its
row of the stacked first weight holds its weight in the first columns and zeros after them.
The zero columns add exact zeros to every sum, so its forward and gradient keep their bits
(``tests/test_wavefront.py``). Its own weight keeps its own storage (a fused Adam step on a
strided view of the wider row rounds differently, measured), and the group copies it into the
row after each step and the row's gradient back before each (:meth:`StackedGroup.update`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deinforeg_sklearn.blocks.dense import DenseEncoder
from deinforeg_sklearn.losses.batched import BatchedInfoRegularization, batched_label_similarity
from deinforeg_sklearn.training.decoupled import DECOUPLED_STATS, LocalBlock
from deinforeg_sklearn.training.step import StepTrainer

#: Layers a stacked block may contain: they have a batched form below.
_SUPPORTED = (nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Tanh, nn.Flatten, nn.Identity)


#: Side by side, block j's BatchNorm channels start at j * D. torch's CPU kernel runs channels
#: in vectors of up to 16 floats (fused multiply-adds) and a leftover tail in scalar code, so a
#: channel computes the block's own bits only where D fills whole vectors: D a multiple of 16.
_BATCH_NORM_ALIGN = 16


def label_target(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """The (N, N) float64 label similarity of one batch, which its blocks' local losses share."""
    return batched_label_similarity(y.unsqueeze(0), n_classes)[0]


def _layers(module: nn.Module) -> list[nn.Module]:
    """The leaf layers of ``module`` in order (a Sequential's children, or the module itself)."""
    if isinstance(module, nn.Sequential):
        return [leaf for child in module for leaf in _layers(child)]
    return [module]


def block_layers(block: nn.Module) -> tuple[list[nn.Module], list[nn.Module], list[nn.Module]] | None:
    """Encoder, projector and classifier layers of a block that can be stacked, else None."""
    if type(block) is not LocalBlock or type(block.encoder) is not DenseEncoder:
        return None
    parts = (_layers(block.encoder.net), _layers(block.projector), _layers(block.classifier))
    for layer in (layer for part in parts for layer in part):
        if type(layer) not in _SUPPORTED:
            return None
        if isinstance(layer, nn.Flatten) and (layer.start_dim, layer.end_dim) != (1, -1):
            return None
        if isinstance(layer, nn.BatchNorm1d) and (
            layer.momentum is None or not layer.affine or layer.num_features % _BATCH_NORM_ALIGN
        ):
            return None
    return parts


def _layer_key(layer: nn.Module) -> tuple:
    shapes = tuple((name, tuple(p.shape), p.dtype, p.device) for name, p in layer.named_parameters())
    extra = ()
    if isinstance(layer, nn.BatchNorm1d):
        extra = (layer.eps, layer.momentum, layer.track_running_stats)
    return (type(layer), shapes, extra)


def stacking_key(trainer: StepTrainer) -> tuple | None:
    """Blocks with equal keys (and equal step counts) can train as one stacked group."""
    parts = block_layers(trainer.unit)
    if parts is None or trainer.precision != "32" or trainer.compile:
        return None  # the stacked forward runs in float32, eagerly
    if not trainer.unit.config.weights[1]:
        return None  # without invariance a narrow block's loss takes the column form, not the Gram form
    params = list(trainer.unit.parameters())
    if not all(p.requires_grad and p.is_contiguous() for p in params):
        return None
    layers = tuple(tuple(_layer_key(layer) for layer in part) for part in parts)
    return (layers, trainer.unit.config)


def _without_first_width(key: tuple) -> tuple:
    """A stacking key with the input width of the block's first linear layer left out."""
    layers, config = key
    encoder = list(layers[0])
    for i, (kind, shapes, extra) in enumerate(encoder):
        if kind is nn.Linear:
            loose = tuple((name, shape[:1], *rest) for name, shape, *rest in shapes)
            encoder[i] = (kind, loose, extra)
            break
    return ((tuple(encoder), *layers[1:]), config)


def _first_linear(trainer: StepTrainer) -> nn.Linear:
    parts = block_layers(trainer.unit)
    assert parts is not None
    return next(layer for layer in parts[0] if isinstance(layer, nn.Linear))


#: A narrower block joins a group when its zero-padded input adds at most this share to the
#: multiply-adds of its linear layers' forward and backward (zero columns cost as much as real ones).
_MAX_PADDING_SHARE = 0.5


def pads_into(narrow: StepTrainer, wide: StepTrainer) -> bool:
    """Whether ``narrow`` can train stacked with blocks like ``wide``, its input zero-padded.

    True when the two blocks differ only in the input width of their first linear layer,
    ``narrow``'s is the smaller, and the padding adds at most half to ``narrow``'s
    multiply-adds per row: forward and weight gradient of the first layer (its input needs no
    gradient), forward and both gradients of the others. On digits before ``Dense(256)`` that
    share is 0.41; before ``Dense(4096)`` it is 0.65, and the block stays on its own.
    """
    a, b = stacking_key(narrow), stacking_key(wide)
    if a is None or b is None or a == b or _without_first_width(a) != _without_first_width(b):
        return False
    small, large = _first_linear(narrow), _first_linear(wide)
    if small.in_features >= large.in_features:
        return False
    parts = block_layers(narrow.unit)
    assert parts is not None
    linears = [layer for part in parts for layer in part if isinstance(layer, nn.Linear)]
    own = sum((2 if layer is small else 3) * layer.in_features * layer.out_features for layer in linears)
    extra = 2 * (large.in_features - small.in_features) * small.out_features
    return extra <= _MAX_PADDING_SHARE * own


def stack_groups(trainers: Sequence[StepTrainer], min_size: int = 2) -> list[tuple[int, int]]:
    """Runs ``(first, last + 1)`` of consecutive units that can train stacked (``min_size`` at least).

    A run holds units of one :func:`stacking_key`, and may start with one narrower unit that
    :func:`pads_into` them.
    """
    keys = [stacking_key(t) for t in trainers]
    runs, start, n = [], 0, len(trainers)
    while start < n:
        if keys[start] is None:
            start += 1
            continue
        ref = start
        if start + 1 < n and pads_into(trainers[start], trainers[start + 1]):
            ref = start + 1
        end = ref + 1
        while end < n and keys[end] == keys[ref]:
            end += 1
        if end - start >= min_size:
            runs.append((start, end))
        start = end
    return runs


def step_all(trainers: Sequence[StepTrainer]) -> None:
    """Every trainer's optimiser step, as ``trainer.update()`` takes it, with less dispatch.

    ``Optimizer.step`` costs about 150 us of Python per call on a CPU, more than the fused Adam
    kernel it launches for a block of 128-wide layers. For trainers whose optimiser is a fused,
    single-group Adam with its state already made, the same kernel is called here directly,
    on the same tensors with the same arguments, so the weights are the same bits; their step
    counts are advanced in one call. Everything else (other optimisers, a first step, gradient
    recording, a loss scaler) goes through ``trainer.update()``.
    """
    direct = []
    for trainer in trainers:
        if _direct_adam(trainer):
            direct.append(trainer)
        else:
            trainer.update()
    if not direct:
        return
    states = [
        [trainer.optimizer.state[p] for p in trainer.optimizer.param_groups[0]["params"]]
        for trainer in direct
    ]
    torch._foreach_add_([s["step"] for block in states for s in block], 1)
    for trainer, block in zip(direct, states, strict=True):
        group = trainer.optimizer.param_groups[0]
        params = group["params"]
        beta1, beta2 = group["betas"]
        torch._fused_adam_(
            params,
            [p.grad for p in params],
            [s["exp_avg"] for s in block],
            [s["exp_avg_sq"] for s in block],
            [],
            [s["step"] for s in block],
            amsgrad=False,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=False,
            grad_scale=None,
            found_inf=None,
        )
        trainer.steps_done += 1


def _direct_adam(trainer: StepTrainer) -> bool:
    optimizer = trainer.optimizer
    if (
        type(optimizer) is not torch.optim.Adam
        or len(optimizer.param_groups) != 1
        or not hasattr(torch, "_fused_adam_")
    ):
        return False
    group = optimizer.param_groups[0]
    plain = group["fused"] and not (
        group["amsgrad"] or group["maximize"] or group["capturable"] or group["differentiable"]
    )
    if (
        not plain
        or isinstance(group["lr"], torch.Tensor)
        or trainer.record_gradients
        or trainer.precision == "16"
    ):
        return False
    if optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks:
        return False
    return all(p.grad is not None and "step" in optimizer.state.get(p, {}) for p in group["params"])


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward hands on a contiguous gradient.

    The gradient that BatchNorm's backward returns here is a transposed view of its side-by-side
    layout. Summed over the rows for the bias of the linear layer before it, such a view adds in
    another order than the block's own (N, D) gradient (seen at widths 16 and 48), and that bias's
    gradient is rounding noise (BatchNorm removes the bias), which Adam scales up to steps of
    the learning rate. Made contiguous, the sum is the block's own, bit for bit.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous()


class _StackedLinear(torch.autograd.Function):
    """``x @ weight^T + bias`` over a stack, (B, N, K) x (B, D, K) -> (B, N, D), whose gradients
    are the products a block's own ``F.linear`` backward computes.

    Why not ``baddbmm``'s own backward: it makes the weight's gradient as ``x^T @ grad`` (K x D)
    and transposes it, where autograd's ``addmm`` backward for ``F.linear`` computes
    ``grad^T @ x`` (D x K) to match the weight's layout. The two products sum in different
    orders on some CPU kernels (oneMKL with AVX512, seen for D = 7 and 10: the classifier's
    last layer), and the stacked fit drifted from the sequential one by an ulp per step. Here
    the weight's gradient is ``bmm(grad^T, x)``: the block's bits at 1 thread (measured for D
    from 7 to 256).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        if bias is None:
            return torch.bmm(x, weight.transpose(1, 2))
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        grad_x = torch.bmm(grad, weight) if ctx.needs_input_grad[0] else None
        grad_w = torch.bmm(grad.transpose(1, 2), x) if ctx.needs_input_grad[1] else None
        grad_b = grad.sum(dim=1) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


def _pick(t: torch.Tensor, rows: slice) -> torch.Tensor:
    """Rows ``rows`` of a stacked tensor; the tensor itself for ``slice(None)``."""
    return t if rows.start is None and rows.stop is None else t[rows]


class StackedGroup:
    """Consecutive same-shaped blocks of a network, trained as one stacked computation.

    Parameters
    ----------
    trainers : sequence of StepTrainer
        The group's trainers, in order; their units share one :func:`stacking_key`, except
        that the first may read fewer features (:func:`pads_into` the second).
    first : int
        Unit index of the group's first block.
    """

    def __init__(self, trainers: Sequence[StepTrainer], first: int) -> None:
        self.trainers = list(trainers)
        self.first = first
        self.size = len(self.trainers)
        self.blocks: list[LocalBlock] = [t.unit for t in self.trainers]  # type: ignore[misc]
        parts = block_layers(self.blocks[0])
        assert parts is not None
        self.n_encoder, self.n_projector = len(parts[0]), len(parts[1])
        self.layers = [layer for part in parts for layer in part]  # the first block's, for types
        self.config = self.blocks[0].config
        # a first block narrower at its input than the rest: its input and first weight padded
        self.narrow_width: int | None = None
        self.width = _first_linear(self.trainers[-1]).in_features
        if self.size > 1 and pads_into(self.trainers[0], self.trainers[1]):
            self.narrow_width = _first_linear(self.trainers[0]).in_features
        self.bound = False
        self.term_sums: torch.Tensor | None = None
        self.correct_sums: torch.Tensor | None = None

    # ------------------------------------------------------------------ shared storage
    def bind(self) -> None:
        """Move the blocks' parameters and BatchNorm statistics into the stacked storage."""
        per_block = [list(block.parameters()) for block in self.blocks]
        shapes = [p.shape for p in per_block[-1]]  # a full-width block's (the first may be narrower)
        total = self.size * sum(shape.numel() for shape in shapes)
        flat = torch.zeros(total, device=per_block[-1][0].device, dtype=per_block[-1][0].dtype)
        grad = torch.zeros_like(flat)
        self.params, offset = [], 0
        self._param_index = self._index_parameters()
        padded = self._padded = self._padded_position()
        self.narrow_weight: torch.Tensor | None = None
        for j, shape in enumerate(shapes):
            # one dense (B, *shape) chunk per parameter: the stacked leaf and its gradient obey
            # autograd's layout contract, and block b's parameter is the contiguous chunk[b]
            span = slice(offset, offset + self.size * shape.numel())
            chunk, grad_chunk = flat[span].view(self.size, *shape), grad[span].view(self.size, *shape)
            for b, params in enumerate(per_block):
                if b == 0 and j == padded:
                    # the narrow weight keeps its storage; its row is a zero-padded copy
                    own = params[j]
                    chunk[0, :, : own.shape[1]].copy_(own.detach())
                    own.grad = torch.zeros_like(own)
                    self.narrow_weight = own
                    continue
                chunk[b].copy_(params[j].detach())
                params[j].data = chunk[b]
                params[j].grad = grad_chunk[b]
            leaf = chunk.detach().requires_grad_()
            leaf.grad = grad_chunk
            self.params.append(leaf)
            offset = span.stop
        self.flat, self.grad = flat, grad
        self.running = [self._bind_statistics(i) for i in range(len(self.layers))]
        self.batches_seen = [0] * self.size
        self.bound = True

    def _padded_position(self) -> int | None:
        """Position in ``self.params`` of the first linear layer's weight, if the first block is narrow."""
        if self.narrow_width is None:
            return None
        i = next(i for i, layer in enumerate(self.layers) if isinstance(layer, nn.Linear))
        return self._param_index[i]["weight"]

    def stacked_input(self, b: int, h: torch.Tensor) -> torch.Tensor:
        """Block ``b``'s input as the stacked forward reads it: rows, zero-padded for a narrow block."""
        if b != 0 or self.narrow_width is None:
            return h
        rows = h.flatten(1)
        return F.pad(rows, (0, self.width - rows.shape[1]))

    def _own_layers(self, block: LocalBlock) -> list[nn.Module]:
        parts = block_layers(block)
        assert parts is not None
        return [layer for part in parts for layer in part]

    def _bind_statistics(self, i: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        layer = self.layers[i]
        if not (isinstance(layer, nn.BatchNorm1d) and layer.track_running_stats):
            return None
        own = [self._own_layers(block)[i] for block in self.blocks]
        mean = torch.stack([bn.running_mean for bn in own])
        var = torch.stack([bn.running_var for bn in own])
        for b, bn in enumerate(own):
            bn.running_mean, bn.running_var = mean[b], var[b]
        return mean, var

    def _index_parameters(self) -> dict[int, dict[str, int]]:
        """For each layer, the position in ``self.params`` of each of its parameters."""
        index, position = {}, 0
        for j, layer in enumerate(self.layers):
            names = [name for name, _ in layer.named_parameters()]
            index[j] = {name: position + k for k, name in enumerate(names)}
            position += len(names)
        return index

    def release(self) -> None:
        """Give every block its own storage back (after each epoch, and after an error)."""
        if not self.bound:
            return
        with torch.no_grad():
            for b, block in enumerate(self.blocks):
                for p in block.parameters():
                    p.data = p.data.clone()
                    p.grad = None if p.grad is None else p.grad.clone()
                for layer, running in zip(self._own_layers(block), self.running, strict=True):
                    if running is not None:
                        layer.running_mean = layer.running_mean.clone()
                        layer.running_var = layer.running_var.clone()
                        layer.num_batches_tracked.add_(self.batches_seen[b])
        self.bound = False
        self.narrow_weight = None
        del self.flat, self.grad, self.params, self.running

    # ------------------------------------------------------------------ one tick
    def forward(
        self, lo: int, hi: int, h: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Blocks ``lo:hi`` of the group (positions in it), each on its own batch, stacked.

        ``h`` is (hi - lo, N, ...) detached inputs, ``y`` (hi - lo, N) labels, ``target`` their
        (hi - lo, N, N) label similarity (None when the invariance weight is 0). Returns the
        outputs (attached), the summed loss (the backward's root), the per-block losses (for
        the finiteness check), the per-block terms (in ``DECOUPLED_STATS`` order) and correct
        counts.
        """
        rows = slice(lo, hi) if (lo, hi) != (0, self.size) else slice(None)
        for b in range(lo, hi):
            self.batches_seen[b] += (
                1  # what each block's BatchNorm1d would count (its own forward counts itself)
            )
        x = h.flatten(2) if h.dim() > 3 else h
        head = self.n_encoder + self.n_projector
        h_out = self._run(0, self.n_encoder, x, rows)
        z = self._run(self.n_encoder, head, h_out, rows)  # a dense encoder's features: its output
        logits = self._run(head, len(self.layers), z, rows)
        local, variance, invariance, covariance = BatchedInfoRegularization.apply(
            z, target, tuple(float(w) for w in self.config.weights)
        )
        n_stack, n_rows, n_classes = logits.shape
        ce = F.cross_entropy(logits.reshape(-1, n_classes), y.reshape(-1), reduction="none")
        ce = ce.view(n_stack, n_rows).mean(dim=1)
        losses = local + self.config.alpha * ce
        with torch.no_grad():
            terms = torch.stack((variance, invariance, covariance, ce, losses), dim=1)
            correct = (logits.argmax(dim=2) == y).sum(dim=1).to(losses.dtype)
        return h_out, losses.sum(), losses.detach(), terms, correct

    def stacks(self, n_rows: int) -> bool:
        """Whether a batch of ``n_rows`` rows runs stacked with the kernels of a block's own step.

        torch's CPU ``bmm`` multiplies tiny matrices (under 400 multiply-adds per product) in a
        loop of its own, where ``mm`` calls BLAS: the sums would differ in their last bits
        (measured: every shape with 400 or more agrees bit for bit).
        Such batches (a short last batch, very narrow blocks) run block by block instead.
        """
        linears = [layer for layer in self.layers if isinstance(layer, nn.Linear)]
        width = linears[-1].in_features  # the classifier reads z (BatchNorm and ReLU keep its width)
        products = [layer.in_features * layer.out_features * n_rows for layer in linears]
        products.append(n_rows * n_rows * width)  # the local loss's Gram matrix and gradient
        return min(products) >= 400

    def forward_alone(
        self, b: int, h: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Block ``b`` on its own batch through its own modules (their storage is the group's).

        Its gradient accumulates into its rows of the group's gradient buffer, as the stacked
        backward's do. Returns the output (attached) and the loss; the stats are added here.
        """
        h_out, loss, step = self.blocks[b].step_loss(h, y, mask)
        if not torch.isfinite(loss):
            raise FloatingPointError("non-finite loss")
        terms = torch.stack([step.terms[name] for name in DECOUPLED_STATS]).unsqueeze(0)
        correct = step.correct if step.correct is not None else torch.zeros((), device=loss.device)
        self.add_stats(b, b + 1, terms, correct.reshape(1), len(y))
        return h_out, loss

    def _run(self, start: int, stop: int, x: torch.Tensor, rows: slice) -> torch.Tensor:
        for i in range(start, stop):
            x = self._apply(i, self.layers[i], x, rows)
        return x

    def _apply(self, i: int, layer: nn.Module, x: torch.Tensor, rows: slice) -> torch.Tensor:
        # rows is slice(None) when every block of the group is active: no slicing, so the
        # backward adds straight into the gradient buffer instead of through a scatter
        if isinstance(layer, nn.Linear):
            weight, bias = self._layer_params(i)
            out = _StackedLinear.apply(x, _pick(weight, rows), None if bias is None else _pick(bias, rows))
            if i + 1 < len(self.layers) and isinstance(self.layers[i + 1], nn.BatchNorm1d):
                out = _ContiguousGrad.apply(out)
            return out
        if isinstance(layer, nn.BatchNorm1d):
            # the blocks' channels side by side: (N, B * D), one kernel, each channel normalised
            # over its own block's rows as in the block's own BatchNorm1d
            weight, bias = self._layer_params(i)
            n_stack, n_rows, width = x.shape
            side_by_side = x.transpose(0, 1).reshape(n_rows, n_stack * width)
            running = self.running[i]
            mean = var = None
            if running is not None:
                mean, var = _pick(running[0], rows).view(-1), _pick(running[1], rows).view(-1)
            out = F.batch_norm(
                side_by_side,
                mean,
                var,
                _pick(weight, rows).reshape(-1),
                _pick(bias, rows).reshape(-1),
                training=True,
                momentum=layer.momentum,
                eps=layer.eps,
            )
            return out.view(n_rows, n_stack, width).transpose(0, 1)
        if isinstance(layer, nn.ReLU):
            return F.relu(x)
        if isinstance(layer, nn.Tanh):
            return torch.tanh(x)
        return x  # Flatten of (N, D) rows, Identity

    def _layer_params(self, i: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        names = self._param_index[i]
        bias = names.get("bias")
        return self.params[names["weight"]], None if bias is None else self.params[bias]

    def clear_gradients(self) -> None:
        """Zero the gradient buffer before a tick's backward (one operation for all tensors)."""
        self.grad.zero_()
        if self.narrow_weight is not None:
            self.narrow_weight.grad.zero_()

    def set_rates(self, lo: int, hi: int) -> None:
        """Each active block's learning rate for its next step (before the tick's backward)."""
        for trainer in self.trainers[lo:hi]:
            trainer.set_rate()

    def update(self, lo: int, hi: int) -> None:
        """Each active block's own optimiser step, on its rows of the shared storage."""
        own = self.narrow_weight if lo == 0 else None
        if own is None:
            step_all(self.trainers[lo:hi])
            return
        row = self.params[self._padded]
        width = own.shape[1]
        with torch.no_grad():
            # the stacked backward's gradient (zero where the block ran alone, which wrote its
            # own), then the step, then the stepped weight back into its padded row
            own.grad.add_(row.grad[0, :, :width])
            step_all(self.trainers[lo:hi])
            row[0, :, :width].copy_(own)

    # ------------------------------------------------------------------ epoch statistics
    def add_stats(self, lo: int, hi: int, terms: torch.Tensor, correct: torch.Tensor, n_rows: int) -> None:
        """Add a tick's stats of blocks ``lo:hi`` (each batch weighted by its rows)."""
        if self.term_sums is None or self.correct_sums is None:
            self.term_sums = torch.zeros(
                (self.size, len(DECOUPLED_STATS)), dtype=terms.dtype, device=terms.device
            )
            self.correct_sums = torch.zeros(self.size, dtype=terms.dtype, device=terms.device)
        self.term_sums[lo:hi] += terms * n_rows
        self.correct_sums[lo:hi] += correct

    def take_stats(self) -> dict[int, tuple[tuple[str, ...], np.ndarray, float | None]]:
        """The epoch's sums of each unit, as ``EpochStats.merge`` takes them; then reset."""
        if self.term_sums is None or self.correct_sums is None:
            return {}
        terms = self.term_sums.double().cpu().numpy()
        correct = self.correct_sums.double().cpu().numpy()
        self.term_sums = self.correct_sums = None
        return {self.first + b: (DECOUPLED_STATS, terms[b], float(correct[b])) for b in range(self.size)}
