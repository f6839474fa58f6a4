"""Text from users and Studies reaches the page as text, never as markup."""

from __future__ import annotations

import html

import pytest

pn = pytest.importorskip("panel")

from workbench.dashboards.base import error_pane, html_text, md_text  # noqa: E402
from workbench.dashboards.state import MAX_NAME, Selection, clean_name  # noqa: E402
from workbench.errors import WorkbenchError  # noqa: E402

PAYLOADS = ['<img src=x onerror="window.__pwned=1">', "<script>window.__pwned=1</script>",
            "[click](javascript:window.__pwned=1)", "![x](http://evil.example/x.png)",
            "**bold** _it_ `code` # head", "G01+G05"]


def _rendered(markdown: str) -> str:
    """The HTML Panel's Markdown pane sends to the browser for ``markdown``."""
    pane = pn.pane.Markdown(markdown)
    return html.unescape(pane._transform_object(markdown)["object"])


@pytest.mark.parametrize("payload", PAYLOADS)
def test_md_text_renders_the_literal_text(payload):
    out = _rendered(f"Gene: **{md_text(payload)}**")
    assert "<img" not in out and "<script" not in out and "<a " not in out
    assert "<em>" not in out and "<code>" not in out and "<h1" not in out
    # the reader sees exactly what was typed
    text = html.unescape(out.replace("<p>", "").replace("</p>", "").replace(
        "<strong>", "").replace("</strong>", "")).strip()
    assert text == f"Gene: {payload}"


def test_md_text_keeps_our_code_spans_and_escapes_the_rest():
    out = _rendered(md_text("run `workbench grn STUDY` for <b>G07</b>", code=True))
    assert "<code>workbench grn STUDY</code>" in out and "<b>" not in out
    err = error_pane(WorkbenchError("gene '<img src=x onerror=alert(1)>' is unknown",
                                    "run `workbench embed STUDY`"))
    shown = _rendered(err.object)
    assert "<img" not in shown and "<code>workbench embed STUDY</code>" in shown


def test_html_text_escapes_tags_and_quotes():
    assert html_text('<img src="x" onerror=\'y\'>') == (
        "&lt;img src=&quot;x&quot; onerror=&#x27;y&#x27;&gt;")
    assert html_text(None) == ""


def test_tile_captions_are_escaped(study):
    from workbench.dashboards.images import tile_html

    crop = str(study.read_obs("profiles").index[0])
    out = tile_html(study, [crop], [(crop, "<img src=x onerror=alert(1)>")])
    assert "<img src=x" not in out and "&lt;img src=x onerror=alert(1)&gt;" in out
    assert out.count("<img ") == 1  # only the crop itself


def test_selection_keeps_plain_bounded_names():
    assert clean_name("G07\n\x00<b>") == "G07<b>"  # control characters dropped
    assert len(clean_name("x" * 10_000)) == MAX_NAME
    sel = Selection()
    sel.update({"perturbation": "A" * 5000, "samples": ["s\r\n1"]})
    assert len(sel.perturbation) == MAX_NAME and sel.samples == ["s1"]
    sel.choose_gene("G01\t")
    assert sel.perturbation == "G01"
