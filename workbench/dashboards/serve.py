"""Serving the dashboards: one Bokeh/Panel server, one fresh page per browser session.

Every session calls :func:`workbench.dashboards.app.build_app` anew, so each has its own
Study handle, Selection and views: nothing mutable is shared between users. What sessions
do share is the read cache of :mod:`workbench.dashboards.cache`, keyed on Study id and
artefact version and never mutated. The server binds 127.0.0.1 unless told otherwise; to
expose it to a lab, give ``address="0.0.0.0"``, the origins browsers will use
(``allow_websocket_origin``) and ``basic_auth`` (a password, or a JSON file of
user: password pairs).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from workbench.errors import WorkbenchError

LOCAL_ADDRESSES = ("127.0.0.1", "localhost", "::1")


def is_local(address: str) -> bool:
    return address in LOCAL_ADDRESSES


def make_app(study_path, views=None, *, local: bool = True):
    """A per-session factory: each call opens the Study and builds a new page."""
    study_path = Path(study_path)

    def session():
        from workbench.dashboards.app import build_app

        return build_app(study_path, views=views, local=local)

    return session


def serve_study(path: str | os.PathLike, address: str = "127.0.0.1", port: int = 5006,
                show: bool = False, *, allow_websocket_origin=None, basic_auth: str | None = None,
                cookie_secret: str | None = None, views=None, threaded: bool = False,
                title: str | None = None, **kw):
    """Serve the dashboards of the Study at ``path`` on ``http://address:port/``.

    Blocks until interrupted, unless ``threaded`` (then returns the server thread, whose
    ``stop()`` shuts it down). Extra keywords go to :func:`panel.serve`.
    """
    import panel as pn

    from workbench.data.study import Study

    study = Study.open(path)  # fail before binding a port
    origins = list(allow_websocket_origin or [])
    if not origins:
        origins = [f"{address}:{port}"] + ([f"localhost:{port}", f"127.0.0.1:{port}"]
                                           if is_local(address) else [])
    if not is_local(address) and not basic_auth:
        print(f"warning: serving {study.path.name} on {address} without --basic-auth: anyone "
              "who can reach this port can read the Study.")
    if basic_auth:
        cookie_secret = cookie_secret or os.environ.get("WORKBENCH_COOKIE_SECRET") or \
            secrets.token_urlsafe(32)
        kw.update(basic_auth=basic_auth, cookie_secret=cookie_secret)
    if port == 0 and threaded:
        raise WorkbenchError("port 0 cannot be used with a threaded server here.",
                             "pick a free port.")
    return pn.serve({"/": make_app(study.path, views, local=is_local(address))}, port=port,
                    address=address, websocket_origin=origins, show=show, threaded=threaded,
                    title=title or f"workbench: {study.title}", liveness=True, **kw)
