"""The learning-rate finder: train briefly at exponentially growing rates and watch the loss.

As in fastai's `lr_find` (after Leslie Smith): a good learning rate sits where
the loss falls fastest, well before it blows up.
"""

import dataclasses

import keras
import numpy as np
import pandas as pd


@dataclasses.dataclass
class LRFinderResult:
    """What `FineTuner.find_lr` returns.

    Attributes:
        frame: `pandas.DataFrame` with one row per step: `learning_rate`,
            `loss` and `smoothed_loss`.
        suggestion: float. The rate where the smoothed loss fell fastest.
    """

    frame: pd.DataFrame
    suggestion: float

    def plot(self, path=None):
        """Plots loss against learning rate, marking the suggestion (see `plots.plot_lr_find`)."""
        from transferkit.plots import plot_lr_find

        return plot_lr_find(self.frame, self.suggestion, path)


def find_learning_rate(
    model: keras.Model,
    inputs: np.ndarray,
    labels: np.ndarray,
    loss,
    start_learning_rate: float = 1e-7,
    end_learning_rate: float = 1.0,
    steps: int = 100,
    batch_size: int = 32,
    seed: int | None = None,
) -> LRFinderResult:
    """Runs the range test on `model` and restores its weights afterwards.

    Raises:
        ValueError: for rates that are not `0 < start < end`, or `steps < 5`.
    """
    if not 0 < start_learning_rate < end_learning_rate:
        raise ValueError(
            "Need 0 < start_learning_rate < end_learning_rate. Received: "
            f"start_learning_rate={start_learning_rate}, end_learning_rate={end_learning_rate}"
        )
    if steps < 5:
        raise ValueError(f"`steps` must be at least 5. Received: steps={steps}")
    saved = model.get_weights()
    optimizer = keras.optimizers.Adam(learning_rate=start_learning_rate)
    model.compile(optimizer=optimizer, loss=loss)
    rates = np.geomspace(start_learning_rate, end_learning_rate, steps)
    rng = np.random.default_rng(seed)
    order = np.array([], dtype="int64")
    records, average, best = [], 0.0, np.inf
    try:
        for step, rate in enumerate(rates):
            if len(order) < batch_size:
                order = np.concatenate([order, rng.permutation(len(inputs))])
            batch, order = order[:batch_size], order[batch_size:]
            optimizer.learning_rate.assign(rate)
            value = float(np.asarray(model.train_on_batch(inputs[batch], labels[batch])))
            # Exponential moving average with bias correction, as fastai does.
            average = 0.98 * average + 0.02 * value
            smoothed = average / (1 - 0.98 ** (step + 1))
            records.append((rate, value, smoothed))
            best = min(best, smoothed)
            if not np.isfinite(value) or smoothed > 4 * best:
                break
    finally:
        model.set_weights(saved)
    frame = pd.DataFrame(records, columns=["learning_rate", "loss", "smoothed_loss"])
    return LRFinderResult(frame, _steepest(frame))


def _steepest(frame: pd.DataFrame) -> float:
    """The rate where the smoothed loss falls fastest, before its minimum."""
    end = int(frame["smoothed_loss"].to_numpy().argmin()) + 1
    losses = frame["smoothed_loss"].to_numpy()[:end]
    rates = frame["learning_rate"].to_numpy()[:end]
    # The first steps are noisy (the moving average is just starting); skip them.
    skip = max(2, len(frame) // 10)
    if end - skip < 3:
        return float(rates[max(0, end - 1)] / 10)
    slopes = np.gradient(losses[skip:], np.log10(rates[skip:]))
    return float(rates[skip + int(slopes.argmin())])
