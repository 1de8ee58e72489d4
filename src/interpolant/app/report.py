"""A static HTML report: sample grids, plots, metric tables and the run configuration.

One self-contained page (inline CSS, no network, no external fonts or scripts) in ``out_dir``;
every picture it shows lives in ``out_dir`` or below it, so the folder can be zipped or served
as it is. All text is HTML-escaped, so names and table cells are shown, never run.

>>> grid = ImageGrid.from_records(
...     [{"solver": "ddim", "nfe": 10, "path": "samples/ddim_10.png"}, ...])
>>> write_report("runs/digits", "Digits, VP cosine", [
...     Section("Samples", paragraphs=["Same seeds in every cell."], grids=[grid]),
...     Section("Quality against NFE", images=[Picture("fd_vs_nfe.png", "digits FD")],
...             tables=[Table(rows, caption="FD (lower is better)")]),
...     Section("Run", config=config),
... ])
PosixPath('runs/digits/index.html')

Picture paths that are relative are taken relative to ``out_dir``; absolute paths inside it are
made relative, and files anywhere else are copied into ``out_dir/assets/``.
"""

from __future__ import annotations

import hashlib
import html
import json
import numbers
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..errors import InterpolantError

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Picture:
    """One image with a caption; ``pixelated`` keeps enlarged pixels sharp (sample grids)."""

    path: PathLike
    caption: str = ""
    pixelated: bool = False


@dataclass(frozen=True)
class Table:
    """Rows of ``{column: value}``; numbers are right-aligned, floats shown to ``digits``."""

    rows: Sequence[Mapping[str, Any]]
    caption: str = ""
    columns: Sequence[str] | None = None  # default: keys in the order first seen
    digits: int = 4


@dataclass(frozen=True)
class ImageGrid:
    """Pictures in a labelled rows x columns grid, e.g. one sample grid per solver x NFE."""

    rows: Sequence[str]
    columns: Sequence[str]
    cells: Mapping[tuple[str, str], PathLike]  # (row, column) -> picture; gaps stay empty
    row_title: str = "solver"
    column_title: str = "NFE"
    caption: str = ""

    @classmethod
    def from_records(
        cls,
        records: Iterable[Mapping[str, Any]],
        row: str = "solver",
        column: str = "nfe",
        path: str = "path",
        caption: str = "",
    ) -> ImageGrid:
        """Build a grid from rows like ``{"solver": "ddim", "nfe": 10, "path": "a.png"}``.

        Rows keep their first-seen order; columns are sorted (numerically when they are numbers).
        """
        cells: dict[tuple[str, str], PathLike] = {}
        row_names: dict[str, None] = {}
        column_keys: dict[str, Any] = {}
        for record in records:
            for key in (row, column, path):
                if key not in record:
                    raise InterpolantError(f"ImageGrid record {dict(record)!r} lacks {key!r}")
            name, label = str(record[row]), _text(record[column])
            row_names[name] = None
            column_keys[label] = record[column]
            cells[(name, label)] = record[path]
        numeric = all(isinstance(v, numbers.Real) for v in column_keys.values())
        order = sorted(column_keys, key=lambda k: column_keys[k] if numeric else k)
        title = column.upper() if column == "nfe" else column
        return cls(list(row_names), order, cells, row, title, caption)


@dataclass(frozen=True)
class Section:
    """A heading with, in this order: paragraphs, image grids, pictures, tables, config."""

    heading: str
    paragraphs: Sequence[str] = ()
    grids: Sequence[ImageGrid] = ()
    images: Sequence[Picture | PathLike] = ()
    tables: Sequence[Table | Sequence[Mapping[str, Any]]] = ()
    config: Mapping[str, Any] | None = None


def _text(value: Any, digits: int = 4) -> str:
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()  # numpy and torch scalars
    if value is None:
        return ""
    if isinstance(value, float) or (
        isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral))
    ):
        return f"{float(value):.{digits}g}"
    return str(value)


def _escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


class _Assets:
    """Resolves picture paths to links relative to the page, copying outside files in."""

    def __init__(self, out_dir: Path) -> None:
        self.root = out_dir.resolve()

    def link(self, path: PathLike) -> str:
        given = Path(path)
        source = (given if given.is_absolute() else self.root / given).resolve()
        if not source.is_file():
            raise InterpolantError(f"report picture not found: {path} (looked at {source})")
        if not source.is_relative_to(self.root):
            digest = hashlib.sha256(source.read_bytes()).hexdigest()[:10]
            target = self.root / "assets" / f"{source.stem}-{digest}{source.suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                shutil.copyfile(source, target)
            source = target
        return _escape(quote(source.relative_to(self.root).as_posix()))


def _picture(picture: Picture | PathLike, assets: _Assets) -> str:
    item = picture if isinstance(picture, Picture) else Picture(picture)
    css = ' class="pixelated"' if item.pixelated else ""
    caption = f"<figcaption>{_escape(item.caption)}</figcaption>" if item.caption else ""
    alt = _escape(item.caption or Path(item.path).name)
    return f'<figure><img src="{assets.link(item.path)}" alt="{alt}"{css}>{caption}</figure>'


def _grid(grid: ImageGrid, assets: _Assets) -> str:
    style = f"grid-template-columns: max-content repeat({max(len(grid.columns), 1)}, auto)"
    cells = [f'<div class="corner">{_escape(grid.row_title)} \\ {_escape(grid.column_title)}</div>']
    cells += [f'<div class="col-head">{_escape(column)}</div>' for column in grid.columns]
    for row in grid.rows:
        cells.append(f'<div class="row-head">{_escape(row)}</div>')
        for column in grid.columns:
            path = grid.cells.get((row, column))
            if path is None:
                cells.append('<div class="cell empty">&mdash;</div>')
            else:
                alt = _escape(f"{row}, {grid.column_title} {column}")
                image = f'<img src="{assets.link(path)}" alt="{alt}" class="pixelated">'
                cells.append(f'<div class="cell">{image}</div>')
    caption = f"<figcaption>{_escape(grid.caption)}</figcaption>" if grid.caption else ""
    return (
        f'<figure class="grid-figure"><div class="image-grid" style="{style}">'
        + "".join(cells)
        + f"</div>{caption}</figure>"
    )


def _table(table: Table | Sequence[Mapping[str, Any]]) -> str:
    item = table if isinstance(table, Table) else Table(list(table))
    columns = list(item.columns or dict.fromkeys(key for row in item.rows for key in row))
    head = "".join(f"<th>{_escape(column)}</th>" for column in columns)
    body = []
    for row in item.rows:
        cells = []
        for column in columns:
            value = row.get(column)
            is_number = isinstance(value, numbers.Number) and not isinstance(value, bool)
            css = ' class="num"' if is_number else ""
            cells.append(f"<td{css}>{_escape(_text(value, item.digits))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    caption = f"<caption>{_escape(item.caption)}</caption>" if item.caption else ""
    return (
        f'<div class="table-wrap"><table>{caption}<thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _section(index: int, section: Section, assets: _Assets) -> str:
    parts = [f'<section id="s{index}"><h2>{_escape(section.heading)}</h2>']
    parts += [f"<p>{_escape(paragraph)}</p>" for paragraph in section.paragraphs]
    parts += [_grid(grid, assets) for grid in section.grids]
    if section.images:
        pictures = "".join(_picture(picture, assets) for picture in section.images)
        parts.append(f'<div class="pictures">{pictures}</div>')
    parts += [_table(table) for table in section.tables]
    if section.config is not None:
        text = json.dumps(section.config, indent=2, sort_keys=True, default=str)
        parts.append(f'<pre class="config">{_escape(text)}</pre>')
    return "".join(parts) + "</section>"


def _as_section(section: Section | Mapping[str, Any]) -> Section:
    if isinstance(section, Section):
        return section
    try:
        return Section(**section)
    except TypeError as error:
        raise InterpolantError(f"bad report section {dict(section)!r}: {error}") from None


CSS = """
:root { --ink:#202124; --muted:#5f6368; --line:#dadce0; --paper:#ffffff; --bg:#f4f5f7;
  --accent:#1a73e8; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink); line-height:1.5; }
header { background:var(--ink); color:#fff; padding:28px 40px 22px; }
header h1 { margin:0; font-size:26px; font-weight:600; }
header p { margin:6px 0 0; color:#c8cace; }
nav { margin-top:14px; display:flex; flex-wrap:wrap; gap:6px 16px; font-size:14px; }
nav a { color:#8ab4f8; text-decoration:none; }
main { max-width:1200px; margin:0 auto; padding:24px 24px 60px; }
section { background:var(--paper); border:1px solid var(--line); border-radius:10px;
  padding:20px 26px 24px; margin:0 0 22px; box-shadow:0 1px 2px rgba(0,0,0,.04); }
h2 { margin:0 0 12px; font-size:19px; font-weight:600; }
p { margin:0 0 12px; max-width:80ch; }
figure { margin:0; }
figcaption { color:var(--muted); font-size:13px; margin-top:6px; text-align:center; }
img { display:block; max-width:100%; height:auto; }
img.pixelated { image-rendering:pixelated; }
.grid-figure { overflow-x:auto; margin:8px 0 18px; }
.image-grid { display:grid; gap:10px 12px; align-items:center; justify-content:start; }
.image-grid .col-head, .image-grid .corner { font-size:13px; font-weight:600;
  color:var(--muted); text-align:center; padding-bottom:2px; }
.image-grid .corner { text-align:left; font-weight:400; }
.image-grid .row-head { font-weight:600; font-size:14px; padding-right:6px;
  font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
.image-grid .cell img { border-radius:4px; box-shadow:0 0 0 1px var(--line); }
.image-grid .empty { color:var(--line); text-align:center; }
.pictures { display:grid; grid-template-columns:repeat(auto-fill, minmax(420px, 1fr));
  gap:18px; margin:8px 0 18px; align-items:start; }
.pictures figure { border:1px solid var(--line); border-radius:8px; padding:10px; }
.pictures img { margin:0 auto; }
.table-wrap { overflow-x:auto; margin:8px 0 18px; }
table { border-collapse:collapse; font-size:14px; min-width:40%; }
caption { caption-side:top; text-align:left; color:var(--muted); font-size:13px;
  padding-bottom:6px; }
th { text-align:left; font-weight:600; border-bottom:2px solid var(--ink); padding:6px 14px; }
td { border-bottom:1px solid var(--line); padding:5px 14px; }
tbody tr:nth-child(even) { background:#f8f9fa; }
td.num { text-align:right; font-variant-numeric:tabular-nums;
  font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
pre.config { background:#f8f9fa; border:1px solid var(--line); border-radius:8px;
  padding:14px 18px; font-size:13px; overflow-x:auto; margin:8px 0 0; }
"""


def render_html(
    out_dir: PathLike,
    title: str,
    sections: Sequence[Section | Mapping[str, Any]],
    subtitle: str = "",
) -> str:
    """The report page as a string (pictures outside ``out_dir`` are copied in already)."""
    assets = _Assets(Path(out_dir))
    items = [_as_section(section) for section in sections]
    body = "".join(_section(index, section, assets) for index, section in enumerate(items))
    links = "".join(f'<a href="#s{i}">{_escape(s.heading)}</a>' for i, s in enumerate(items))
    nav = f"<nav>{links}</nav>" if len(items) > 1 else ""
    sub = f"<p>{_escape(subtitle)}</p>" if subtitle else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_escape(title)}</title><style>{CSS}</style></head>\n<body>"
        f"<header><h1>{_escape(title)}</h1>{sub}{nav}</header>\n<main>{body}</main>"
        "</body></html>\n"
    )


def write_report(
    out_dir: PathLike,
    title: str,
    sections: Sequence[Section | Mapping[str, Any]],
    subtitle: str = "",
    filename: str = "index.html",
) -> Path:
    """Write the report page to ``out_dir/filename`` atomically and return its path.

    ``sections`` are :class:`Section` values or dicts with the same keys. Raises
    :class:`InterpolantError` for a missing picture or a malformed section.
    """
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    page = render_html(root, title, sections, subtitle)
    target = root / filename
    handle, partial = tempfile.mkstemp(dir=root, prefix=f".{filename}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(page)
        os.chmod(partial, 0o644)
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return target
