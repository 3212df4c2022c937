"""Replaying a session's transection plane: the plane of its events put in force frame by frame.

A session's ``plane`` events (:mod:`nirf_overlay.recording.plane_events`) say from
which frame on which polygon, drawn on which frame, was in force while it was
recorded.  :class:`RecordedPlane` is a listener: before each pair is processed
(``on_pair``) it hands the pipelines the plane in force at that frame when it
changes there, so they anchor it at the same frame and follow it as live.  The
viewer's :class:`~.runner.Engine`, ``process`` and ``batch`` all use it.

A plane the user gives instead wins: ``--settings`` with a polygon for
``process`` and ``batch`` (then the recorded one is not used), a plane drawn or
cleared in the viewer during replay (from then on).
"""

from __future__ import annotations

from typing import Callable, Optional

from ..recording.plane_events import PlaneSchedule, with_plane
from .listeners import Listener


class RecordedPlane(Listener):
    """Puts a recording's plane in force at the frames it was in force live.

    Parameters
    ----------
    schedule : the session's :class:`~nirf_overlay.recording.plane_events.PlaneSchedule`
    targets : ``f() -> [(pipeline, settings), ...]``: the pipelines to tell
        (``update_settings``) and the settings each runs with now (the plane is
        replaced in a copy; a None pipeline or settings is passed over)
    """

    def __init__(self, schedule: PlaneSchedule, targets: Callable):
        self.schedule = schedule
        self._targets = targets
        self._applied = None  # the plane last handed over
        #: False once the user put a plane of their own in force
        self.active = True

    @classmethod
    def of(cls, source, targets: Callable) -> Optional["RecordedPlane"]:
        """The recorded plane of ``source`` (a session with plane events), else None."""
        schedule = source.recorded_plane()
        return cls(schedule, targets) if schedule else None

    def settings_now(self, settings):
        """``settings`` with the recorded plane now in force (while active)."""
        if not self.active or self._applied is None:
            return settings
        return with_plane(settings, self._applied)

    def take(self, old, new):
        """Settings ``new`` replace ``old``: what the pipeline gets.  A plane drawn
        or cleared by the user (its polygon or frame changed) ends the recorded one."""
        if (old.plane.polygon, old.plane.frame) != (new.plane.polygon, new.plane.frame):
            self.active = False
        return self.settings_now(new)

    def on_pair(self, pair) -> None:
        if not self.active:
            return
        plane = self.schedule.at(int(pair.index))
        if plane == self._applied:
            return
        self._applied = plane
        for pipeline, settings in self._targets():
            if pipeline is not None and settings is not None:
                pipeline.update_settings(with_plane(settings, plane))


def recorded_plane_listeners(source, pipeline, settings) -> list:
    """``[RecordedPlane]`` for ``run_frames`` (``process``, ``batch``) over a session
    with plane events, ``[]`` otherwise or when ``settings`` bring a polygon (it wins)."""
    if settings.plane.polygon:
        return []
    plane = RecordedPlane.of(source, lambda: [(pipeline, settings)])
    return [plane] if plane else []
