"""A test tool: open a local HTML page in headless Chromium, as a person would, and report what happened.

One Chromium run loads the page (``--virtual-time-budget`` lets it finish loading), prints the
final DOM (``--dump-dom``) and optionally takes a screenshot. What the page did is read back
from two places:

- a probe script (:data:`PROBE_SCRIPT`) that runs first in the page and writes into a hidden
  ``<div id="status">`` whether the ``load`` event fired, how many images there are, which of
  them failed (``naturalWidth == 0``), uncaught errors, rejected promises and
  ``console.error`` calls. The probe is injected into a temporary copy placed beside the
  page, so relative links still resolve and the page itself carries no test code;
- Chromium's own log (``--enable-logging=stderr``), whose ``CONSOLE`` lines are everything
  the page printed to the console.

Chromium is found by :func:`find_chromium`: ``$INTERPOLANT_CHROMIUM``, then ``chromium``,
``chromium-browser``, ``google-chrome`` on ``PATH``. On Debian: ``apt-get install chromium``
(``make browser`` does it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, TypedDict

from interpolant.errors import InterpolantError

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
STATUS_ID = "status"
PROBE_MARKER = "interpolant-probe"

# Runs before anything else on the page; keep it free of "</" so it can sit inside <script>.
PROBE_SCRIPT = """(function () {
  var errors = [], broken = [];
  function status() {
    var el = document.getElementById("status");
    if (!el && document.body) {
      el = document.createElement("div"); el.id = "status"; el.hidden = true;
      document.body.appendChild(el);
    }
    return el;
  }
  function record() {
    var el = status(); if (!el) return;
    el.setAttribute("data-errors", JSON.stringify(errors));
    el.setAttribute("data-broken", JSON.stringify(broken));
  }
  window.addEventListener("error", function (event) {
    var target = event.target;
    if (target && target !== window && (target.src || target.href)) {
      broken.push(String(target.src || target.href));
    } else {
      errors.push(String(event.message || event.error || "error"));
    }
    record();
  }, true);
  window.addEventListener("unhandledrejection", function (event) {
    errors.push("unhandled rejection: " + String(event.reason)); record();
  });
  var consoleError = console.error;
  console.error = function () {
    errors.push("console.error: " + Array.prototype.join.call(arguments, " ")); record();
    return consoleError.apply(console, arguments);
  };
  window.addEventListener("load", function () {
    var images = document.images, failed = 0;
    for (var i = 0; i < images.length; i++) {
      if (!images[i].complete || images[i].naturalWidth === 0) failed++;
    }
    var el = status(); if (!el) return;
    record();
    el.setAttribute("data-images-total", String(images.length));
    el.setAttribute("data-images-broken", String(failed));
    el.setAttribute("data-loaded", "true");
  });
})();"""

_CONSOLE = re.compile(r'CONSOLE[^\]]*\]\s*"(?P<message>.*)", source: (?P<source>.*)$')


class PageStatus(TypedDict):
    """What happened when a page was opened (see :func:`load_status`)."""

    loaded: bool  # the load event fired and the probe reported
    images_total: int  # <img> elements on the page
    images_broken: int  # of those, the ones that did not render (naturalWidth == 0)
    broken: list[str]  # URLs of resources (images, stylesheets, ...) that failed to load
    errors: list[str]  # uncaught errors, rejected promises, console.error calls
    console: list[str]  # every console line Chromium logged, as "message (source)"
    dom: str  # the final DOM, serialised


def find_chromium() -> str | None:
    """The path of a Chromium (or Chrome) executable, or ``None`` when there is none."""
    chosen = os.environ.get("INTERPOLANT_CHROMIUM")
    if chosen:
        found = shutil.which(chosen)
        if found is None:
            raise InterpolantError(f"INTERPOLANT_CHROMIUM={chosen!r} is not an executable")
        return found
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _require_chromium() -> str:
    executable = find_chromium()
    if executable is None:
        raise InterpolantError(
            "no Chromium found; install it (`make browser`, or `apt-get install chromium`) "
            "or point INTERPOLANT_CHROMIUM at a Chrome/Chromium executable"
        )
    return executable


def _run(url: str, extra: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="interpolant-chromium-") as profile:
        command = [
            _require_chromium(),
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--enable-logging=stderr",
            "--v=0",
            f"--user-data-dir={profile}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            *extra,
            url,
        ]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise InterpolantError(f"Chromium did not finish {url} within {timeout:g} s") from None
    if result.returncode != 0:
        tail = "\n".join(result.stderr.splitlines()[-15:])
        raise InterpolantError(f"Chromium failed on {url} (exit {result.returncode}):\n{tail}")
    return result


class _StatusReader(HTMLParser):
    """Collects the attributes of the element with id ``status``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.attributes: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if values.get("id") == STATUS_ID and not self.attributes:
            self.attributes = values


def _json_list(text: str | None) -> list[str]:
    try:
        value: Any = json.loads(text or "[]")
    except json.JSONDecodeError:
        return [f"unreadable status: {text!r}"]
    return [str(item) for item in value] if isinstance(value, list) else [str(value)]


def visit(
    html_path: str | os.PathLike[str],
    png_path: str | os.PathLike[str] | None = None,
    width: int = 1280,
    height: int = 1600,
    budget_ms: int = 5000,
    timeout: float = 60.0,
) -> PageStatus:
    """Open ``html_path`` once: read its final DOM and status, and screenshot it if asked.

    The screenshot (``png_path``) is ``width`` x ``height`` pixels of the top of the page.
    """
    page = Path(html_path).resolve()
    if not page.is_file():
        raise InterpolantError(f"no such page: {page}")
    source = page.read_text(encoding="utf-8")
    probe_copy = None
    if PROBE_MARKER not in source:  # a foreign page: probe a copy beside it
        probe_copy = page.with_name(f".probe-{uuid.uuid4().hex[:12]}-{page.name}")
        script = f'<script id="{PROBE_MARKER}">{PROBE_SCRIPT}</script>'
        head = re.search(r"<head[^>]*>", source, flags=re.IGNORECASE)
        at = head.end() if head else 0
        probe_copy.write_text(source[:at] + script + source[at:], encoding="utf-8")
    extra = [f"--virtual-time-budget={budget_ms}", "--dump-dom"]
    if png_path is not None:
        shot = Path(png_path).resolve()
        shot.parent.mkdir(parents=True, exist_ok=True)
        extra += [f"--screenshot={shot}", f"--window-size={width},{height}"]
    try:
        result = _run((probe_copy or page).as_uri(), extra, timeout)
    finally:
        if probe_copy is not None:
            probe_copy.unlink(missing_ok=True)
    if png_path is not None and not Path(png_path).is_file():
        raise InterpolantError(f"Chromium wrote no screenshot to {png_path}")
    reader = _StatusReader()
    reader.feed(result.stdout)
    found = reader.attributes
    console = []
    for line in result.stderr.splitlines():
        match = _CONSOLE.search(line)
        if match:
            console.append(f"{match['message']} ({match['source']})")
    return PageStatus(
        loaded=found.get("data-loaded") == "true",
        images_total=int(found.get("data-images-total") or 0),
        images_broken=int(found.get("data-images-broken") or 0),
        broken=_json_list(found.get("data-broken")),
        errors=_json_list(found.get("data-errors")),
        console=console,
        dom=result.stdout,
    )


def load_status(html_path: str | os.PathLike[str], budget_ms: int = 5000) -> PageStatus:
    """Open a page headless and report whether it loaded, broken images and errors."""
    return visit(html_path, budget_ms=budget_ms)


def screenshot(
    html_path: str | os.PathLike[str],
    png_path: str | os.PathLike[str],
    width: int = 1280,
    height: int = 1600,
) -> Path:
    """Render the top ``width`` x ``height`` pixels of a page to a PNG; return its path."""
    visit(html_path, png_path, width, height)
    return Path(png_path)
