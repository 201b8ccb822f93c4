"""Turning a converter's failure into one line that names the op and the layer."""

import re

# `loc(callsite(fused["Erfinv:", "model_1/backbone_1/odd_1/Erfinv@__inference..."] ...)):
# 'tf.Erfinv' op is neither a custom op nor a flex op`: the LiteRT converter's report.
_LITERT_UNSUPPORTED = re.compile(
    r'fused\["(?P<op>[\w.]+):", "(?P<scope>[^"@]+)@[^\n]*?\'tf\.(?P=op)\' op is neither'
)
_LITERT_OP = re.compile(r"'tf\.(?P<op>\w+)' op is neither")


class ConversionError(ValueError):
    """A model that an export format cannot represent; nothing was written.

    Attributes:
        format: str. The export format.
        op: str or None. The operation the converter could not convert.
        layer: str or None. The Keras layer that uses it, when known.
    """

    def __init__(self, message: str, format: str, op: str | None = None, layer=None):
        super().__init__(message)
        self.format = format
        self.op = op
        self.layer = layer


def layer_names(model) -> set[str]:
    """The names of `model`'s layers, in nested models too."""
    names = set()
    stack = [model]
    while stack:
        layer = stack.pop()
        names.add(layer.name)
        stack.extend(getattr(layer, "layers", None) or [])
    return names


def layer_of(scope: str, names: set[str]) -> str | None:
    """The innermost layer in a TensorFlow name scope such as `model_1/conv_1/Conv2D`.

    Keras 3 runs each layer under a name scope of its name, with a `_<n>` suffix
    per call; the last part of the scope is the op itself.
    """
    for part in reversed(scope.split("/")[:-1]):
        for candidate in (part, re.sub(r"_\d+$", "", part)):
            if candidate in names:
                return candidate
    return None


def _describe(format_name: str, ops: list[tuple[str, str | None]], why: str) -> str:
    op, layer = ops[0]
    where = f"layer {layer!r} uses the op {op}" if layer else f"the op {op}"
    others = f" (and {len(ops) - 1} more unsupported ops)" if len(ops) > 1 else ""
    return f"Could not export to {format_name}: {where}, which {why}{others}. Nothing was written."


def litert_failure(error: Exception, model) -> ConversionError:
    """Reads the LiteRT converter's error into a `ConversionError`."""
    text = str(error)
    names = layer_names(model)
    found = []
    for match in _LITERT_UNSUPPORTED.finditer(text):
        entry = (match["op"], layer_of(match["scope"], names))
        if entry not in found:
            found.append(entry)
    if not found:
        found = [(op, None) for op in dict.fromkeys(_LITERT_OP.findall(text))]
    if not found:
        first = next((line.strip() for line in text.splitlines() if line.strip()), repr(error))
        return ConversionError(
            f"Could not export to LiteRT: the converter failed with: {first[:300]}. "
            "Nothing was written.",
            "litert",
        )
    op, layer = found[0]
    return ConversionError(
        _describe("LiteRT", found, "LiteRT's built-in ops do not include"),
        "litert",
        op=op,
        layer=layer,
    )


def unsupported_onnx_nodes(onnx_model) -> list[tuple[str, str]]:
    """`(op type, node name)` of each node no ONNX operator set defines.

    tf2onnx does not fail on a TensorFlow op it cannot convert: it logs an error
    and copies the op into the graph, where no ONNX runtime can run it.
    """
    import onnx

    return [
        (node.op_type, node.name)
        for node in onnx_model.graph.node
        if not onnx.defs.has(node.op_type, node.domain)
    ]


def onnx_failure(nodes: list[tuple[str, str]], model) -> ConversionError:
    """A `ConversionError` for the unconvertible nodes `unsupported_onnx_nodes` found."""
    names = layer_names(model)
    found = []
    for op, scope in nodes:
        entry = (op, layer_of(scope, names))
        if entry not in found:
            found.append(entry)
    op, layer = found[0]
    return ConversionError(
        _describe("ONNX", found, "tf2onnx cannot convert to an ONNX operator"),
        "onnx",
        op=op,
        layer=layer,
    )
