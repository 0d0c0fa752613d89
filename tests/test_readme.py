"""The README leads (issue 31): short, the map of the code near the top, every page under docs/ linked
from it, and no link in the README, CHANGELOG.md or docs/ that leaves the repository or points nowhere."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
DOCUMENTS = [README, ROOT / "CHANGELOG.md", *PAGES]
MAP_HEADING = "## Map of the code"

FENCED = re.compile(r"^```.*?^```[^\n]*$", flags=re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", flags=re.MULTILINE)
HTML = re.compile(r"\b(?:src|href)\s*=\s*[\"']([^\"']*)[\"']", flags=re.IGNORECASE)
AUTOLINK = re.compile(r"<((?:[a-z][a-z0-9+.-]*:|//)[^>\s]*)>", flags=re.IGNORECASE)
OUTSIDE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//|/|\\)", flags=re.IGNORECASE)


def prose(path: Path) -> str:
    """The text of a Markdown file without its code blocks and code spans, where brackets are no links."""
    return CODE_SPAN.sub("", FENCED.sub("", path.read_text()))


def targets(path: Path) -> list[str]:
    text = prose(path)
    return [found for pattern in (LINK, REFERENCE, HTML, AUTOLINK) for found in pattern.findall(text)]


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives a file's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", FENCED.sub("", path.read_text()), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_the_readme_is_short():
    assert len(README.read_text().splitlines()) <= 320


def test_the_map_of_the_code_comes_early_with_its_may_import_table():
    lines = README.read_text().splitlines()
    assert MAP_HEADING in lines[:120]
    after = lines[lines.index(MAP_HEADING) + 1 :]
    end = next((i for i, line in enumerate(after) if line.startswith("## ")), len(after))
    assert any(line.startswith("| may import →") for line in after[:end])


def test_every_page_under_docs_is_linked_from_the_readme():
    linked = {(ROOT / target.split("#")[0]).resolve() for target in targets(README) if target.split("#")[0]}
    assert PAGES and [page.name for page in PAGES if page.resolve() not in linked] == []


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_link_stays_in_the_repository_and_leads_somewhere(document):
    wrong = []
    for target in targets(document):
        where, _, anchor = target.partition("#")
        where = where.split("?")[0]
        if not target or OUTSIDE.match(target):
            wrong.append(f"{target!r}: not a relative link")
            continue
        path = (document.parent / where).resolve() if where else document
        if not path.is_relative_to(ROOT):
            wrong.append(f"{target!r}: outside the repository")
        elif not path.exists():
            wrong.append(f"{target!r}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            wrong.append(f"{target!r}: no such heading")
    assert wrong == []
