import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from transferkit.data import as_image_source, make_dataset, scan_images
from transferkit.data.scan import to_rgb

RGB = (200, 40, 20)


def solid(colour=RGB, size=(6, 8)):
    return Image.fromarray(np.broadcast_to(np.array(colour, np.uint8), (*size, 3)).copy())


def palette(colour=RGB):
    return solid(colour).convert("P", palette=Image.Palette.ADAPTIVE)


def noisy_jpeg_bytes(size=(64, 64)):
    pixels = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def decode_as_training_does(path):
    return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False).numpy()


def scan_one(path):
    usable, skipped = scan_images([path])
    assert skipped.empty, skipped.to_dict("records")
    return usable[0], decode_as_training_does(usable[0])


def is_converted(usable_path, tmp_path):
    return usable_path.startswith(str(tmp_path / "cache" / "converted"))


# === Unusable files are left out and reported ===


def test_unusable_files_are_skipped_with_reasons(tmp_path, capsys):
    good = tmp_path / "good.png"
    solid().save(good)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(noisy_jpeg_bytes()[:1500])
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a picture")
    empty_jpg = tmp_path / "empty.jpg"
    empty_jpg.write_bytes(b"")
    empty_png = tmp_path / "empty.png"
    empty_png.write_bytes(b"")
    truncated_png = tmp_path / "truncated.png"
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 32, 3), np.uint8)).save(
        buffer, format="PNG"
    )
    truncated_png.write_bytes(buffer.getvalue()[:1200])
    paths = [
        good,
        truncated,
        text,
        empty_jpg,
        empty_png,
        truncated_png,
        tmp_path / "missing.png",
        tmp_path,
    ]

    usable, skipped = scan_images([str(p) for p in paths])

    assert usable == [str(good)]
    assert dict(zip(skipped["path"], skipped["reason"], strict=True)) == {
        str(truncated): "truncated image",
        str(text): "not an image file",
        str(empty_jpg): "empty file",
        str(empty_png): "empty file",
        str(truncated_png): "truncated image",
        str(tmp_path / "missing.png"): "file not found",
        str(tmp_path): "is a folder",
    }
    log = capsys.readouterr().err
    assert "Left out 7 of 8 image files" in log and "truncated.jpg (truncated image)" in log


def test_corrupt_data_reason_quotes_pil(tmp_path):
    path = tmp_path / "broken.png"
    buffer = io.BytesIO()
    solid().save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    start = data.index(b"IDAT") + 4
    data[start : start + 8] = b"\xff" * 8  # the compressed pixels no longer inflate
    path.write_bytes(bytes(data))
    _, skipped = scan_images([str(path)])
    assert skipped["reason"][0].startswith("cannot decode: ")
    assert len(skipped["reason"][0]) > len("cannot decode: ")  # PIL's own words follow


def test_empty_list():
    usable, skipped = scan_images([])
    assert usable == [] and list(skipped.columns) == ["path", "reason"] and skipped.empty


# === Every format comes out as the right RGB values ===


@pytest.mark.parametrize(
    "name, make, expected, tolerance",
    [
        ("gray.png", lambda p: solid().convert("L").save(p), None, 0),
        ("gray.jpg", lambda p: solid().convert("L").save(p, quality=100), None, 2),
        (
            "rgba.png",
            lambda p: Image.fromarray(np.full((6, 8, 4), (*RGB, 100), np.uint8)).save(p),
            RGB,
            0,
        ),
        ("cmyk.jpg", lambda p: solid().convert("CMYK").save(p, quality=100), RGB, 3),
        (
            "palette.png",
            lambda p: palette().save(p),
            None,
            0,
        ),
        (
            "palette_transparent.png",
            lambda p: palette().save(p, transparency=0),
            None,
            0,
        ),
        ("image.gif", lambda p: solid().save(p), RGB, 0),
        ("image.bmp", lambda p: solid().save(p), RGB, 0),
        ("webp.webp", lambda p: solid().save(p, lossless=True), RGB, 0),
        ("rgb.jpg", lambda p: solid().save(p, quality=100), RGB, 3),
    ],
)
def test_formats_tensorflow_reads_are_used_as_they_are(tmp_path, name, make, expected, tolerance):
    path = tmp_path / name
    make(path)
    if expected is None:
        expected = np.asarray(Image.open(path).convert("RGB"))[0, 0]
    usable, pixels = scan_one(str(path))
    assert usable == str(path)
    assert pixels.shape == (6, 8, 3)
    assert np.abs(pixels.astype(int) - np.array(expected)).max() <= tolerance


def save_animated_webp(path):
    frames = [solid(RGB), solid((0, 255, 0)), solid((0, 0, 255))]
    frames[0].save(path, save_all=True, append_images=frames[1:], lossless=True)


def save_without_end(path, format, cut):
    buffer = io.BytesIO()
    solid().save(buffer, format=format)
    path.write_bytes(buffer.getvalue()[:-cut])


@pytest.mark.parametrize(
    "name, make, expected",
    [
        ("scan.tif", lambda p: solid().save(p), RGB),
        ("scan.tiff", lambda p: solid().convert("L").save(p), (86, 86, 86)),
        (
            "palette.bmp",
            lambda p: palette().save(p),
            RGB,
        ),
        ("mono.bmp", lambda p: solid((255, 255, 255)).convert("1").save(p), (255, 255, 255)),
        ("animated.webp", save_animated_webp, RGB),
        ("no_end_chunk.png", lambda p: save_without_end(p, "PNG", 12), RGB),
        ("no_trailer.gif", lambda p: save_without_end(p, "GIF", 2), RGB),
    ],
)
def test_formats_tensorflow_misreads_are_converted(tmp_path, name, make, expected):
    path = tmp_path / name
    make(path)
    original = path.read_bytes()
    usable, pixels = scan_one(str(path))
    assert is_converted(usable, tmp_path) and usable.endswith(".png")
    assert pixels.shape == (6, 8, 3)
    assert np.abs(pixels.astype(int) - np.array(expected)).max() <= 1
    assert path.read_bytes() == original  # the user's file is never touched


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path):
    values = np.full((4, 4), 40000, np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    usable, pixels = scan_one(str(path))
    assert usable == str(path)  # TensorFlow reads 16-bit PNG correctly
    np.testing.assert_array_equal(pixels, np.full((4, 4, 3), 156))  # 40000 / 257
    tiff = tmp_path / "deep.tif"
    Image.fromarray(values).save(tiff)
    _, converted = scan_one(str(tiff))
    np.testing.assert_array_equal(converted, np.full((4, 4, 3), 156))
    assert to_rgb(Image.open(path)).max() == 156  # where PIL's convert("RGB") gives 255


def test_exif_orientation_is_applied(tmp_path):
    # Stored 4 high x 6 wide, red left half and blue right half; orientation 6
    # means "rotate 90 degrees clockwise to display".
    pixels = np.zeros((4, 6, 3), np.uint8)
    pixels[:, :3] = (255, 0, 0)
    pixels[:, 3:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    Image.fromarray(pixels).save(path, exif=exif.tobytes(), quality=100)
    usable, shown = scan_one(str(path))
    assert is_converted(usable, tmp_path)
    assert shown.shape == (6, 4, 3)
    assert shown[0, 0, 0] > 200 and shown[-1, 0, 2] > 200  # red on top, blue below


def test_conversion_is_cached_and_redone_when_the_file_changes(tmp_path):
    path = tmp_path / "scan.tif"
    solid().save(path)
    first, _ = scan_images([str(path)])
    written = os.stat(first[0]).st_mtime_ns
    again, _ = scan_images([str(path)])
    assert again == first and os.stat(again[0]).st_mtime_ns == written
    solid((1, 2, 3), size=(5, 5)).save(path)
    changed, _ = scan_images([str(path)])
    assert changed != first
    np.testing.assert_array_equal(decode_as_training_does(changed[0])[0, 0], (1, 2, 3))


def test_mixed_formats_through_the_pipeline(tmp_path, collect):
    names = ["a.png", "b.jpg", "c.tif", "d.bmp", "e.gif", "f.webp"]
    for name in names:
        solid().save(tmp_path / name)
    source = as_image_source([tmp_path / n for n in names], require_labels=False)
    assert source.identifiers == [str(tmp_path / n) for n in names]
    images, labels = collect(make_dataset(source, (3, 4), batch_size=4))
    assert labels is None and images.shape == (6, 3, 4, 3)
    assert np.abs(images - np.array(RGB, np.float32)).max() <= 6  # JPEG is lossy


def test_many_files_keep_their_order(tmp_path):
    paths = []
    for i in range(60):
        path = tmp_path / f"{i}.{'png' if i % 3 else 'tif'}"
        solid((i, 0, 0), size=(2, 2)).save(path)
        paths.append(str(path))
    (tmp_path / "17.png").write_text("broken")
    usable, skipped = scan_images(paths)
    assert len(usable) == 59 and skipped["path"].tolist() == [paths[17]]
    firsts = [decode_as_training_does(p)[0, 0, 0] for p in usable]
    assert firsts == [i for i in range(60) if i != 17]


def test_long_scans_draw_a_progress_bar(tmp_path, capsys, monkeypatch):
    paths = []
    for i in range(12):
        path = tmp_path / f"{i}.jpg"
        solid((i, 0, 0), size=(4, 4)).save(path)
        paths.append(str(path))
    scan_images(paths)
    assert "files/s" not in capsys.readouterr().out  # short: no bar
    monkeypatch.setattr("transferkit.defaults.SCAN_PROGRESS_FILES", 10)
    usable, _ = scan_images(paths)
    out = capsys.readouterr().out
    assert "12/12" in out and "files/s" in out
    assert usable == paths
    scan_images(paths, progress=False)
    assert capsys.readouterr().out == ""
