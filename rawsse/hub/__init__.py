"""The hub: topics, publish, fan-out, replay, and what it counts. It imports nothing of
HTTP, policy or serving: an embedded program uses it without them.

:class:`Hub` (:mod:`.hub`), the :class:`~rawsse.hub.subscriber.Subscriber` of one
stream (:mod:`.subscriber`), the counters and exposition (:mod:`.metrics`), and the
loop thread's load for the adaptive flush (:mod:`.loadgauge`).
"""

from rawsse.hub.hub import Group, Hub, Topic

__all__ = ["Group", "Hub", "Topic"]
