"""The hub: topics, publish, fan-out, replay, and what it counts. It imports nothing of
HTTP, policy or serving: an embedded program uses it without them.

:class:`Hub` (:mod:`.hub`), its fan-out (:mod:`.fanout`), the
:class:`~rawsse.hub.subscriber.Subscriber` of one stream (:mod:`.subscriber`), when the
next flush may run (:mod:`.pacing`), the counters and exposition (:mod:`.metrics`), and
the loop thread's load the adaptive flush follows (:mod:`.loadgauge`).
"""

from rawsse.hub.hub import Group, Hub, Topic

__all__ = ["Group", "Hub", "Topic"]
