"""Every relative link in the README resolves: a file of the repository, or a heading."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[`*_]|\[|\]\([^)]*\)", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def test_every_relative_link_in_the_readme_resolves() -> None:
    text = README.read_text()
    body = re.sub(r"```.*?```", "", text, flags=re.S)  # links in code blocks are code
    anchors = {_slug(h) for h in re.findall(r"^#+ (.+)$", body, re.M)}
    links = re.findall(r"\]\(([^)\s]+)\)", body)
    relative = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert relative, "the README links nothing?"
    broken = []
    for link in relative:
        path, _, anchor = link.partition("#")
        if path:
            if not (ROOT / path).exists():
                broken.append(link)
        elif anchor not in anchors:
            broken.append(link)
    assert broken == []
