"""The one progress report of long work (simulate, pseudospectra, whole-layer analyses).

``tqdm.auto`` draws it when tqdm is installed (a widget in Jupyter when ipywidgets is there, a text bar
otherwise); without tqdm a one-line bar goes to stderr. It shows only in interactive sessions (a terminal on
stderr, or a Jupyter kernel) and only once the work has run for ``delay`` seconds, so quick calls and
pipelines stay silent. The CLI turns it off for ``--json`` with :func:`set_enabled`.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from typing import Any, Iterable, Iterator, TypeVar

__all__ = ["Progress", "track", "set_enabled", "interactive"]

T = TypeVar("T")

# None: decide per bar (interactive sessions only); True/False: forced on/off for the whole process.
_FORCED: bool | None = None
# Seconds of work before a bar appears: anything quicker stays silent.
DELAY = 1.0


def set_enabled(flag: bool | None) -> None:
    """Force progress bars on (True) or off (False) for the whole process, or back to automatic (None).

    Parameters
    ----------
    flag : bool or None
        ``None`` restores the default: bars in terminals and Jupyter kernels only.
    """
    global _FORCED
    _FORCED = flag


def _in_notebook() -> bool:
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def interactive() -> bool:
    """Whether bars show by default: a Jupyter kernel runs this process or stderr is a terminal.

    Returns
    -------
    bool
        :func:`set_enabled`'s forced value when one is set.
    """
    if _FORCED is not None:
        return _FORCED
    try:
        return _in_notebook() or sys.stderr.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stderr
        return False


def _tqdm() -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tqdm.auto warns when ipywidgets is missing, then draws text
            from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


class Progress:
    """A progress bar over ``total`` units of work; a no-op when disabled.

    Parameters
    ----------
    total : int
        Units of work (tokens, grid points, layers).
    desc : str
        What runs, e.g. ``"simulate"``.
    unit : str
        Name of one unit, e.g. ``"tok"``.
    enabled : bool, optional
        Default: :func:`interactive`.
    delay : float
        Seconds before the bar appears.

    Use it as a context manager and call :meth:`update` with the units just finished.
    """

    def __init__(self, total: int, desc: str, unit: str = "it", enabled: bool | None = None,
                 delay: float | None = None) -> None:
        self.total, self.desc, self.unit = max(int(total), 0), desc, unit
        self.enabled = interactive() if enabled is None else bool(enabled)
        self.delay = DELAY if delay is None else float(delay)
        self.done = 0
        self._start = time.perf_counter()
        self._last = 0.0
        self._bar = None
        if self.enabled:
            tqdm = _tqdm()
            if tqdm is not None:
                self._bar = tqdm(total=self.total, desc=desc, unit=unit, delay=self.delay, leave=False,
                                 file=sys.stderr, unit_scale=unit == "tok", dynamic_ncols=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more finished units.

        Parameters
        ----------
        n : int
        """
        self.done += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.perf_counter() - self._start
        if now < self.delay or (now - self._last < 0.2 and self.done < self.total):
            return
        self._last = now
        rate = self.done / max(now, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else math.inf
        filled = "#" * int(30 * self.done / max(self.total, 1))
        print(f"\r{self.desc} [{filled:<30}] {self.done}/{self.total} {self.unit}  {rate:,.0f} {self.unit}/s  "
              f"eta {eta:.0f}s", end="", file=sys.stderr, flush=True)

    def describe(self, desc: str) -> None:
        """Rename the running work, e.g. ``"analyze layer 3: hinf"`` while one long step runs.

        Parameters
        ----------
        desc : str
        """
        self.desc = desc
        if self._bar is not None:
            self._bar.set_description_str(desc)

    def close(self) -> None:
        """Remove the bar (tqdm) or end its line (stderr fallback)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled and self._last:
            print(file=sys.stderr, flush=True)
            self._last = 0.0


def track(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it",
          enabled: bool | None = None) -> Iterator[T]:
    """Iterate over ``items`` with a :class:`Progress` bar.

    Parameters
    ----------
    items : iterable
    desc : str
    total : int, optional
        Default ``len(items)``.
    unit : str
    enabled : bool, optional
        Default: :func:`interactive`.

    Returns
    -------
    iterator
        The items, unchanged.
    """
    n = len(items) if total is None else total  # type: ignore[arg-type]
    with Progress(n, desc, unit=unit, enabled=enabled) as bar:
        for item in items:
            yield item
            bar.update(1)
