"""The documentation stands on its own: every relative link in README.md and docs/ resolves, no
tracked file points outside the repository, and every "method.md section N" names a section of
docs/method.md."""

import collections
import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Paths of the specification this project was written from, which a clone does not have.
OUTSIDE = ("../shared", "shared/docs", "/work/")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
SECTION_REFERENCE = re.compile(r"method\.md,? sections? (\d+)")


def tracked(*suffixes):
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    return [ROOT / name for name in names if name.endswith(suffixes)]


def without_code_blocks(text):
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def relative_links(page):
    """The targets of the page's Markdown links but those with a scheme (https:, mailto:)."""
    return [target for target in LINK.findall(without_code_blocks(page.read_text()))
            if not re.match(r"[a-z][a-z0-9+.-]*:", target)]


def anchor(heading):
    """GitHub's anchor of a heading: its text without Markdown marks, lower case, punctuation
    but hyphens and underscores removed, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path):
    """Every heading's anchor, a repeated one numbered -1, -2, ... as GitHub does."""
    seen, out = collections.Counter(), set()
    for heading in re.findall(r"^#{1,6} (.+)$", without_code_blocks(path.read_text()), re.M):
        base = anchor(heading)
        out.add(base if not seen[base] else f"{base}-{seen[base]}")
        seen[base] += 1
    return out


def test_anchor_follows_githubs_rule():
    assert anchor("1. Margin of one example") == "1-margin-of-one-example"
    assert anchor("Model pools (`demogen zoo`)") == "model-pools-demogen-zoo"
    assert anchor("What it shows, **plainly**: CMI x 100") == "what-it-shows-plainly-cmi-x-100"


def test_the_readme_and_the_index_link_every_docs_page():
    assert {"README.md", "method.md", "pgdl-format.md"} <= {p.name for p in PAGES[1:]}
    for index in (ROOT / "README.md", ROOT / "docs" / "README.md"):
        linked = {(index.parent / t.partition("#")[0]).resolve() for t in relative_links(index)}
        assert set(PAGES[1:]) - {index} <= linked


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    targets = relative_links(page)
    assert targets, "a page without relative links is cut off from the other pages"
    broken = []
    for target in targets:
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.is_relative_to(ROOT) or not linked.exists():
            broken.append(f"{target}: no such file in the repository")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{target}: no heading #{fragment} in {linked.relative_to(ROOT)}")
    assert not broken


def test_no_tracked_file_refers_to_a_path_outside_the_repository():
    files = [p for p in tracked(".py", ".ipynb", ".md", ".toml", ".sh", ".ci/run")
             if p != pathlib.Path(__file__).resolve()]
    assert len(files) > 20
    outside = [f"{p.relative_to(ROOT)}: {marker}" for p in files for marker in OUTSIDE
               if marker in p.read_text()]
    assert not outside


def test_every_docs_page_a_tracked_file_names_exists():
    named = {(p.relative_to(ROOT), name) for p in tracked(".py", ".ipynb", ".md")
             for name in re.findall(r"\bdocs/[\w-]+\.md\b", p.read_text())}
    assert named
    assert not {f"{p}: {name}" for p, name in named if not (ROOT / name).is_file()}


def test_every_method_section_reference_names_a_section_of_docs_method():
    method = ROOT / "docs" / "method.md"
    sections = set(re.findall(r"^## (\d+)\. ", method.read_text(), re.M)) if method.exists() \
        else set()
    references = {(p.relative_to(ROOT), number) for p in tracked(".py", ".ipynb", ".md")
                  for number in SECTION_REFERENCE.findall(p.read_text())}
    assert len(references) >= 10  # the code cites sections 1, 3, 4, 5, 6 and 7
    assert not {f"{p}: section {n}" for p, n in references if n not in sections}
