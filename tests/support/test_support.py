"""The test support itself: what ``running_server`` counts as left behind by rawsse must
not depend on the folder a user cloned the project into."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from rawsse.hub.hub import Hub
from tests.conftest import _started_by_rawsse


async def test_only_the_package_own_tasks_count_as_left_behind(tmp_path: Path) -> None:
    """A checkout is usually a folder called ``rawsse`` (``git clone .../rawsse``): a
    test's own task there is not the package's; a task of the package's code is."""
    checkout = tmp_path / "rawsse" / "tests"
    checkout.mkdir(parents=True)
    source = "async def helper():\n    import asyncio\n    await asyncio.sleep(3600)\n"
    namespace: dict[str, object] = {}
    exec(compile(source, os.fspath(checkout / "test_x.py"), "exec"), namespace)
    loop = asyncio.get_running_loop()
    test_task = loop.create_task(namespace["helper"]())  # type: ignore[operator]
    package_task = loop.create_task(Hub().publish_async("t", "x"))  # rawsse's own code
    try:
        assert not _started_by_rawsse(test_task)
        assert _started_by_rawsse(package_task)
    finally:
        test_task.cancel()
        await asyncio.gather(test_task, package_task, return_exceptions=True)
