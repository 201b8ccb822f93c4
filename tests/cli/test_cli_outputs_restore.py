"""`restored_on_failure`: a failed command leaves its output folder as it found it."""

import pytest

from transferkit.cli.outputs import restored_on_failure

OUTPUTS = ("results.csv", "project")


def _tree(folder):
    return {
        str(path.relative_to(folder)): path.read_text() if path.is_file() else None
        for path in sorted(folder.rglob("*"))
    }


def _previous_run(folder):
    (folder / "project").mkdir(parents=True)
    (folder / "project" / "trial.json").write_text("old trial")
    (folder / "results.csv").write_text("old results")
    (folder / "notes.txt").write_text("the user's")
    return _tree(folder)


@pytest.mark.parametrize("copy", [False, True])
def test_a_failure_restores_the_outputs_and_removes_new_files(tmp_path, copy):
    before = _previous_run(tmp_path)
    with pytest.raises(RuntimeError, match="trial failed"):
        with restored_on_failure(tmp_path, OUTPUTS, copy=copy):
            if copy:  # the command continues what the outputs hold
                (tmp_path / "project" / "trial.json").write_text("changed")
            else:  # the command replaces them
                assert not (tmp_path / "results.csv").exists()
            (tmp_path / "project").mkdir(exist_ok=True)
            (tmp_path / "project" / "new_trial.json").write_text("new")
            (tmp_path / "search.png").write_text("new")
            raise RuntimeError("trial failed")
    assert _tree(tmp_path) == before


def test_a_missing_folder_is_missing_again_after_a_failure(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError):
        with restored_on_failure(out, OUTPUTS):
            (out / "project").mkdir(parents=True)
            raise ValueError("no")
    assert not out.exists()


def test_success_keeps_the_new_outputs_and_drops_the_set_aside_copy(tmp_path):
    _previous_run(tmp_path)
    with restored_on_failure(tmp_path, OUTPUTS):
        (tmp_path / "results.csv").write_text("new results")
    assert _tree(tmp_path) == {"notes.txt": "the user's", "results.csv": "new results"}


def test_an_interrupt_keeps_what_the_command_wrote_for_resume(tmp_path):
    _previous_run(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        with restored_on_failure(tmp_path, OUTPUTS):
            (tmp_path / "project").mkdir()
            (tmp_path / "project" / "trial.json").write_text("interrupted search")
            raise KeyboardInterrupt
    assert _tree(tmp_path) == {
        "notes.txt": "the user's",
        "project": None,
        "project/trial.json": "interrupted search",
        "results.csv": "old results",
    }
