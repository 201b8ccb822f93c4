"""MkDocs hook: a plot that a real run has not produced yet becomes a note, not a broken link.

The tutorial shows plots copied from a real run of the reference example into
`docs/assets/`. Until they are there, `mkdocs build --strict` would abort on the
missing image files. This hook replaces only those images, under `assets/`,
with a note saying how to produce them; any other broken link still fails the build.
"""

import logging
import posixpath
import re
from pathlib import Path

log = logging.getLogger("mkdocs.hooks.missing_plots")

IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<target>[^)\s]+)\)(?P<attrs>\{[^}]*\})?")

NOTE = (
    '!!! note "Plot not in this build: {alt}"\n'
    "    `{target}` comes from a real run of the reference example "
    "(`python examples/cats_vs_dogs/train.py`, which writes it to `runs/cats_vs_dogs/`); "
    "copy it to `docs/{path}` to show it here.\n"
)


def on_page_markdown(markdown, page, config, files, **kwargs):
    docs_dir = Path(config["docs_dir"])
    page_dir = posixpath.dirname(page.file.src_uri)

    def replace(match):
        target = match.group("target")
        if "://" in target:
            return match.group(0)
        path = posixpath.normpath(posixpath.join(page_dir, target))
        if not path.startswith("assets/") or (docs_dir / path).exists():
            return match.group(0)
        log.info(f"{page.file.src_uri}: {path} is missing; showing a note instead")
        return "\n" + NOTE.format(alt=match.group("alt"), target=target, path=path) + "\n"

    return IMAGE.sub(replace, markdown)
