"""What the commands write: an output folder that never loses a user's files, and reports."""

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path


def check_output_folder(
    folder: str,
    outputs: tuple[str, ...],
    overwrite: bool,
    flag: str,
    alternative: str | None = None,
) -> Path:
    """Checks, before any work, that the command may write its files into `folder`.

    The folder must be new or empty; with `overwrite`, a non-empty folder is
    accepted and only the files named in `outputs` get replaced, so whatever
    else the user keeps there survives.

    Args:
        folder: str. The output folder.
        outputs: tuple of str. The file names the command writes there.
        overwrite: bool. Whether `--overwrite` was given.
        flag: str. The option that named the folder, for the messages.
        alternative: str or None. Another way out of a non-empty folder, offered
            before `--overwrite`, e.g. `"pass --resume to continue the search it
            holds"`. Defaults to None.

    Returns:
        The folder as a `pathlib.Path` (not created yet: it is created when the
        first file is written, so a failed run leaves nothing behind).

    Raises:
        FileExistsError: if `folder` is a file, or a non-empty folder without
            `overwrite`.
        OSError: if the folder cannot be created or written to (see
            `check_writable_folder`).
    """
    path = Path(folder).expanduser()
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{flag} {folder!r} is a file, not a folder. Choose a folder.")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        also = f"{alternative}, or" if alternative else "or"
        raise FileExistsError(
            f"{flag} {folder!r} is not empty. Choose a new or empty folder, {also} pass "
            f"--overwrite to replace the files this command writes there "
            f"({', '.join(outputs)}); other files are kept."
        )
    check_writable_folder(path, f"{flag} {folder!r}")
    return path


def check_output_file(path: str, overwrite: bool, flag: str) -> None:
    """Checks, before any work, that the command may write the file `path`.

    Raises:
        FileExistsError: if `path` exists and `overwrite` is False.
        OSError: if its folder cannot be created or written to.
    """
    if os.path.isdir(path):
        raise FileExistsError(f"{flag} {path!r} is a folder. Give a file name, e.g. out.csv.")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(
            f"{flag} {path!r} already exists. Pass --overwrite to replace it, or choose another "
            "file name."
        )
    check_writable_folder(Path(path).expanduser().parent, f"{flag} {path!r}")


def check_writable_folder(folder: Path, named: str) -> None:
    """Checks that `folder` can be created (if it is missing) and a file written in it.

    What the check creates, it removes: a run that fails later leaves nothing
    behind. Its errors name the user's path, never the probe file.

    Args:
        folder: `pathlib.Path`. The folder the command will write into.
        named: str. How the messages name the output, e.g. `"--out 'runs/cats'"`.

    Raises:
        OSError: saying which step failed (creating a folder, or writing into
            it) and why (read-only file system, permission denied, ...).
    """
    missing = []  # the folders to create, innermost first
    existing = folder
    while not os.path.lexists(existing):
        missing.append(existing)
        existing = existing.parent
    if not existing.is_dir():
        raise OSError(f"{named} cannot be written: {existing} is a file, not a folder.")
    created = []
    try:
        for path in reversed(missing):
            step, inside = f"creating the folder {path}", path.parent
            path.mkdir()
            created.append(path)
        step, inside = f"writing into {folder}", folder
        descriptor, probe = tempfile.mkstemp(prefix=".transferkit-write-check-", dir=folder)
        os.close(descriptor)
        os.unlink(probe)
    except OSError as error:
        reason = error.strerror or str(error)
        if error.errno == errno.ENOENT:
            # /proc and the like: the folder is there but takes no new entries.
            reason = f"{inside} does not take new files or folders"
        raise OSError(
            f"{named} cannot be written: {step} failed ({reason}). Choose a place you can "
            "write to."
        ) from None
    finally:
        for path in reversed(created):
            path.rmdir()


@contextlib.contextmanager
def restored_on_failure(folder: Path, outputs: tuple[str, ...], copy: bool = False):
    """Leaves `folder` as it was found when the command inside fails.

    What the command creates in `folder` (or `folder` itself, when it was
    missing) is removed, and the files of `outputs` it held are put back: so
    the same command can run again, and a failed `--overwrite` loses nothing.
    Those files are moved aside while the command runs (it replaces them);
    with `copy` (a command that continues what they hold, like `tune
    --resume`) they stay in place and a copy is set aside. An interrupt
    (Ctrl-C) is not a failure: what the command wrote stays, for `--resume`.

    Args:
        folder: `pathlib.Path`. The output folder (see `check_output_folder`).
        outputs: tuple of str. The names of the files and folders the command writes.
        copy: bool. Set a copy of them aside rather than moving them. Defaults to False.
    """
    import shutil

    existed = folder.is_dir()
    before = set(os.listdir(folder)) if existed else set()
    kept = [name for name in outputs if name in before]
    backup = None
    if kept:
        backup = Path(tempfile.mkdtemp(prefix=".transferkit-previous-", dir=folder))
        for name in kept:
            source, target = folder / name, backup / name
            if not copy:
                source.rename(target)
            elif source.is_dir():
                shutil.copytree(source, target, symlinks=True)
            else:
                shutil.copy2(source, target)
    try:
        yield
    except Exception:
        if folder.is_dir():
            for name in set(os.listdir(folder)) - before:
                path = folder / name
                if backup is not None and path == backup:
                    continue
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        if backup is not None:
            for name in kept:
                path = folder / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                elif os.path.lexists(path):
                    path.unlink()
                (backup / name).rename(path)
            backup.rmdir()
        if not existed and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        raise
    except BaseException:
        if backup is not None:
            for name in kept:
                if not os.path.lexists(folder / name):
                    (backup / name).rename(folder / name)
            shutil.rmtree(backup)
        raise
    if backup is not None:
        shutil.rmtree(backup)


@contextlib.contextmanager
def naming_errors(path: Path):
    """Makes a system error while writing `path` name `path`, not a temporary file.

    The writers go through a temporary file beside their destination, and an
    error from the system (disk full, ...) would name that file, which the user
    never asked for.

    Raises:
        OSError: `Could not write PATH: reason.`, for an error from the system.
    """
    try:
        yield
    except OSError as error:
        if error.errno is None:  # transferkit's own message (e.g. FileExistsError)
            raise
        raise OSError(f"Could not write {path}: {error.strerror or error}.") from error


def write_csv(frame, path: Path, overwrite: bool, index: bool = False) -> None:
    """Writes a DataFrame as CSV atomically: an interrupted write keeps the old file."""
    from transferkit.utils.files import atomic_path

    with naming_errors(path), atomic_path(path, overwrite=overwrite) as tmp:
        frame.to_csv(tmp, index=index)


def write_json(data: dict, path: Path, overwrite: bool) -> None:
    """Writes `data` as indented JSON atomically."""
    from transferkit.utils.files import atomic_path

    with naming_errors(path), atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def report_dict(report, with_confusion: bool = False) -> dict:
    """An `EvaluationReport` as plain JSON data: its metrics, then `per_class`.

    Args:
        report: `EvaluationReport`.
        with_confusion: bool. Whether to add `confusion_matrix` as
            `{true class: {predicted class: count}}`. Defaults to False.

    Returns:
        A dict such as `{"loss": 0.31, "accuracy": 0.9, ..., "per_class":
        {"cat": {"precision": ..., "recall": ..., "f1": ..., "support": ...}}}`.
    """
    data = {key: _plain(value) for key, value in report.metrics.items()}
    # to_dict keeps each column's type (support stays an int); iterrows would not.
    per_class = report.per_class.to_dict(orient="index")
    data["per_class"] = {
        str(name): {column: _plain(value) for column, value in row.items()}
        for name, row in per_class.items()
    }
    if with_confusion and not report.multi_label:
        matrix = report.confusion_matrix
        data["confusion_matrix"] = {
            str(true): {str(predicted): int(matrix.loc[true, predicted]) for predicted in matrix}
            for true in matrix.index
        }
    return data


def _plain(value):
    # numpy scalars are not JSON serializable; .item() gives the Python number.
    return value.item() if hasattr(value, "item") else value


def _left_out_line(metrics: dict) -> list[str]:
    """Names the classes without images, whose NaN figures the macro means leave out."""
    names = metrics.get("classes_left_out") or []
    if not names:
        return []
    return [
        f"No image of {', '.join(names)} in these images: undefined (NaN) precision, recall, "
        "F1 and average precision, left out of the macro means."
    ]


def format_report(report) -> str:
    """The text `transferkit evaluate` prints: headline metrics, per class, confusion matrix."""
    metrics = report.metrics
    if report.multi_label:
        return "\n".join(
            [
                f"micro F1                {metrics['micro_f1']:.4f}",
                f"macro F1                {metrics['macro_f1']:.4f}",
                f"mean average precision  {metrics['mean_average_precision']:.4f}",
                f"loss                    {metrics['loss']:.4f}",
                f"images                  {metrics['num_images']}",
                "",
                "per class (a class is predicted from its threshold):",
                report.per_class.to_string(float_format="{:.4f}".format),
                *_left_out_line(metrics),
            ]
        )
    lines = [
        f"accuracy  {metrics['accuracy']:.4f}",
        f"loss      {metrics['loss']:.4f}",
        f"macro F1  {metrics['macro_f1']:.4f}",
        f"balanced accuracy  {metrics['balanced_accuracy']:.4f}",
        *([f"PR AUC    {metrics['pr_auc']:.4f}"] if "pr_auc" in metrics else []),
        f"images    {metrics['num_images']}",
        "",
        "per class:",
        report.per_class.to_string(
            formatters={
                "precision": "{:.4f}".format,
                "recall": "{:.4f}".format,
                "f1": "{:.4f}".format,
            }
        ),
        "",
        "confusion matrix (rows: true class, columns: predicted class):",
        report.confusion_matrix.to_string(),
    ]
    return "\n".join(lines)


def flat_predictions(predictions, delimiter: str = "|"):
    """Predictions ready for a CSV: a multi-label model's class lists joined by `delimiter`."""
    frame = predictions.copy()
    for column in ("labels", "true_labels"):
        if column in frame:
            frame[column] = [delimiter.join(names) for names in frame[column]]
    return frame
