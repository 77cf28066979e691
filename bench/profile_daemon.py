"""Run the alertd command line under cProfile and write the stats when it exits.

    .venv/bin/python bench/profile_daemon.py OUT.prof run --config-dir ... --state-dir ...

Everything after OUT.prof is passed to ``alertd.cli.main``. The daemon handles SIGTERM itself
(a graceful stop), so ``main`` returns and the stats of its main thread are dumped to OUT.prof
(read them with ``python -m pstats OUT.prof`` or ``print_profile`` below). Work done in other
threads (``asyncio.to_thread``) is not in the profile.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sys


def main() -> int:
    out, argv = sys.argv[1], sys.argv[2:]
    from alertd.cli import main as alertd_main  # imported outside the profile

    profile = cProfile.Profile()
    code = 1
    profile.enable()
    try:
        code = int(alertd_main(argv))
    finally:
        profile.disable()
        profile.dump_stats(out)
    return code


def print_profile(path: str, top: int = 25) -> str:
    """Return the ``top`` functions by own time and by cumulative time, as text."""
    buf = io.StringIO()
    stats = pstats.Stats(path, stream=buf)
    stats.strip_dirs()
    buf.write("# by own time (tottime)\n")
    stats.sort_stats("tottime").print_stats(top)
    buf.write("# by cumulative time\n")
    stats.sort_stats("cumulative").print_stats(top)
    return buf.getvalue()


if __name__ == "__main__":
    sys.exit(main())
