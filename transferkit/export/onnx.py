"""An ONNX model: Keras's SavedModel export, converted by tf2onnx, checked for ops ONNX lacks."""

import contextlib
import logging
import tempfile
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from transferkit.export.failures import onnx_failure, unsupported_onnx_nodes
from transferkit.export.metadata import ExportInfo, write_onnx_metadata
from transferkit.utils.quiet import native_stderr_silenced


@contextlib.contextmanager
def _converters_quiet():
    # tf2onnx logs each op it cannot convert and carries on (`write_onnx` finds
    # those ops in the graph and raises); TensorFlow logs deprecations of the
    # graph-freezing functions tf2onnx calls.
    loggers = [logging.getLogger(name) for name in ("tf2onnx", "tensorflow")]
    levels = [each.level for each in loggers]
    for each in loggers:
        each.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), native_stderr_silenced():
            warnings.simplefilter("ignore")
            yield
    finally:
        for each, level in zip(loggers, levels, strict=True):
            each.setLevel(level)


def _inline_xla_functions(graph_def) -> None:
    """Lets TensorFlow's optimizer inline the functions Keras marks for XLA (in place).

    Keras runs grouped convolutions (ConvNeXt's depthwise convolutions) in an
    XLA-compiled function, as TensorFlow's CPU kernels lack them. The optimizer
    tf2onnx runs never inlines such a function, so its call would reach the ONNX
    graph as an op no runtime knows; ONNX's `Conv` has groups of its own.
    """
    compiled = set()
    for function in graph_def.library.function:
        if "_XlaMustCompile" in function.attr:
            compiled.add(function.signature.name)
            for key in ("_XlaMustCompile", "_noinline"):
                if key in function.attr:
                    del function.attr[key]
    nodes = list(graph_def.node)
    for function in graph_def.library.function:
        nodes.extend(function.node_def)
    for node in nodes:
        if "f" in node.attr and node.attr["f"].func.name in compiled:
            if "_XlaMustCompile" in node.attr:
                del node.attr["_XlaMustCompile"]


def _erfc(ctx, node, name, args):
    """tf2onnx handler of `Erfc`, which ONNX lacks: `erfc(x) = 1 - erf(x)`.

    TensorFlow computes the exact GELU (ConvNeXt's activation) with `Erfc`.
    """
    from tf2onnx import utils

    erf = ctx.make_node("Erf", [node.input[0]])
    one = ctx.make_const(utils.make_name(f"{name}_one"), np.array(1.0, dtype=np.float32))
    node.type = "Sub"
    ctx.replace_inputs(node, [one.output[0], erf.output[0]])


def write_onnx(model: keras.Model, path: Path, info: ExportInfo) -> None:
    """Converts `model` (see `serving_model`) to an `.onnx` file holding `info`.

    The model goes through a SavedModel written by Keras's `ExportArchive` (as
    Keras's own LiteRT export does), which tf2onnx then converts as its
    `--saved-model` command does. Keras's `Model.export(format="onnx")`
    converts the live function instead, and there tf2onnx turns tensors a layer
    computed when it was built, such as the mean and variance of the
    `Normalization` layer inside EfficientNet, into extra graph inputs that no
    caller can feed: the ONNX model would not run. Two more steps let ConvNeXt
    through: XLA-compiled functions are inlined, and `Erfc` is written with `Erf`.

    Raises:
        ConversionError: naming the op (and layer) that has no ONNX equivalent.
    """
    import tf2onnx
    from tf2onnx import tf_loader

    signature = [tf.TensorSpec((None, None, None, 3), tf.float32, name=info.input_name)]
    with tempfile.TemporaryDirectory() as folder, _converters_quiet():
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(
            "serving_default",
            lambda images: model(images, training=False),
            input_signature=signature,
        )
        archive.write_out(folder, verbose=False)
        graph_def, inputs, outputs, renames = tf_loader.from_saved_model(
            folder,
            None,
            None,
            tag="serve",
            signatures=["serving_default"],
            return_tensors_to_rename=True,
        )
        _inline_xla_functions(graph_def)
        onnx_model, _ = tf2onnx.convert.from_graph_def(
            graph_def,
            input_names=inputs,
            output_names=outputs,
            tensors_to_rename=renames,
            custom_op_handlers={"Erfc": (_erfc, [])},
        )
    nodes = unsupported_onnx_nodes(onnx_model)
    if nodes:
        raise onnx_failure(nodes, model)
    write_onnx_metadata(onnx_model, info)
    import onnx

    onnx.save(onnx_model, str(path))
