"""Answer extraction shared by the rewards, the verifier and the eval harness.

A response follows the MM-EUREKA / VerIPO template ``<think> r </think><answer> a </answer>``
(spec/veripo-method.md §4). VerIPO's models answer in LaTeX, e.g. ``<answer> $B$ </answer>``, so the
helpers here strip ``$..$``, ``\\(..\\)``, ``\\boxed{..}`` and ``\\text{..}`` wrappers before comparing.
"""
from __future__ import annotations

import re

from veripo.data.schema import Sample

_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_THINK_RE = re.compile(r"<think>(.*?)</think>", re.S | re.I)
_WRAPPER_RE = re.compile(r"^\s*(?:\$\$(.*)\$\$|\$(.*)\$|\\\((.*)\\\)|\\\[(.*)\\\])\s*$", re.S)
_COMMAND_RE = re.compile(r"\\(?:boxed|text|textbf|mathrm|mbox)\s*\{([^{}]*)\}")
_NUMBER_RE = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?")
_FRAC_RE = re.compile(r"\\[dt]?frac\s*\{\s*([-+]?[\d.]+)\s*\}\s*\{\s*([-+]?[\d.]+)\s*\}")
_SLASH_RE = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\b")
ALL_LETTERS = "ABCDEFGHIJ"


def extract_answer(text: str | None) -> str | None:
    """Content of the LAST ``<answer>...</answer>`` block, stripped of LaTeX wrappers; ``None`` if absent."""
    if not text:
        return None
    matches = _ANSWER_RE.findall(text)
    if not matches:
        return None
    return strip_latex(matches[-1])


def extract_think(text: str | None) -> str | None:
    """Content of the first ``<think>...</think>`` block (stripped); ``None`` if absent."""
    if not text:
        return None
    m = _THINK_RE.search(text)
    return m.group(1).strip() if m else None


def strip_latex(text: str) -> str:
    """``" $B$ "`` -> ``"B"``; ``"\\boxed{3.5}"`` -> ``"3.5"``; ``"\\text{blue}"`` -> ``"blue"``. Idempotent."""
    out = text.strip()
    for _ in range(4):  # nested wrappers such as $\boxed{B}$
        before = out
        m = _WRAPPER_RE.match(out)
        if m:
            out = next(g for g in m.groups() if g is not None).strip()
        out = _COMMAND_RE.sub(lambda mm: mm.group(1), out).strip()
        if out == before:
            break
    return out


def gold_answer(sample: Sample) -> str:
    """The ground truth of a sample, without ``<answer>`` tags and LaTeX wrappers."""
    m = _ANSWER_RE.search(sample.solution)
    return strip_latex(m.group(1) if m else sample.solution)


# ---------------------------------------------------------------- numbers

def parse_number(text: str | None) -> float | None:
    """The first number in ``text``: ``"3.5 meters"`` -> 3.5, ``"1,200"`` -> 1200, ``"\\frac{1}{2}"`` -> 0.5,
    ``"3/4"`` -> 0.75, ``"45%"`` -> 45.0. ``None`` when there is no number."""
    if text is None:
        return None
    s = strip_latex(str(text))
    m = _FRAC_RE.search(s)
    if m:
        try:
            return float(m.group(1)) / float(m.group(2))
        except (ValueError, ZeroDivisionError):
            return None
    m = _SLASH_RE.match(s)
    if m:
        try:
            return float(m.group(1)) / float(m.group(2))
        except ZeroDivisionError:
            return None
    for m in _NUMBER_RE.finditer(s):
        tok = m.group(0)
        if not any(ch.isdigit() for ch in tok):
            continue
        try:
            return float(tok.replace(",", ""))
        except ValueError:
            continue
    return None


# ---------------------------------------------------------------- multiple choice

def option_map(options: list[str] | None) -> dict[str, str]:
    """``["A. red", "B) green"]`` -> ``{"A": "red", "B": "green"}``; options without a letter prefix
    get A, B, C... in order."""
    out: dict[str, str] = {}
    for i, opt in enumerate(options or []):
        m = re.match(r"^\s*\(?([A-Za-z])\s*[.):]\s*(.*)$", opt, re.S)
        if m:
            out[m.group(1).upper()] = m.group(2).strip()
        elif i < len(ALL_LETTERS):
            out[ALL_LETTERS[i]] = opt.strip()
    return out


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def choice_letter(text: str | None, options: list[str] | None = None) -> str | None:
    """The option letter a text commits to, or ``None`` when it names none or several.

    Accepted: ``"B"``, ``"(B)"``, ``"B. green"``, ``"B)"``, ``"$B$"``, ``"\\boxed{B}"``, ``"Option B"``,
    ``"the answer is B"``, or the bare option text (``"green"``) when it names exactly one option.
    Letters are taken from the options (A–J when there are none); a lower-case letter counts only when it
    is the whole answer.
    """
    if text is None:
        return None
    s = strip_latex(text)
    omap = option_map(options)
    letters = "".join(omap) if omap else ALL_LETTERS
    if not s:
        return None
    if len(s) == 1 and s.upper() in letters:
        return s.upper()
    m = (re.match(rf"^\(?([{letters}])\)?(?:[.:)\]]|\s|$)", s)
         or re.match(rf"^(?:option|answer|choice)\s*:?\s*\(?([{letters}])\)?(?:\W|$)", s, re.I))
    if m:  # leads with a letter: "B. green", "(B)", "Option B" — unless the rest names another letter
        letter, rest = m.group(1).upper(), s[m.end():]
        if omap and _norm(rest) == _norm(omap.get(letter, "")):
            return letter
        others = set(_standalone_letters(rest, letters)) - {letter}
        return None if others else letter
    found = set(_standalone_letters(s, letters))
    if len(found) > 1 and "A" in found and re.search(r"(?:^|[.!?]\s+)A\s+[a-z]", s):
        found.discard("A")  # the article "A" opening a sentence is not option A
    if len(found) == 1:
        return found.pop()
    if found:
        return None
    if omap:
        target = _norm(s)
        exact = [k for k, v in omap.items() if _norm(v) == target and target]
        if len(exact) == 1:
            return exact[0]
        contained = [k for k, v in omap.items() if _norm(v) and re.search(rf"\b{re.escape(_norm(v))}\b", target)]
        if len(contained) == 1:
            return contained[0]
    return None


def _standalone_letters(text: str, letters: str) -> list[str]:
    """Upper-case option letters standing alone as words: "so B", "(C)", "B." — not the A of "Apple"."""
    return re.findall(rf"(?<![A-Za-z])\(?([{letters}])\)?(?![A-Za-z])", text)
