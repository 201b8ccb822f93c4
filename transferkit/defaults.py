"""The defaults of transferkit's recipe, each defined once.

The library's signatures, the tuner's search space, the command line's help and
the docs all read these values from here (a test checks that the docs agree), so
a changed default cannot leave a stale copy behind. This module imports nothing
heavy: the command line reads it before TensorFlow is imported.
"""

# === The backbone and the data ===
BACKBONE = "resnet50"
WEIGHTS = "imagenet"
EPOCHS = 5
BATCH_SIZE = 32
VALIDATION_SPLIT = 0.2
OPTIMIZER = "adam"
AUGMENTATION = "flip"
# The dtype policy training computes in. "auto" (bfloat16 where the hardware and the
# backbone gain from it) is not the default: the reference recipe (MobileNet) would
# stay in float32 on this team's CPUs anyway, and float32 is what every result so far
# was measured in (`python -m bench.precision`).
PRECISION = "float32"
# What `precision=` (and `transferkit fit --precision`) accepts.
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16", "auto")
# The share of the data a search holds out to confirm its finalists on.
CONFIRMATION_SPLIT = 0.2
# The chance that a search's trial changes each hyperparameter from its default (1:
# plain random search). About 11 vary in the default space: 0.25 changes 2 or 3.
CHANGE_RATE = 0.25

# Folders of at least this many files get a progress bar while their files are checked
# (about 8,000 JPEGs/s here: from a second or so up).
SCAN_PROGRESS_FILES = 10000

# === The head ===
POOLING = "auto"
DROPOUT = 0.2

# === The schedule ===
# Peak learning rate of the head while the backbone is frozen. A new head on fixed
# features is a small, well-behaved problem: at 1e-2 a linear head reached in one
# epoch what it needed five epochs for at 1e-3 (`python -m bench.head_learning_rate`).
LEARNING_RATE = 1e-2
# Peak learning rate of the head once backbone blocks train. It does not follow
# LEARNING_RATE: how fast pretrained weights may move does not depend on how fast a
# new head learns.
FINE_TUNE_LEARNING_RATE = 1e-4
# Learning-rate multiplier of the lowest trainable backbone block; the blocks above
# it get multipliers spread geometrically up to the head's 1 (discriminative rates).
LOWEST_BLOCK_MULTIPLIER = 0.1
# Fraction of each phase's steps spent warming the learning rate up.
WARMUP = 0.1
# Epochs of head warm-up on the frozen backbone before unfreezing.
FROZEN_EPOCHS = 1

# === Export ===
# The formats `FineTuner.export` and `transferkit export` write, and the one they write
# when none is named.
EXPORT_FORMATS = ("saved_model", "litert", "onnx")
EXPORT_FORMAT = "saved_model"
# LiteRT's quantization modes (None, the default, keeps float32).
QUANTIZATIONS = ("float16", "dynamic_range", "full_integer")
# The parity check's limit per float quantization (None: float32). float32 exports are
# judged by the largest probability difference from the Keras model. float16 weights
# alone move a probability by up to ~2e-2 on a MobileNet (round the Keras model's own
# weights and it moves as much), so a float16 export is judged by what the format can
# promise: the mean probability difference, and agreement in the predicted class of at
# least FLOAT16_AGREEMENT. Integer quantization changes the numbers by design: it is
# reported, not judged.
TOLERANCES = {None: 1e-4, "float16": 1e-3}
FLOAT16_AGREEMENT = 0.999
# Images drawn from the representative data to calibrate a full-integer LiteRT model
# (LiteRT's guide suggests about a hundred).
REPRESENTATIVE_IMAGES = 100

# === Distribution ===
# Seconds any wait for the other workers of a cluster may last: for all of them to come
# up, and for each collective step (a worker that died makes the others fail after it).
WORKER_TIMEOUT = 120
