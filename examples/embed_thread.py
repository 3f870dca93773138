"""Embed rawsse in a synchronous program: the server runs on a background thread and
``publish`` may be called from any thread.

Run:  python examples/embed_thread.py [--port 8000] [--count 60]
Then: curl -N 'http://127.0.0.1:8000/events?topic=jobs'
"""

from __future__ import annotations

import argparse
import json
import time

from rawsse import Config, ServerThread


def main(port: int, count: int, interval: float) -> None:
    with ServerThread(config=Config(port=port)) as server:
        print(f"serving on {server.url}; subscribe to {server.url}/events?topic=jobs", flush=True)
        for step in range(1, count + 1):
            event_id = server.publish(
                "jobs", json.dumps({"step": step, "of": count}), event="progress"
            )
            print(f"published {event_id}", flush=True)
            time.sleep(interval)
    # Leaving the block shut the server down and joined its thread.


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    main(args.port, args.count, args.interval)
