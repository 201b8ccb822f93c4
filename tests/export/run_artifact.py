"""Runs an exported model in its own runtime, as a deployment would, for the export tests.

    python run_artifact.py FORMAT PATH IMAGES.npy OUT.npz [IMAGE_FILE ...]

Before anything else it makes transferkit and Keras unimportable (and TensorFlow too
for LiteRT and ONNX), as if they were not installed: the export must run on its own.
It writes to OUT.npz the probabilities for the float32 images in IMAGES.npy, the class
names the export carries, and, for a SavedModel given IMAGE_FILEs, the answers of its
`serving_bytes` signature on those encoded files. `leaked` lists any blocked module
that got imported all the same (there should be none).
"""

import sys

BLOCKED = {
    "saved_model": ("transferkit", "keras", "tf_keras"),
    "litert": ("transferkit", "keras", "tf_keras", "tensorflow"),
    "onnx": ("transferkit", "keras", "tf_keras", "tensorflow"),
}

FORMAT = sys.argv[1]
for _name in BLOCKED[FORMAT]:
    # A None entry makes `import name` fail and `importlib.util.find_spec(name)`
    # return None, exactly as for a package that is not installed.
    sys.modules[_name] = None

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def run_saved_model(path, images, files):
    import tensorflow as tf

    info = json.loads((Path(path) / "assets.extra" / "transferkit.json").read_text())
    loaded = tf.saved_model.load(path)
    outputs = loaded.signatures["serving_default"](images=tf.constant(images))
    result = {
        "signatures": np.array(sorted(loaded.signatures)),
        "probabilities": outputs["probabilities"].numpy(),
        "class_name": outputs["class_name"].numpy().astype(str),
        "class_index": outputs["class_index"].numpy(),
    }
    if files:
        data = tf.constant([Path(file).read_bytes() for file in files])
        outputs = loaded.signatures["serving_bytes"](image_bytes=data)
        result["bytes_probabilities"] = outputs["probabilities"].numpy()
        result["bytes_class_name"] = outputs["class_name"].numpy().astype(str)
    return info, result


def run_litert(path, images, files):
    from ai_edge_litert.interpreter import Interpreter

    info = json.loads(Path(path + ".json").read_text())
    interpreter = Interpreter(model_path=path)
    detail = interpreter.get_input_details()[0]
    if info["input_dtype"] == "uint8":
        images = np.clip(np.round(images), 0, 255).astype(np.uint8)
    runner = interpreter.get_signature_runner("serving_default")
    probabilities = runner(**{info["input_name"]: images})[info["output_name"]]
    return info, {
        "probabilities": probabilities,
        "input_dtype": np.array(np.dtype(detail["dtype"]).name),
        "input_quantization": np.array(detail["quantization"], dtype="float64"),
    }


def run_onnx(path, images, files):
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    info = json.loads(session.get_modelmeta().custom_metadata_map["transferkit"])
    (probabilities,) = session.run([info["output_name"]], {info["input_name"]: images})
    return info, {
        "probabilities": probabilities,
        "input_names": np.array([each.name for each in session.get_inputs()]),
    }


def main():
    path, images_file, out = sys.argv[2:5]
    files = sys.argv[5:]
    images = np.load(images_file).astype("float32")
    run = {"saved_model": run_saved_model, "litert": run_litert, "onnx": run_onnx}[FORMAT]
    info, result = run(path, images, files)
    leaked = sorted(
        name
        for name, module in sys.modules.items()
        if module is not None and name.split(".")[0] in BLOCKED[FORMAT]
    )
    np.savez(
        out,
        class_names=np.array(info["class_names"]),
        info=np.array(json.dumps(info)),
        leaked=np.array(leaked, dtype=str),
        **result,
    )


if __name__ == "__main__":
    main()
