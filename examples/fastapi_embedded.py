"""A FastAPI app that runs the rawsse hub in its own process: the app's lifespan starts
``rawsse.Server`` on the app's event loop, and endpoints publish in-process (no HTTP
round trip, no extra dependency). Subscribers connect to the hub's own port.

    uvicorn fastapi_embedded:app --app-dir examples --port 9000

Then: curl -N 'http://127.0.0.1:8000/events?topic=orders'
and:  curl -X POST 'http://127.0.0.1:9000/orders' -H 'Content-Type: application/json' \\
           -d '{"item": "book", "quantity": 2}'

``RAWSSE_PORT`` chooses the hub's port (0: any free one, reported at /hub).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import count
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel

from rawsse import Config, Hub, Server


class Order(BaseModel):
    item: str
    quantity: int


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    hub = Hub()
    config = Config(host="127.0.0.1", port=int(os.environ.get("RAWSSE_PORT", "8000")))
    async with Server(hub, config) as server:  # on uvicorn's loop; shut down with the app
        app.state.hub, app.state.hub_url = hub, server.url
        yield


app = FastAPI(lifespan=lifespan)
numbers = count(1)


@app.get("/hub")
async def where(request: Request) -> dict[str, str]:
    return {"url": request.app.state.hub_url}


@app.post("/orders")
async def create_order(order: Order, request: Request) -> dict[str, Any]:
    number = next(numbers)  # stands for the row your database wrote
    hub: Hub = request.app.state.hub
    # In-process: synchronous, never blocks; subscribers get it in this loop iteration.
    event_id = hub.publish("orders", order.model_dump_json(), event="order-created")
    return {"number": number, "event_id": event_id}
