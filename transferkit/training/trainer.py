"""`Trainer`: executes the phases of a run, on one device or under a strategy."""

import contextlib
import dataclasses

import keras
import numpy as np

from transferkit.features import FeatureCache
from transferkit.models import ImageClassifier
from transferkit.precision import copy_state, model_precision, with_precision
from transferkit.schedules import Phase
from transferkit.training.augmentation import augmentation_layer
from transferkit.training.distribution import is_multi_worker, reporting_lost_workers
from transferkit.training.freezing import Trainable, apply_phase, describe_phase
from transferkit.training.hooks import (
    RunHookError,
    call_hooks,
    hook_error,
    raising_hook,
    run_hooks,
)
from transferkit.training.lr_finder import LRFinderResult, find_learning_rate
from transferkit.training.phases import (
    PhaseRun,
    cached_features,
    cached_inputs,
    end_to_end_inputs,
    head_model,
    train_phase,
)
from transferkit.training.run import Run
from transferkit.utils.log import logger


@dataclasses.dataclass
class Trainer:
    """Runs phases for one classifier: strategy, precision, feature cache, seed, XLA.

    The trainer owns the training copy of the model: under a dtype policy other
    than float32, or a strategy the model was not built under, the run trains a
    copy (`run.training_model`, made in the strategy's scope and the policy)
    whose weights and trainable flags go back into `run.model` when the run
    ends, so `run.model` is the same float32 object before, during and after.
    Each phase is prepared on cached features while the backbone is frozen (and
    the data can be cached), end to end otherwise, and trained by one loop
    (`transferkit.training.phases.train_phase`) with the same compiled metrics
    and callbacks on every path.

    Args:
        model: `ImageClassifier`. The classifier to train.
        optimizer: str. `"adam"`, `"adamw"` or `"sgd"`.
        strategy: `tf.distribute.Strategy` or None. Defaults to `None`.
        precision: str. The dtype policy training computes in (resolved, not
            `"auto"`). Defaults to `"float32"`.
        feature_cache: `FeatureCache` or None. `None` trains frozen phases end
            to end. Defaults to `None`.
        cached_views: int or None. Views of each image a cached phase computes;
            `None`: 2 when the phase ends the run, else 1. Defaults to `None`.
        augmentation: The FineTuner's `augmentation` setting (a fresh layer is
            made from it for each phase). Defaults to `None`.
        seed: int or None. Defaults to `None`.
        jit_compile: bool. Defaults to `False`.
        backbone_name: str. How the log names the backbone. Defaults to the
            backbone's name.
    """

    model: ImageClassifier
    optimizer: str
    strategy: object = None
    precision: str = "float32"
    feature_cache: FeatureCache | None = None
    cached_views: int | None = None
    augmentation: object = None
    seed: int | None = None
    jit_compile: bool = False
    backbone_name: str | None = None

    # === The run ===
    @contextlib.contextmanager
    def running(self, run: Run):
        """The run's session: its training copy, and its hooks' run-level events.

        `on_run_begin` follows the training copy's creation; `on_run_end` comes
        after the trained weights are back in `run.model`. A hook that raises
        stops the run with a `RunHookError` naming it.
        """
        hooks = run_hooks(run.callbacks)
        with self.training_copy() as training_model:
            run.training_model = training_model
            try:
                with reporting_lost_workers(self.strategy, run.checkpoint_dir):
                    call_hooks(hooks, "on_run_begin", run)
                    yield run
            except RunHookError:
                raise
            except Exception as error:
                hook = raising_hook(error, hooks)
                if hook is None:
                    raise
                raise hook_error(hook, "a phase", error) from error
            finally:
                run.training_model = None
        call_hooks(hooks, "on_run_end", run)

    @contextlib.contextmanager
    def training_copy(self):
        """The model as it trains: itself, or a copy in the precision and the strategy's scope.

        The copy's weights and trainable flags go back into `self.model` at the
        end, also when training fails.
        """
        model = self.model
        in_scope = self.strategy is None or model.distribute_strategy is self.strategy
        if in_scope and model_precision(model) == self.precision:
            yield model
            return
        with self._scope():
            copy = with_precision(model, self.precision)
        if not in_scope:
            logger.info("training a copy of the model made in the strategy's scope")
        if self.precision != "float32":
            logger.info(f"training in {self.precision}")
        try:
            yield copy
        finally:
            copy_state(copy, model)

    # === One phase ===
    def fit_phase(
        self,
        run: Run,
        phase: Phase,
        *,
        trainable: Trainable | None = None,
        initial_epoch: int | None = None,
        last: bool | None = None,
    ) -> None:
        """Sets what trains in `phase`, recompiles (and says so), and trains it.

        Call it inside `running(run)`.

        Args:
            run: `Run`.
            phase: `Phase`. One of `run.phases`, or any phase.
            trainable: `Trainable` or None. What trains instead of what the
                phase says (from `FineTuner.freeze`/`unfreeze`). Defaults to
                `None`.
            initial_epoch: int or None. Defaults to `run.initial_epoch(phase)`.
            last: bool or None. Whether the phase ends the run. Defaults to
                `run.is_last(phase)`.
        """
        model = run.training_model
        call_hooks(run_hooks(run.callbacks), "on_phase_begin", run, phase)
        if trainable is None:
            trainable = apply_phase(model.backbone, phase, run.schedule)
        logger.info(describe_phase(phase, trainable, self.backbone_name or model.backbone.name))
        if self.seed is not None:
            # Reseed per phase: a cache hit skips the work that would otherwise
            # have consumed random numbers, and must not change the result.
            keras.utils.set_random_seed(self.seed + phase.start_epoch)
            reseed_layers(model, self.seed + phase.start_epoch)
        phase_run = PhaseRun(
            phase=phase,
            schedule=run.schedule,
            trainable=trainable,
            optimizer=self.optimizer,
            train=run.train,
            validation=run.validation,
            batch_size=run.batch_size,
            callbacks=list(run.callbacks),
            class_weight=run.class_weight,
            shuffle=run.shuffle,
            augmentation=augmentation_layer(self.augmentation, self.seed),
            verbose=run.verbose,
            initial_epoch=run.initial_epoch(phase) if initial_epoch is None else initial_epoch,
            seed=self.seed,
            jit_compile=self.jit_compile,
            strategy=self.strategy,
        )
        if trainable.frozen and self.feature_cache is not None and run.train.dataset is None:
            last = run.is_last(phase) if last is None else last
            views = self.views(phase_run, last)
            inputs = cached_inputs(model, phase_run, self.feature_cache, views)
        else:
            inputs = end_to_end_inputs(model, phase_run)
        train_phase(inputs, model.head, phase_run)
        if getattr(inputs.target, "stop_training", False):
            logger.info(f"a callback ended phase {phase.name!r} early")
            inputs.target.stop_training = False

    def views(self, run: PhaseRun, last: bool) -> int:
        """How many views of each training image a cached phase computes.

        `cached_views=None` decides by the phase's role: a frozen phase that ends
        the run gives the head all the augmentation it will ever see (2 views);
        a warm-up before unfreezing only has to bring the head close, and the
        unfrozen epochs augment afresh, so it takes the plain images (1 view) at
        half the cost.
        """
        if run.augmentation is None:
            return 1
        if self.cached_views is not None:
            return self.cached_views
        return 2 if last else 1

    # === The learning-rate range test ===
    def find_lr(
        self, source, start: float, end: float, steps: int, batch_size: int
    ) -> LRFinderResult:
        """The range test of the head on the frozen backbone's features (`FineTuner.find_lr`)."""
        with self.training_copy() as training_model:
            features, labels = cached_features(
                training_model,
                source,
                cache=self.feature_cache,
                batch_size=batch_size,
                seed=self.seed,
                jit_compile=self.jit_compile,
            )
        if is_multi_worker(self.strategy):
            raise ValueError(
                "find_lr runs Keras's own fit, which fails on a multi-worker cluster: find the "
                "learning rate in one process (distribute=None), then train on the cluster."
            )
        # The head's variables live in the strategy's scope: its optimizer must too.
        with self._scope():
            return find_learning_rate(
                head_model(self.model.head, features.shape[1:]),
                np.asarray(features),
                np.asarray(labels),
                self.model.head.default_loss(),
                start,
                end,
                steps,
                batch_size,
                self.seed,
            )

    def _scope(self):
        strategy = self.strategy
        return strategy.scope() if strategy is not None else contextlib.nullcontext()


def reseed_layers(model: keras.Model, seed: int) -> None:
    """Restarts the random state of the model's layers (Dropout and the like) from `seed`.

    Keras seeds these from the global seed when a layer is created, and a `.keras`
    file does not keep their state: without this, a loaded model would draw other
    dropout masks than the model it was saved from, and a fit after loading would
    not repeat a fit after fitting.
    """
    states = [v for v in model.non_trainable_variables if v.name == "seed_generator_state"]
    for index, state in enumerate(states):
        state.assign(np.array([seed + index, 0], dtype=state.dtype))
