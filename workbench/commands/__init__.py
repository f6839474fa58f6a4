"""One module per ``workbench`` subcommand: ``HELP``, ``add_arguments(parser)``, ``run(args)``.

Modules keep their top-level imports light; heavy libraries load inside ``run``.
"""
