"""The one interface every frame source implements.

A source is opened by its constructor (which validates its inputs and raises
:class:`~nirf_overlay.errors.SourceError` with a one-line message), then read
pair by pair.  Live sources hand out the *newest* pair and count what they
drop; file sources hand out every pair in order.
"""

from __future__ import annotations

import abc
from typing import Iterator, Optional, Sequence

from ..frame import FramePair, SourceInfo, SourceStats
from ..settings import Settings


class FrameSource(abc.ABC):
    """Base class of all sources (files, devices, streams, sessions, phantom).

    Subclasses set ``self.info`` and ``self.stats`` in ``__init__`` and
    implement :meth:`read` and :meth:`close`.  Seekable sources (files,
    sessions, phantom) also implement :meth:`seek`.
    """

    info: SourceInfo
    stats: SourceStats
    #: a calibration profile that comes with this input (the bundled sample's),
    #: set by :func:`~nirf_overlay.sources.open_source` from ``SourceSpec.profile``
    profile: Optional[str] = None
    #: ``(frame, label)`` items (:class:`~nirf_overlay.recording.Marker`)
    #: the user set while recording, in recording order; only sessions have any
    markers: Sequence = ()
    #: any frame can be read next at the cost of reading the next one (a session
    #: of intra-only codecs: one packet decoded, nothing before it), so a replay
    #: that falls behind seeks forward instead of decoding frames it will not show
    random_access: bool = False

    @abc.abstractmethod
    def read(self, timeout: Optional[float] = None) -> Optional[FramePair]:
        """Return the next pair (live: the newest one), or ``None`` at the end.

        For a live source, ``timeout`` bounds the wait for a new pair; when it
        passes without one, :class:`TimeoutError` is raised so that the caller
        can mark the picture stale and keep going.  A file source ignores it.
        """

    def latest(self, timeout: Optional[float] = None) -> Optional[FramePair]:
        """The newest pair available; for file sources the same as :meth:`read`."""
        return self.read(timeout)

    def seek(self, index: int) -> None:
        """Make the next :meth:`read` return frame ``index`` (seekable sources)."""
        raise NotImplementedError(f"{self.info.description}: this source cannot seek")

    def set_stride(self, stride: int) -> bool:
        """Hand out every ``stride``-th frame from the next read on (fast replay),
        if this source can leave frames out cheaply; True when it does.  The
        default: it cannot, every frame is read."""
        return stride == 1

    def own_calibration(self):
        """The :class:`~nirf_overlay.calibration.Calibration` that belongs to this
        input, or None: a session's recorded one, the phantom's camera, the
        profile that comes with the bundled sample.  Which calibration is used
        in the end is decided by :func:`nirf_overlay.calibration.resolve_calibration`.
        """
        if not self.profile:
            return None
        from ..calibration.profile import load_profile

        return load_profile(self.profile)

    def take_layout(self, layout, origin: str = "calibration") -> bool:
        """Use a calibration's :class:`~nirf_overlay.calibration.model.Layout`
        (where a combined frame carries each view); True if this source took it.

        Only a combined source without a layout of the user's own takes one;
        :func:`~nirf_overlay.calibration.resolve_calibration` calls this with
        the calibration that applies, before checking its frame size.
        """
        return False

    def own_settings(self) -> Optional[Settings]:
        """The :class:`~nirf_overlay.settings.Settings` that belong to this input,
        or None: a session's recorded ones.  Whether they are used is the
        caller's decision (a replay offers them; ``--settings`` wins)."""
        return None

    def recorded_plane(self):
        """The transection plane recorded with this input, frame by frame (a
        session's :class:`~nirf_overlay.recording.plane_events.PlaneSchedule`),
        or None.  Replay puts it in force unless the user gives a plane."""
        return None

    def wait_ready(self, timeout: Optional[float] = None) -> bool:
        """Block until the source delivers at its own pace; False if ``timeout`` (s) passed.

        A source that prepares its frames first (the live phantom pre-renders
        its loop) would otherwise hand out its warm-up; the others are ready
        once opened.
        """
        return True

    @abc.abstractmethod
    def close(self) -> None:
        """Release devices, files and threads.  Safe to call twice."""

    # -- conveniences -------------------------------------------------------
    @property
    def metadata(self) -> dict:
        return dict(self.info.__dict__)

    def __iter__(self) -> Iterator[FramePair]:
        while True:
            pair = self.read()
            if pair is None:
                return
            yield pair

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass
