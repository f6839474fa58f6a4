"""Many sessions of one served Study: each sees only its own choices, and a session that ends
leaves nothing of itself behind (no Selection, view or watcher kept alive by shared state).

A session is built the way the server builds one (``build_app`` into its own Bokeh
Document) and ended the way Panel ends one (``_cleanup`` of its root, the napari link
closed). Then every per-session object must be collectable: a weak reference to each
Selection dies, and the registry of live dashboards is empty.
"""

from __future__ import annotations

import gc
import html
import weakref

import pytest

pn = pytest.importorskip("panel")

from bokeh.document import Document  # noqa: E402

from workbench.dashboards import app  # noqa: E402


def _open(study):
    """One session: its dashboard, document, root model and laid-out panel."""
    doc = Document()
    dash = app.build_app(study, sync_url=False)
    page = pn.panel(dash)
    root = page.get_root(doc)
    doc.add_root(root)
    return dash, doc, root, page


def _close(session) -> None:
    dash, doc, root, page = session
    # what Panel does when the browser's session is destroyed: forget the root, clean up
    pn.state._views.pop(root.ref["id"], None)
    page._cleanup(root)
    dash.close()
    doc.clear()


def _texts(doc, css: str) -> list[str]:
    return [m.text for m in doc.models if css in (getattr(m, "css_classes", None) or [])]


def _watcher_count(selection) -> int:
    return sum(len(ws) for per_param in selection.param.watchers.values()
               for ws in per_param.values())


def test_a_new_gene_adds_no_watchers(study):
    """Choosing genes updates the views in place: the watchers on the Selection do not pile
    up (when the landing rebuilt the gene card on every choice, the n-th choice redrew the
    card n times)."""
    session = _open(study)
    dash = session[0]
    genes = dash._gene_options()
    dash.selection.choose_gene(genes[0])
    after_one = _watcher_count(dash.selection)
    for g in genes[1:6] + genes[:2]:
        dash.selection.choose_gene(g)
    assert _watcher_count(dash.selection) == after_one
    title = _texts(session[1], "wb-gene-card-title")
    assert len(title) == 1 and genes[1] in title[0]  # the card shows the last choice
    _close(session)


def _shows(doc, gene: str) -> bool:
    """Whether a session's page shows ``gene`` as its choice (header and gene card)."""
    summary = [html.unescape(t) for t in _texts(doc, "wb-selection-summary")]
    card = [html.unescape(t) for t in _texts(doc, "wb-gene-card-title")]
    return (len(summary) == 1 and f"Gene:</strong> {gene} " in summary[0]
            and len(card) == 1 and f"<strong>{gene}</strong>" in card[0])


def _open_choose_and_check(study, n: int, keep: list | None = None) -> list:
    """Open ``n`` sessions, choose a different gene in each, check that none sees another's
    choice and that a session opened afterwards starts empty; return weak references to
    every Selection, all sessions closed."""
    sessions = [_open(study) for _ in range(n)]
    genes = [g for g in sessions[0][0]._gene_options() if "+" not in g]
    chosen = [genes[i % len(genes)] for i in range(n)]
    for session, gene in zip(sessions, chosen, strict=True):
        session[0].selection.choose_gene(gene)
    for session, gene in zip(sessions, chosen, strict=True):
        assert session[0].selection.perturbation == gene
        assert _shows(session[1], gene)
        assert not any(_shows(session[1], g) for g in set(chosen) - {gene})
    late = _open(study)  # a session opened after all those choices starts empty
    assert late[0].selection.to_dict() == {"perturbation": "", "concept": "", "pair": "",
                                           "samples": []}
    sessions.append(late)
    assert len({id(s[0].selection) for s in sessions}) == n + 1
    refs = [weakref.ref(s[0].selection) for s in sessions]
    if keep is not None:  # something shared that holds one view of the first session
        keep.append(sessions[0][0].view("grn"))
    for session in sessions:
        _close(session)
    return refs


@pytest.mark.slow
def test_twenty_sessions_keep_apart_and_leave_nothing_behind(study):
    gc.collect()  # sessions of earlier tests may still wait for the collector
    before = len(app.LIVE)
    refs = _open_choose_and_check(study, 20)
    gc.collect()
    assert sum(r() is not None for r in refs) == 0
    assert len(app.LIVE) <= before


def test_the_leak_check_sees_a_session_kept_alive(study):
    """The check above fails when something shared holds a piece of a session (here a list
    that keeps one view): that session's Selection stays alive, the others do not."""
    kept: list = []
    gc.collect()
    refs = _open_choose_and_check(study, 2, keep=kept)
    gc.collect()
    assert refs[0]() is not None and refs[0]() is kept[0].selection
    assert refs[1]() is None and refs[2]() is None
