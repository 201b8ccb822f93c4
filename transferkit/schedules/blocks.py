"""Splitting a backbone into blocks that follow its real structure.

Gradual unfreezing must never cut a residual block in half: unfreezing the
second half of a bottleneck while its first half stays frozen trains a block
against inputs it was never trained with. Keras Applications name their layers
after the block they belong to (`conv4_block3_2_conv`, `block_12_expand`,
`block5b_dwconv`, `conv_pw_7`, `mixed7`, ...); these names give the blocks.

KerasHub's transformers nest their blocks inside one encoder layer (ViT's
`vit_encoder`, DINOv2's `dinov2_backbone_encoder`, each Swin stage): there, each
repeated sub-layer (a transformer block) is a block, the embeddings before the
first form the stem, and what follows a block (a final LayerNorm, a patch
merging) joins it.
"""

import re

import keras

# Each pattern captures the block a layer belongs to, from its name.
_BLOCK_PATTERNS = [
    re.compile(r"^(.*?stage_\d+_block_\d+)_"),  # ConvNeXt
    re.compile(
        r"^(.*?block_?\d+[a-z]?)_"
    ),  # ResNet(V2), DenseNet, MobileNetV2, EfficientNet, VGG, Xception
    re.compile(r"^(.*?expanded_conv(?:_\d+)?)_"),  # MobileNetV3
    re.compile(r"^conv_(?:dw|pw|pad)_(\d+)"),  # MobileNet
    re.compile(r"^(.*?Stage_\d+_XBlock_\d+|.*?Stage_\d+_YBlock_\d+)"),  # RegNet
    re.compile(r"^(normal_\w+?_\d+|reduction_\w+?_\d+|adjust_\w+?_\d+)$"),  # NASNet
]


# Inception names only the concatenation that closes each block (`mixed0`, ...).
_CLOSING_PATTERN = re.compile(r"^mixed\d+$")


def _block_key(name: str) -> str | None:
    for pattern in _BLOCK_PATTERNS:
        match = pattern.match(name)
        if match:
            key = match.group(1)
            if pattern.pattern.startswith("^(normal"):
                # NASNet cells: `normal_conv_1_5` and `normal_add_2_5` share cell `5`.
                key = key.rsplit("_", 1)[-1]
            return key
    return None


def backbone_blocks(backbone: keras.Model) -> list[list[keras.layers.Layer]]:
    """Groups a backbone's layers into blocks, from input to output.

    Layers before the first named block form the stem block; unnamed layers
    after a block (a final 1x1 conv, a top BatchNorm) join the block before
    them. A backbone with no recognisable block names (a user's own model)
    gets one block per layer that has weights.

    Args:
        backbone: `keras.Model`. The backbone, as built by
            `transferkit.backbones.build_backbone`.

    Returns:
        A list of blocks, each a list of layers, the input layer left out.
    """
    layers = [layer for layer in backbone.layers if not isinstance(layer, keras.layers.InputLayer)]
    if any(_repeated_sublayers(layer) for layer in layers):
        return _transformer_blocks(layers)
    if any(_CLOSING_PATTERN.match(layer.name) for layer in layers):
        blocks = [[]]
        for layer in layers:
            blocks[-1].append(layer)
            if _CLOSING_PATTERN.match(layer.name):
                blocks.append([])
        return _merge_weightless([block for block in blocks if block])
    keys = [_block_key(layer.name) for layer in layers]
    if not any(keys):
        return [[layer] for layer in layers if layer.weights] or [layers]
    blocks, current_key = [], object()
    for layer, key in zip(layers, keys, strict=True):
        if key is None or key == current_key or not blocks:
            if not blocks:
                blocks.append([])
                current_key = key
            blocks[-1].append(layer)
            continue
        blocks.append([layer])
        current_key = key
    return _merge_weightless(blocks)


def _repeated_sublayers(layer):
    """The class of a layer's repeated, weighted direct sub-layers (its blocks), or None."""
    if isinstance(layer, keras.Model):
        return None  # a nested backbone is one unit, as before
    counts = {}
    for sub in layer._flatten_layers(include_self=False, recursive=False):
        if sub.weights:
            counts[type(sub)] = counts.get(type(sub), 0) + 1
    repeated = [cls for cls, count in counts.items() if count >= 2]
    return repeated[0] if len(repeated) == 1 else None


def _transformer_blocks(layers):
    stem, blocks = [], []
    for layer in layers:
        block_class = _repeated_sublayers(layer)
        if block_class is None:
            (blocks[-1] if blocks else stem).append(layer)
            continue
        for sub in layer._flatten_layers(include_self=False, recursive=False):
            if type(sub) is block_class:
                blocks.append([sub])
            else:
                (blocks[-1] if blocks else stem).append(sub)
    return _merge_weightless([stem, *blocks] if stem else blocks)


def _merge_weightless(blocks):
    # A block whose layers hold no weights cannot be trained; fold it into its neighbour.
    merged, pending = [], []
    for block in blocks:
        if not any(layer.weights for layer in block):
            if merged:
                merged[-1].extend(block)
            else:
                pending.extend(block)  # a weightless stem joins the first real block
            continue
        merged.append(pending + block)
        pending = []
    return merged or [pending]
