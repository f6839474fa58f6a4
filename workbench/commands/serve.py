"""``workbench serve STUDY``: the linked dashboards of a Study in the browser."""

from __future__ import annotations

HELP = "serve the linked dashboards of a Study (embeddings, concepts, interactions, GRN)"
DESCRIPTION = (
    "Serve the Panel dashboards of a Study at http://ADDRESS:PORT/. Binds 127.0.0.1 unless "
    "--address says otherwise; when exposing it to a lab, give --allow-websocket-origin "
    "(the host:port browsers will use), --basic-auth-file (credentials read from a file, so no "
    "password shows in ps; failed logins are throttled) and, on a shared network, "
    "--ssl-certfile/--ssl-keyfile for HTTPS."
)


def add_arguments(parser) -> None:
    """Declare the arguments of ``workbench serve``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser; the arguments are added to it.
    """
    parser.add_argument("study", help="the NAME.study folder")
    parser.add_argument("--address", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=5006, help="port (default 5006)")
    parser.add_argument("--allow-websocket-origin", action="append", default=None,
                        metavar="HOST[:PORT]",
                        help="host:port browsers use to reach the server (repeatable)")
    parser.add_argument("--basic-auth-file", default=None, metavar="FILE",
                        help="require a login: a JSON file of user/password pairs, or a file "
                             "whose first line is a shared password (chmod 600 it)")
    parser.add_argument("--basic-auth", default=None, metavar="FILE.json|PASSWORD",
                        help="like --basic-auth-file; a password given here shows in ps, so "
                             "prefer the file")
    parser.add_argument("--ssl-certfile", default=None, metavar="CERT.pem",
                        help="serve over HTTPS with this certificate (with --ssl-keyfile)")
    parser.add_argument("--ssl-keyfile", default=None, metavar="KEY.pem",
                        help="the certificate's private key")
    parser.add_argument("--cookie-secret", default=None,
                        help="secret for auth cookies (default: $WORKBENCH_COOKIE_SECRET or random)")
    parser.add_argument("--views", default=None,
                        help="comma-separated views to open with (2-4 of embeddings, "
                             "interactions, concepts, grn, perturbation_map, images)")
    parser.add_argument("--show", action="store_true", help="open a browser tab")
    parser.add_argument("--no-warm", action="store_true",
                        help="serve at once, without building a first page off-screen (the "
                             "first user then waits for the artefact reads)")


def run(args) -> int:
    """Serve a Study's dashboards until interrupted.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments (see :func:`add_arguments`).

    Returns
    -------
    int
        0 once the server stops.
    """
    from workbench.dashboards.serve import serve_study

    views = [v.strip() for v in args.views.split(",")] if args.views else None
    scheme = "https" if args.ssl_certfile else "http"
    print(f"serving {args.study} at {scheme}://{args.address}:{args.port}/  (Ctrl+C to stop)")
    serve_study(args.study, address=args.address, port=args.port, show=args.show,
                allow_websocket_origin=args.allow_websocket_origin,
                basic_auth=args.basic_auth, basic_auth_file=args.basic_auth_file,
                ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile,
                cookie_secret=args.cookie_secret, views=views, warm=not args.no_warm)
    return 0
