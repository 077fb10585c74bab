"""docs/index.md lists every document, and every relative link in the README and the docs
resolves: to a file that exists and, for a ``#anchor``, to a heading of the target (as
GitHub makes anchors from headings), so a renamed file or section fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
EXTERNAL = ("http://", "https://", "mailto:")


def _prose(text: str) -> str:
    """The text outside fenced code blocks (a link pattern in code is not a link)."""
    return "\n".join(part for i, part in enumerate(text.split("```")) if i % 2 == 0)


def links(page: Path) -> list[str]:
    text = re.sub(r"`[^`\n]*`", "``", _prose(page.read_text()))  # nor in inline code
    return [t for t in LINK.findall(text) if not t.startswith(EXTERNAL)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in _prose(page.read_text()).splitlines():
        match = re.match(r"#{1,6} (.+)", line)
        if not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def broken(page: Path, target: str) -> str | None:
    """Why ``target`` (a link on ``page``) does not resolve; None when it does."""
    path, _, anchor = target.partition("#")
    file = (page.parent / path).resolve() if path else page
    if not file.exists():
        return f"{page.name}: {target}: no file {file}"
    if anchor and file.suffix == ".md" and anchor not in anchors(file):
        return f"{page.name}: {target}: no heading #{anchor} in {file.name}"
    return None


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves(page: Path) -> None:
    problems = [b for t in links(page) if (b := broken(page, t)) is not None]
    assert not problems, "\n".join(problems)


def test_index_lists_every_document() -> None:
    listed = {Path(t.partition("#")[0]).name for t in links(DOCS / "index.md")}
    missing = [p.name for p in DOCS.glob("*.md") if p.name != "index.md" and p.name not in listed]
    assert not missing, f"docs/index.md does not list: {missing}"


def test_readme_links_the_index_and_keeps_its_first_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "docs/index.md" in links(ROOT / "README.md")
    blocks = readme.split("```")[1::2]
    assert [b.strip() for b in blocks[:2]] == ["make demo", "make test"]


def test_the_checks_catch_a_missing_file_and_heading(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n\n## The `demo` part: what it shows\n")
    page.write_text("[a](other.md#the-demo-part-what-it-shows) [b](gone.md) "
                    "[c](other.md#nope) [d](https://example.com/x) `[f](g)`\n"
                    "```\n[e](code.md)\n```\n")
    assert links(page) == ["other.md#the-demo-part-what-it-shows", "gone.md", "other.md#nope"]
    assert broken(page, "other.md#the-demo-part-what-it-shows") is None
    assert "no file" in str(broken(page, "gone.md"))
    assert "no heading #nope" in str(broken(page, "other.md#nope"))
