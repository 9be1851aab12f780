"""Long explanations of the diagnostic codes, as `rustc --explain` gives them: `dlc explain E0401`.

One markdown file per code (`E0401.md`, shipped as package data). Its first line is the title,
`# E0401: shape error in an op`; then the explanation in plain words, an erroneous example and
the fixed one, each under its own heading (`## Erroneous example`, `## Fixed example`) as
fenced blocks:

- an ```arch block is a spec file; the first one of an example is the file that is compiled
  (`example.arch` unless its first line is `# file: NAME`), later ones are files beside it that
  it imports, each with its `# file: NAME` line;
- a ```checkpoint block lists a safetensors checkpoint's keys, one `name: [d0, d1]` a line,
  under its `# file: NAME` line;
- a ```keymap block is a key map (TOML, `--weights-from`), written as it stands, its
  `# file: NAME` line a comment;
- a ```console block is the `dlc` command that reports the code (without one: `dlc check
  example.arch`).

tests/test_explain.py compiles every example and checks that the erroneous one produces
exactly its code and the fixed one none.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

DIR = Path(__file__).parent
_CODE = re.compile(r"E\d{4}")
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.M | re.S)


def codes() -> list[str]:
    """Every code that has an explanation, in order."""
    return sorted(p.stem for p in DIR.glob("E*.md") if _CODE.fullmatch(p.stem))


def explanation(code: str) -> str:
    """The markdown text of `code`'s explanation; KeyError if there is none."""
    path = DIR / f"{code}.md"
    if not _CODE.fullmatch(code) or not path.is_file():
        raise KeyError(code)
    return path.read_text(encoding="utf-8")


def retired(code: str) -> str | None:
    """What a retired code meant (it is explained no more, and never given to another message)."""
    from ..messages import RETIRED

    return RETIRED.get(normalize(code))


def title(code: str) -> str:
    """The title line of `code`'s explanation, without `# E0401: `."""
    first = explanation(code).splitlines()[0]
    return first.removeprefix(f"# {code}:").strip()


def normalize(text: str) -> str:
    """What a user typed as a code, in the canonical form: `e401` and `401` mean `E0401`."""
    digits = text.strip().upper().removeprefix("E")
    return f"E{int(digits):04d}" if digits.isdigit() and len(digits) <= 4 else text.strip()


def closest(text: str, n: int = 3) -> list[str]:
    """The codes nearest to an unknown one, for "did you mean": of its phase first (E04xx for
    E0409), by number; for text that is no code, the most similar spellings."""
    wanted = normalize(text)
    if not _CODE.fullmatch(wanted):
        return difflib.get_close_matches(wanted, codes(), n=n, cutoff=0.5)
    number = int(wanted[1:])
    return sorted(codes(), key=lambda c: (c[:3] != wanted[:3], abs(int(c[1:]) - number), c))[:n]


@dataclass(frozen=True)
class Block:
    """One fenced block of an example: its kind (`arch`, `checkpoint`, `console`), the file name
    of its `# file:` line (None without one) and its whole text, that line included."""

    kind: str
    name: str | None
    text: str


def examples(code: str) -> dict[str, list[Block]]:
    """The blocks under each `## ... example` heading: {"erroneous": [...], "fixed": [...]}."""
    out: dict[str, list[Block]] = {}
    sections = re.split(r"^## (\w+) example\s*$", explanation(code), flags=re.M)
    for heading, body in zip(sections[1::2], sections[2::2], strict=True):
        out[heading.lower()] = [_block(m.group(1), m.group(2)) for m in _BLOCK.finditer(body)]
    return out


def _block(kind: str, text: str) -> Block:
    match = re.match(r"# file: (\S+)\n", text)
    return Block(kind, match.group(1) if match else None, text)
