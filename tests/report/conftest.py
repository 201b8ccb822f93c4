"""A real browser for the report tests: Debian's headless Chromium."""

import os
import shutil
import subprocess
from html.parser import HTMLParser

import pytest


class Page(HTMLParser):
    """What a test asserts on in a rendered DOM: sections, images, scripts, links.

    Also each section's text (`text[id]`, whitespace collapsed) and the CSS
    classes of the elements in it (`classes[id]`), e.g. `"missing"`, the
    warning colour.
    """

    def __init__(self, dom: str):
        super().__init__()
        self.sections, self.headings, self.images, self.scripts, self.links = [], [], [], [], []
        self.body = {}
        self.text, self.classes = {}, {}
        self._heading = None
        self._section = None
        self.feed(dom)
        self.text = {key: " ".join(value.split()) for key, value in self.text.items()}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if self._section is not None and attrs.get("class"):
            self.classes[self._section].update(attrs["class"].split())
        if tag == "section":
            self.sections.append(attrs.get("id"))
            self._section = attrs.get("id")
            self.text.setdefault(self._section, "")
            self.classes.setdefault(self._section, set())
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "script":
            self.scripts.append(attrs)
        elif tag == "link":
            self.links.append(attrs)
        elif tag == "body":
            self.body = attrs
        elif tag == "h2":
            self._heading = ""

    def handle_data(self, data):
        if self._heading is not None:
            self._heading += data
        if self._section is not None:
            self.text[self._section] += f" {data}"

    def handle_endtag(self, tag):
        if tag == "section":
            self._section = None
        if tag == "h2" and self._heading is not None:
            self.headings.append(self._heading.strip())
            self._heading = None


@pytest.fixture(scope="session")
def render():
    """`render(path)` -> `(Page, console_lines)`: the DOM after load, and console messages."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        message = "headless Chromium is not installed: apt-get install -y chromium"
        if os.environ.get("TRANSFERKIT_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)

    def run(path):
        result = subprocess.run(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--enable-logging=stderr",
                "--v=0",
                # Time for the page's load handler to run before the DOM is dumped.
                "--virtual-time-budget=3000",
                "--dump-dom",
                f"file://{os.path.abspath(path)}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
        return Page(result.stdout), console

    return run
