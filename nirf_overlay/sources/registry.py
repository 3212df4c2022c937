"""Every kind of source, one entry each, and the one place that chooses among them.

Modelled on imageio v3 (``config/plugins.py`` holds one entry per plugin;
``core/imopen.py`` picks one): an entry names its kind, says how it
recognises a :class:`~nirf_overlay.sources.SourceSpec` and how it describes
one, and names its loader as a ``"module:callable"`` string.  The loader's
module is imported only when its kind is chosen, so a missing backend fails
only for the inputs that need it, and a higher layer (the recording package,
which reads sessions) can provide a kind without the sources importing it.

Adding a kind
-------------
Write its module (a :class:`~nirf_overlay.sources.base.FrameSource` and a
loader ``callable(spec) -> FrameSource`` that raises
:class:`~nirf_overlay.errors.SourceError` with one line), then add its entry
to :data:`KINDS`, before the kind whose input it specialises: the first
entry that recognises a spec wins.
"""

from __future__ import annotations

import importlib
import operator
import os
from dataclasses import dataclass
from typing import Callable

from ..errors import SourceError
from ..privacy import shown_name
from .base import FrameSource
from .sample import as_sample

__all__ = ["SourceKind", "KINDS", "kind_of", "check_spec", "open_source"]


def _as_given(spec: "SourceSpec") -> "SourceSpec":
    return spec


@dataclass(frozen=True)
class SourceKind:
    """One kind of source.

    Attributes
    ----------
    name : short identifier (``"phantom"``, ``"pair"`` ...)
    title : what it is, in a few words, for messages
    recognises : ``spec -> bool``: this kind reads ``spec``
    describe : ``spec -> str``: one line naming the input (``SourceSpec.describe``)
    loader : ``"module:callable"``; ``callable(spec)`` opens the source
    prepare : ``spec -> spec``: refuses, without opening anything, what can be
        refused (:class:`SourceError`), and returns the spec the loader gets
    """

    name: str
    title: str
    recognises: Callable[["SourceSpec"], bool]
    describe: Callable[["SourceSpec"], str]
    loader: str
    prepare: Callable[["SourceSpec"], "SourceSpec"] = _as_given

    def load(self) -> Callable[..., FrameSource]:
        """Import the loader (only now), or raise a one-line :class:`SourceError`."""
        module, _, attribute = self.loader.partition(":")
        try:
            return operator.attrgetter(attribute)(importlib.import_module(module))
        except ImportError as e:  # a backend this kind needs is not installed
            raise SourceError(f"{self.title}: cannot load its reader {self.loader} ({e})") from e

    def open(self, spec: "SourceSpec") -> FrameSource:
        return self.load()(spec)


def _inputs_named(spec: "SourceSpec") -> int:
    """How many inputs ``spec`` names; a spec names at most one."""
    return sum(bool(x) for x in (spec.session, spec.wl or spec.nir, spec.combined, spec.phantom))


def _wl_with_nir(spec: "SourceSpec") -> "SourceSpec":
    if not (spec.wl and spec.nir):
        missing = "--nir" if spec.wl else "--wl"
        raise SourceError(f"{missing}: missing (--wl and --nir go together)")
    return spec


def _session_dir(spec: "SourceSpec") -> "SourceSpec":
    path = spec.session
    if not os.path.exists(path):
        raise SourceError(f"{path}: no such file or directory; give a recorded session folder, "
                          "or --wl/--nir, --combined or --phantom")
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "session.json")):
            raise SourceError(f"{path}: not a recorded session (no session.json); give a folder "
                              "that nirf-overlay record wrote, or --wl/--nir for video files")
        return spec
    raise SourceError(
        f"{path}: a single file is not a source; use --combined FILE for a dual-view "
        "stream or --wl FILE --nir FILE for two streams"
    )


#: The kinds in the order they are tried (the first that recognises a spec wins).
KINDS: tuple[SourceKind, ...] = (
    SourceKind("phantom", "synthetic phantom",
               recognises=lambda spec: bool(spec.phantom),
               describe=lambda spec: f"phantom(seed={spec.seed})",
               loader="nirf_overlay.sources.phantom_source:PhantomSource.from_spec"),
    SourceKind("combined", "combined stream",
               recognises=lambda spec: bool(spec.combined),
               describe=lambda spec: f"combined {shown_name(spec.combined, spec.keep_paths)}",
               loader="nirf_overlay.sources.combined:open_combined"),
    SourceKind("pair", "WL + NIR streams",
               recognises=lambda spec: bool(spec.wl or spec.nir),
               describe=lambda spec: (f"WL {shown_name(spec.wl, spec.keep_paths)} + "
                                      f"NIR {shown_name(spec.nir, spec.keep_paths)}"),
               loader="nirf_overlay.sources.video:open_pair", prepare=_wl_with_nir),
    SourceKind("session", "recorded session",
               recognises=lambda spec: bool(spec.session),
               describe=lambda spec: shown_name(spec.session, spec.keep_paths),
               loader="nirf_overlay.recording.session:SessionSource.from_spec",
               prepare=_session_dir),
    SourceKind("sample", "bundled sample",
               recognises=lambda spec: _inputs_named(spec) == 0,
               describe=lambda spec: "bundled sample",
               loader="nirf_overlay.sources.video:open_pair", prepare=as_sample),
)


def kind_of(spec: "SourceSpec") -> SourceKind:
    """The kind that reads ``spec``: the first in :data:`KINDS` that recognises it."""
    return next(kind for kind in KINDS if kind.recognises(spec))


def _choose(spec: "SourceSpec") -> tuple[SourceKind, "SourceSpec"]:
    if _inputs_named(spec) > 1:
        raise SourceError(
            "source: give only one of a session directory, --wl/--nir, --combined or --phantom"
        )
    kind = kind_of(spec)
    return kind, kind.prepare(spec)


def check_spec(spec: "SourceSpec") -> None:
    """Raise :class:`SourceError` for what :func:`open_source` refuses before opening.

    Opens nothing and imports no backend: the open dialog calls it to say
    what is wrong before it closes.
    """
    _choose(spec)


def open_source(spec: "SourceSpec") -> FrameSource:
    """Open the source ``spec`` names; raise :class:`SourceError` if it cannot."""
    kind, spec = _choose(spec)
    source = kind.open(spec)
    source.profile = spec.profile
    source.info.keep_paths = spec.keep_paths  # what writers of its files name (privacy.py)
    return source
