"""``python -m service``: gunicorn's command line with this server's master.

The same options as ``gunicorn`` (``-c gunicorn.conf.py`` is the default config, and an
app argument overrides ``wsgi_app``), run by ``service.arbiter.Arbiter``, which drains on
SIGTERM and swaps workers on SIGHUP only once the new ones are ready. gunicorn has no
setting for the master's class; its documented way to customise the server is an
application object, so this is one.
"""

from __future__ import annotations

import sys

from gunicorn.app.wsgiapp import WSGIApplication

from .arbiter import Arbiter


class Server(WSGIApplication):
    def run(self) -> None:
        if self.cfg.print_config or self.cfg.check_config:
            super().run()  # prints or checks the configuration, then exits
        if self.cfg.daemon:
            sys.exit("python -m service runs in the foreground: leave daemonising to the supervisor")
        Arbiter(self).run()


def main() -> None:
    Server("%(prog)s [OPTIONS] [APP_MODULE]", prog="python -m service").run()


if __name__ == "__main__":
    main()
