"""A report as a list of blocks, rendered to Markdown, self-contained HTML and booktabs LaTeX.

Cells and paragraphs use two bits of inline markup, `**bold**` and `` `code` ``, which
each renderer translates; images are paths relative to the report folder (HTML embeds
them as base64 so the file stands alone).
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")
_MINUS = re.compile(r"(?<![\w.])-(?=\d)")
_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { padding: 0.25em 0.7em; text-align: right; white-space: nowrap; }
th { border-top: 2px solid #222; border-bottom: 1px solid #222; }
tbody tr:last-child td { border-bottom: 2px solid #222; }
tr.ref td { font-style: italic; background: #f6f6f6; }
tr.ref-last td { border-bottom: 1px solid #222; }
td.text, th.text { text-align: left; }
caption { caption-side: bottom; text-align: left; font-size: 0.85em; color: #555; padding-top: 0.4em; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; } figcaption { font-size: 0.85em; color: #555; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.note { background: #fff6d6; border-left: 4px solid #e0b000; padding: 0.5em 0.8em; }
"""


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    refs: list[list[str]] = field(default_factory=list)  # reference rows (bicubic), shown first
    caption: str = ""
    text_cols: int = 1  # leading columns that are labels (left-aligned)


@dataclass
class Doc:
    title: str
    blocks: list[tuple] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", level, text))

    def para(self, text: str) -> None:
        self.blocks.append(("para", text))

    def note(self, text: str) -> None:
        self.blocks.append(("note", text))

    def bullets(self, items: list[str]) -> None:
        self.blocks.append(("bullets", items))

    def table(self, table: Table) -> None:
        self.blocks.append(("table", table))

    def image(self, path: str, caption: str) -> None:
        self.blocks.append(("image", path, caption))

    def code(self, text: str) -> None:
        self.blocks.append(("code", text))

    def to_markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for block in self.blocks:
            match block:
                case ("heading", level, text):
                    out += ["#" * level + " " + text, ""]
                case ("para", text):
                    out += [text, ""]
                case ("note", text):
                    out += [f"> **Note:** {text}", ""]
                case ("bullets", items):
                    out += [f"- {item}" for item in items] + [""]
                case ("table", table):
                    out += md_table(table) + [""]
                case ("image", path, caption):
                    out += [f"![{caption}]({path})", "", f"*{caption}*", ""]
                case ("code", text):
                    out += ["```", text.rstrip("\n"), "```", ""]
        return "\n".join(out)

    def to_html(self, root: Path) -> str:
        """A standalone page; images are read from `root` / path and embedded as base64 PNG."""
        body = [f"<h1>{_inline(self.title)}</h1>"]
        for block in self.blocks:
            match block:
                case ("heading", level, text):
                    body.append(f"<h{level}>{_inline(text)}</h{level}>")
                case ("para", text):
                    body.append(f"<p>{_inline(text)}</p>")
                case ("note", text):
                    body.append(f'<p class="note"><b>Note:</b> {_inline(text)}</p>')
                case ("bullets", items):
                    body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
                case ("table", table):
                    body.append(_html_table(table))
                case ("image", path, caption):
                    data = base64.b64encode((root / path).read_bytes()).decode("ascii")
                    body.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                                f"<figcaption>{_inline(caption)}</figcaption></figure>")
                case ("code", text):
                    body.append(f"<pre>{html.escape(text)}</pre>")
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head>\n<body>\n"
                + "\n".join(body) + "\n</body></html>\n")


def md_table(t: Table) -> list[str]:
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
    align = [":---" if i < t.text_cols else "---:" for i in range(len(t.header))]
    lines = [row(t.header), "| " + " | ".join(align) + " |"]
    lines += [row([f"*{c}*" if c else c for c in r]) for r in t.refs]  # reference rows in italics
    lines += [row(r) for r in t.rows]
    if t.caption:
        lines += ["", t.caption]
    return lines


def _inline(text: str) -> str:
    escaped = html.escape(text, quote=False)
    return _CODE.sub(r"<code>\1</code>", _BOLD.sub(r"<b>\1</b>", escaped))


def _html_table(t: Table) -> str:
    def cells(tag: str, values: list[str]) -> str:
        attr = ' class="text"'
        return "".join(f"<{tag}{attr if i < t.text_cols else ''}>{_inline(v)}</{tag}>"
                       for i, v in enumerate(values))
    head = f"<thead><tr>{cells('th', t.header)}</tr></thead>"
    refs = "".join(f'<tr class="ref{" ref-last" if i == len(t.refs) - 1 else ""}">{cells("td", r)}</tr>'
                   for i, r in enumerate(t.refs))
    rows = "".join(f"<tr>{cells('td', r)}</tr>" for r in t.rows)
    caption = f"<caption>{_inline(t.caption)}</caption>" if t.caption else ""
    return f"<table>{caption}{head}<tbody>{refs}{rows}</tbody></table>"


_TEX_ESCAPE = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
               "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_TEX_SYMBOLS = {"±": r"$\pm$", "−": "$-$", "–": "--", "—": "---"}


def tex(text: str) -> str:
    """Escape for LaTeX, then turn **bold** into \\textbf and `code` into \\texttt."""
    out = "".join(_TEX_ESCAPE.get(ch, ch) for ch in text)
    for sym, rep in _TEX_SYMBOLS.items():
        out = out.replace(sym, rep)
    out = _MINUS.sub(r"$-$", out)  # a negative number, not a hyphen
    out = _BOLD.sub(r"\\textbf{\1}", out)
    return _CODE.sub(r"\\texttt{\1}", out)


def to_latex(t: Table, label: str) -> str:
    """A booktabs table (needs \\usepackage{booktabs}); reference rows above a \\midrule."""
    spec = "".join("l" if i < t.text_cols else "r" for i in range(len(t.header)))
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(tex(h) for h in t.header) + r" \\", r"\midrule"]
    if t.refs:
        lines += [" & ".join(rf"\textit{{{tex(c)}}}" if c else "" for c in r) + r" \\" for r in t.refs]
        lines.append(r"\midrule")
    lines += [" & ".join(tex(c) for c in r) + r" \\" for r in t.rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if t.caption:
        lines.append(rf"\caption{{{tex(t.caption)}}}")
    lines += [rf"\label{{{label}}}", r"\end{table}", ""]
    return "\n".join(lines)
