"""Serving the dashboards: one Bokeh/Panel server, one fresh page per browser session.

Every session calls :func:`workbench.dashboards.app.build_app` anew, so each has its own
Study handle, Selection and views: nothing mutable is shared between users. What sessions
do share is the read cache of :mod:`workbench.dashboards.cache`, keyed on Study id and
artefact version and never mutated. The server binds 127.0.0.1 unless told otherwise.

To serve a lab:

* ``basic_auth_file``: the credentials, read from a file so that no password shows in
  ``ps`` or the shell history. The file is a JSON object of ``user: password`` pairs, or
  one line holding a shared password (any user name is then accepted). Failed logins are
  throttled per client address (:class:`LoginThrottle`): after a few failures each further
  attempt must wait, doubling up to a minute, and gets HTTP 429 meanwhile.
* ``ssl_certfile`` / ``ssl_keyfile``: serve over HTTPS (passed to the Bokeh server).
* ``allow_websocket_origin``: the host:port browsers use; a websocket from any other
  Origin is refused (HTTP 403), so another site cannot drive a user's session.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import threading
import time
from pathlib import Path

from workbench.errors import WorkbenchError

LOCAL_ADDRESSES = ("127.0.0.1", "localhost", "::1")
#: Seconds a page may take between being served and opening its websocket (Bokeh's
#: default is 300).
SESSION_TOKEN_EXPIRATION = 1800


def is_local(address: str) -> bool:
    """Whether ``address`` only accepts connections from this machine.

    Parameters
    ----------
    address : str
        The address the server binds.

    Returns
    -------
    bool
        True for the loopback addresses.
    """
    return address in LOCAL_ADDRESSES


def make_app(study_path, views=None, *, local: bool = True):
    """A per-session factory: each call opens the Study and builds a new page.

    Parameters
    ----------
    study_path : str or os.PathLike
        The ``NAME.study`` folder.
    views : list of str or None
        The views each page opens with; None for the default set.
    local : bool
        Served on the user's own machine (the page then offers to open napari).

    Returns
    -------
    callable
        Takes no arguments and returns a new dashboard.
    """
    study_path = Path(study_path)

    def session():
        from workbench.dashboards.app import build_app

        return build_app(study_path, views=views, local=local)

    return session


def warm_up(study_path, views=None, *, local: bool = True) -> float:
    """Build one page off-screen so that the first user's page finds the caches full.

    The views' artefact reads, layouts and summaries are cached per artefact version and
    shared by sessions (:mod:`workbench.dashboards.cache`); without this the first page of
    a new server pays for all of them (the realistic demo's cold first render was 13 s,
    against 7 s for the next page). The page is built into a document of its own and
    dropped; nothing of it is shown or kept but the caches.

    Parameters
    ----------
    study_path : str or os.PathLike
        The ``NAME.study`` folder.
    views : list of str or None
        The views pages open with; None for the default set.
    local : bool
        As for :func:`make_app`.

    Returns
    -------
    float
        Seconds it took.
    """
    import time

    import panel as pn
    from bokeh.document import Document

    t0 = time.perf_counter()
    old = pn.state.curdoc
    doc = Document()
    pn.state.curdoc = doc
    try:
        from workbench.dashboards.app import build_app

        # no URL to follow: a Location made for this document would be kept by Panel's
        # table of locations (keyed weakly by the document it refers to) for good
        page = pn.panel(build_app(study_path, views=views, local=local, sync_url=False))
        root = page.get_root(doc)
        # Panel registers every root it renders until its session ends, and this one has
        # no session: without the clean-up the page would live as long as the server
        page._cleanup(root)
        pn.state._views.pop(root.ref["id"], None)
    finally:
        pn.state.curdoc = old
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------- credentials
def read_credentials(path: str | os.PathLike) -> dict[str, str] | str:
    """The credentials in ``path``: a ``{user: password}`` dict (a JSON object) or one
    shared password (the file's first line).

    Parameters
    ----------
    path : str or os.PathLike
        The credentials file.

    Returns
    -------
    dict or str
        The users and their passwords, or the shared password.

    Raises
    ------
    WorkbenchError
        When the file is missing, empty, invalid JSON, or holds no user with a password.
    """
    path = Path(path)
    if not path.is_file():
        raise WorkbenchError(f"the basic-auth file {path} does not exist.",
                             "write a JSON object of user: password pairs, or one line "
                             "with a password, into it (readable by you only: chmod 600).")
    text = path.read_text(encoding="utf-8").strip()
    if text.startswith("{"):
        try:
            users = json.loads(text)
        except json.JSONDecodeError as exc:
            raise WorkbenchError(f"the basic-auth file {path} is not valid JSON ({exc.msg} at "
                                 f"line {exc.lineno}).",
                                 'write {"user": "password", ...} or one line with a '
                                 "password.") from None
        if not users or not all(isinstance(k, str) and isinstance(v, str) and v
                                for k, v in users.items()):
            raise WorkbenchError(f"the basic-auth file {path} holds no user with a password.",
                                 'write {"user": "password", ...} with non-empty passwords.')
        return dict(users)
    password = text.splitlines()[0].strip() if text else ""
    if not password:
        raise WorkbenchError(f"the basic-auth file {path} is empty.",
                             "write a password (or a JSON object of users) into it.")
    return password


def check_password(credentials: dict[str, str] | str, user: str, password: str) -> bool:
    """Whether ``user``/``password`` match (compared in constant time).

    Parameters
    ----------
    credentials : dict or str
        ``{user: password}``, or one shared password (any user name).
    user : str
        The user name given.
    password : str
        The password given.

    Returns
    -------
    bool
        True when they match.
    """
    if isinstance(credentials, dict):
        want = credentials.get(user)
        if want is None:
            hmac.compare_digest(password.encode(), b"x" * max(len(password), 1))
            return False
    else:
        want = credentials
    return hmac.compare_digest(password.encode(), want.encode())


class LoginThrottle:
    """Failed logins per client: after ``free`` failures, each next attempt must wait
    ``base * 2**(extra failures)`` seconds (at most ``cap``) since the last failure.
    A success clears the client's record.

    Parameters
    ----------
    free : int
        Failures allowed before attempts are delayed.
    base : float
        First delay, in seconds.
    cap : float
        Longest delay, in seconds.
    clock : callable
        Returns the current time in seconds (monotonic).
    """

    def __init__(self, free: int = 3, base: float = 1.0, cap: float = 60.0, clock=time.monotonic):
        self.free, self.base, self.cap, self.clock = free, base, cap, clock
        self._failures: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def wait(self, client: str) -> float:
        """Seconds the client must still wait before its next attempt (0: may try).

        Parameters
        ----------
        client : str
            The client's address.

        Returns
        -------
        float
            Seconds to wait.
        """
        with self._lock:
            n, last = self._failures.get(client, (0, 0.0))
        if n < self.free:
            return 0.0
        delay = min(self.cap, self.base * 2 ** (n - self.free))
        return max(0.0, last + delay - self.clock())

    def failed(self, client: str) -> None:
        """Record a failed login of ``client`` (past 10,000 clients, the 5,000 oldest records
        are dropped).

        Parameters
        ----------
        client : str
            The client's address.
        """
        with self._lock:
            n, _ = self._failures.get(client, (0, 0.0))
            self._failures[client] = (n + 1, self.clock())
            if len(self._failures) > 10_000:  # bound the memory an attacker can fill
                oldest = sorted(self._failures, key=lambda k: self._failures[k][1])[:5_000]
                for k in oldest:
                    del self._failures[k]

    def succeeded(self, client: str) -> None:
        """Forget the failures of ``client`` after a successful login.

        Parameters
        ----------
        client : str
            The client's address.
        """
        with self._lock:
            self._failures.pop(client, None)


def auth_provider(credentials: dict[str, str] | str, throttle: LoginThrottle | None = None):
    """A Panel login page (Panel's basic one) that checks ``credentials`` held in memory
    and throttles failed attempts.

    Parameters
    ----------
    credentials : dict or str
        ``{user: password}``, or one shared password (any user name).
    throttle : LoginThrottle or None
        The throttle of failed logins; None makes a default one.

    Returns
    -------
    panel.auth.BasicAuthProvider
        The provider, with its throttle as ``.throttle``.
    """
    import tornado.escape
    from panel.auth import BasicAuthProvider, BasicLoginHandler, _validate_next_url
    from panel.io.state import state

    throttle = throttle or LoginThrottle()

    class ThrottledLoginHandler(BasicLoginHandler):
        def post(self):
            client = self.request.remote_ip or "?"
            wait = throttle.wait(client)
            if wait > 0:
                self.set_status(429)
                self.set_header("Retry-After", str(int(wait) + 1))
                self.finish(f"Too many failed logins: try again in {int(wait) + 1} s.")
                return
            user = self.get_argument("username", "")
            password = self.get_argument("password", "")
            if check_password(credentials, user, password):
                throttle.succeeded(client)
                self.set_current_user(user or "user")
                self.redirect(_validate_next_url(self.get_cookie("next_url", state.base_url)))
            else:
                throttle.failed(client)
                msg = tornado.escape.url_escape("Invalid username or password!")
                self.redirect(self._login_endpoint + "?error=" + msg)

    class Provider(BasicAuthProvider):
        @property
        def login_handler(self):
            ThrottledLoginHandler._login_endpoint = self._login_endpoint
            ThrottledLoginHandler._login_template = self._login_template
            return ThrottledLoginHandler

    provider = Provider()
    provider.throttle = throttle
    return provider


def serve_study(path: str | os.PathLike, address: str = "127.0.0.1", port: int = 5006,
                show: bool = False, *, allow_websocket_origin=None, basic_auth: str | None = None,
                basic_auth_file: str | os.PathLike | None = None,
                ssl_certfile: str | os.PathLike | None = None,
                ssl_keyfile: str | os.PathLike | None = None,
                cookie_secret: str | None = None, views=None, threaded: bool = False,
                title: str | None = None, throttle: LoginThrottle | None = None,
                warm: bool = True, **kw):
    """Serve the dashboards of the Study at ``path`` on ``http://address:port/``.

    ``basic_auth`` is a password (or the path of a credentials file); prefer
    ``basic_auth_file``, whose content never appears on a command line. Blocks until
    interrupted, unless ``threaded`` (then returns the server thread, whose ``stop()`` shuts
    it down). Extra keywords go to :func:`panel.serve`.

    Parameters
    ----------
    path : str or os.PathLike
        The ``NAME.study`` folder (opened and checked before a port is bound).
    address : str
        Address to bind; anything but a loopback address without a login prints a warning.
    port : int
        Port to bind.
    show : bool
        Open a browser tab.
    allow_websocket_origin : list of str or None
        ``host:port`` names browsers use to reach the server; None allows the bound address
        (and ``localhost`` when local).
    basic_auth : str or None
        A password, or the path of a credentials file.
    basic_auth_file : str, os.PathLike or None
        A credentials file (see :func:`read_credentials`); None for no login unless
        ``basic_auth`` is given.
    ssl_certfile, ssl_keyfile : str, os.PathLike or None
        PEM certificate and private key for HTTPS (both or neither).
    cookie_secret : str or None
        Secret of the login cookies; None takes ``$WORKBENCH_COOKIE_SECRET``, else a random one.
    views : list of str or None
        The views each page opens with; None for the default set.
    threaded : bool
        Run the server in a thread and return it instead of blocking.
    title : str or None
        Browser tab title; None names the Study.
    throttle : LoginThrottle or None
        Throttle of failed logins; None makes a default one.
    warm : bool
        Build one page off-screen before serving (:func:`warm_up`), so the first user does
        not wait for the artefact reads.
    **kw
        Passed to :func:`panel.serve`.

    Returns
    -------
    object
        What :func:`panel.serve` returns: the server thread when ``threaded``, else the
        server, once it has stopped.
    """
    import panel as pn

    from workbench.data.study import Study

    study = Study.open(path)  # fail before binding a port
    origins = list(allow_websocket_origin or [])
    if not origins:
        origins = [f"{address}:{port}"] + ([f"localhost:{port}", f"127.0.0.1:{port}"]
                                           if is_local(address) else [])
    credentials = None
    if basic_auth_file is not None:
        credentials = read_credentials(basic_auth_file)
    elif basic_auth:
        credentials = (read_credentials(basic_auth) if Path(basic_auth).is_file()
                       else str(basic_auth))
    if not is_local(address) and credentials is None:
        print(f"warning: serving {study.path.name} on {address} without --basic-auth-file: "
              "anyone who can reach this port can read the Study.")
    if credentials is not None:
        cookie_secret = cookie_secret or os.environ.get("WORKBENCH_COOKIE_SECRET") or \
            secrets.token_urlsafe(32)
        kw.update(auth_provider=auth_provider(credentials, throttle), cookie_secret=cookie_secret)
    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise WorkbenchError("TLS needs both --ssl-certfile and --ssl-keyfile.",
                             "give the certificate and its private key.")
    if ssl_certfile is not None:
        for f in (ssl_certfile, ssl_keyfile):
            if not Path(f).is_file():
                raise WorkbenchError(f"the TLS file {f} does not exist.",
                                     "give the path of the PEM certificate and key.")
        kw.update(ssl_certfile=str(ssl_certfile), ssl_keyfile=str(ssl_keyfile))
    # Bokeh refuses a page's websocket when its session token is older than five minutes.
    # The server builds one page at a time, so when a lab opens twenty pages at once on a
    # small machine the last pages wait longer than that and never connect ("Token is
    # expired", found by the 20-session load test); half an hour covers any such queue.
    kw.setdefault("session_token_expiration", SESSION_TOKEN_EXPIRATION)
    if port == 0 and threaded:
        raise WorkbenchError("port 0 cannot be used with a threaded server here.",
                             "pick a free port.")
    if warm:
        print(f"preparing the first page of {study.path.name} ...", flush=True)
        print(f"ready in {warm_up(study.path, views, local=is_local(address)):.1f} s",
              flush=True)
    return pn.serve({"/": make_app(study.path, views, local=is_local(address))}, port=port,
                    address=address, websocket_origin=origins, show=show, threaded=threaded,
                    title=title or f"workbench: {study.title}", liveness=True, **kw)
