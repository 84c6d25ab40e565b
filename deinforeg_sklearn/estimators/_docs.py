"""Parameter descriptions that several estimators share, written once.

An estimator's docstring names a shared entry by a marker line, ``<<backward>>`` indented as
a parameter; :func:`shared_parameter_docs` puts the text in its place when the class is made,
so ``help()`` and the API pages read as if it were written out.
"""

from __future__ import annotations

SHARED_PARAMETERS: dict[str, str] = {
    "num_workers": """\
    num_workers : int, default=0
        For ``torch.utils.data.Dataset`` input (``fit(dataset)``, items ``(x, y)``): the
        DataLoader processes that load the next batches ahead (0: load in this process).
        Ignored for arrays.
""",
    "checkpoint": """\
    checkpoint : str, path or None, default=None
        A folder where ``fit`` writes its full training state after every epoch (network,
        optimiser, schedule position, random states, history, early stopping), atomically,
        in torch's format. A ``fit`` whose folder holds an unfinished fit of the same
        parameters and data shape resumes it after its last completed epoch and ends where
        the uninterrupted fit would; one of another configuration is an error that says how
        to start over. A finished fit's checkpoint is overwritten. ``{fit}`` in the path
        becomes a key of the fit's parameters and data, so that the candidates and folds of
        a search, which share one value, each write and resume their own subfolder (e.g.
        ``checkpoint="runs/{fit}"``). A fit holds its folder's lock while it runs: a second
        fit on a folder in use raises ``CheckpointInUseError`` before training.
        ``partial_fit`` ignores it. Load only checkpoints you wrote (they are pickles). See
        docs/user-guide/large-data.md.
""",
    "input_scale": """\
    input_scale : float or None, default=None
        Multiplies every batch once it is float32, e.g. ``1/255`` for 0-255 images. X is read
        in its own dtype (uint8, int, float16/32/64; ``np.memmap`` too) without a float copy
        of the whole array: each batch is converted on its device, and predict scales alike.
""",
    "class_weight": """\
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes, multiplied into ``fit``'s ``sample_weight``: a dict maps a
        label of y to its weight (classes not named weigh 1); "balanced" weighs each class by
        ``n_samples / (n_classes * count)``. Weights act by sampling the rows of each epoch,
        not by weighting the loss (the local loss and BatchNorm are batch statistics); see
        ``fit`` and docs/large-data.md.
""",
    "lr_schedule": """\
    lr_schedule : {"cosine", "constant", "one_cycle", "plateau"} or schedule, default="cosine"
        The learning rate of each step, the same for every block: "cosine" per step from
        ``learning_rate`` to ``final_learning_rate`` (None: constant, as "constant");
        "one_cycle" up to ``learning_rate`` and down (torch's ``OneCycleLR``); "plateau"
        multiplies it by 0.1 after 10 epochs without a better validation score (torch's
        ``ReduceLROnPlateau``; needs validation data). ``OneCycle(...)`` and
        ``ReduceOnPlateau(...)`` from ``deinforeg_sklearn.schedules`` set the other
        options. Each epoch's rate is in ``history_``. See docs/user-guide/lr-schedules.md.
""",
    "warmup_epochs": """\
    warmup_epochs : int, default=0
        Epochs of linear warm-up before ``lr_schedule`` starts: step ``s`` of the first
        ``warmup_epochs * n_batches`` gets ``learning_rate * (s + 1) / n_warmup_steps``.
""",
    "callbacks": """\
    callbacks : list or None, default=None
        Objects whose hooks the fit calls: ``on_fit_begin(estimator)``,
        ``on_epoch_end(estimator, record)`` (``record``: the epoch's ``history_`` entry; a
        True return stops the fit after that epoch) and ``on_fit_end(estimator)``; any
        subset of them (see ``deinforeg_sklearn.callbacks.Callback``, and the loggers
        there). Under the process engine and torchrun they run once, in the process of rank
        0. A hook that raises ends the fit with that error, and the estimator keeps its
        state of before the fit. See docs/user-guide/callbacks.md.
""",
    "keep_last_epoch": """\
    keep_last_epoch : bool, default=True
        Keep a copy of the network (weights, buffers, optimiser state) after every epoch so
        that Ctrl-C during ``fit`` keeps the last completed epoch (with a warning). The copy
        costs memory equal to the network's training state on its device (about 3x the
        parameters with Adam); set False for models where that matters, and Ctrl-C then
        leaves the estimator as it was before ``fit``.
""",
    "backward": """\
    backward : {"per_block", "per_stage"}, default="per_block"
        How the blocks of one device (one pipeline stage) run their backward. "per_block":
        each block runs its own backward and optimiser step, which frees its graph at once
        (the least memory: the paper's Table 8 setting). "per_stage": one backward over the
        summed block losses, then the optimiser steps; the gradients, and so the weights, are
        the same (each block's loss reaches only its own parameters), but every block's graph
        stays alive until the backward. On 2 CPU cores it measured no faster (within 3 %), so
        it is not the default; it is there for devices where one backward launch per device
        pays.
""",
    "schedule": """\
    schedule : {"auto", "sequential", "wavefront"}, default="auto"
        How the blocks of one device, or of each pipeline stage, train. "sequential": for
        each batch, each block in turn.
        "wavefront": all blocks at once, block l on batch t while block l+1 is on batch t-1,
        with one backward per step, and runs of same-shaped DeInfoReg blocks (e.g. all four
        of ``[Dense(256)] * 4``, the first one's narrower input zero-padded) as one batched
        computation. The trained model is the same, bit for bit at 1 CPU thread (see
        docs/architecture.md). "auto": on a CPU, "wavefront"
        when a run of at least two blocks can be batched (equal dense blocks, widths a
        multiple of 16) and no block draws random numbers in training (dropout would draw in
        another order), else "sequential"; on a GPU, "sequential". In a pipeline the rule
        holds per stage: a wavefront stage hands each batch on once its last block has it.
""",
    "precision_and_compile": """\
    precision : {"32", "bf16", "16"}, default="32"
        Arithmetic of training. "bf16" and "16" run each block's forward under
        ``torch.autocast`` in bfloat16 or float16; weights, optimiser state and the losses (the
        local loss's Gram matrix and reductions, cross-entropy) stay in float32, and "16"
        scales the loss against underflow (``torch.amp.GradScaler``). Prediction runs in
        float32. "bf16" suits recent GPUs and CPUs with bfloat16 units; on CUDA, float32
        matrix products may also use TF32 (``torch.backends.cuda.matmul.allow_tf32``), which
        this setting leaves as the caller set it.
    compile : bool, default=False
        Run each block's training step (forward and loss) through ``torch.compile``. The first
        steps then include compile time (seconds to minutes), so it pays on long fits. Where
        no compiler is available (on a CPU, inductor needs a C++ compiler), training goes on
        eagerly after a ``RuntimeWarning``.
""",
}


def shared_parameter_docs(cls: type) -> type:
    """Class decorator: replace each ``<<name>>`` line of the docstring with its shared text."""
    doc = cls.__doc__ or ""
    for name, text in SHARED_PARAMETERS.items():
        doc = doc.replace(f"    <<{name}>>\n", text)
    if "<<" in doc:
        raise ValueError(f"{cls.__name__}'s docstring names a shared parameter text that does not exist.")
    cls.__doc__ = doc
    return cls
