"""A FastAPI service that publishes to a rawsse hub from its endpoints, through the
async client: the hub runs on its own (``python -m rawsse``), the service tells it
what changed.

Run the hub, then the service (the client extra and FastAPI installed):

    python -m rawsse --publish-key "$KEY"
    RAWSSE_URL=http://127.0.0.1:8000 RAWSSE_PUBLISH_KEY="$KEY" \\
        uvicorn fastapi_publisher:app --app-dir examples --port 9000

Then: curl -N 'http://127.0.0.1:8000/events?topic=orders'
and:  curl -X POST 'http://127.0.0.1:9000/orders' -H 'Content-Type: application/json' \\
           -d '{"item": "book", "quantity": 2}'
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import count
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel

from rawsse.client import AsyncClient, ClientError


class Order(BaseModel):
    item: str
    quantity: int


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # One client for the app's loop: its connections are kept alive between requests.
    async with AsyncClient(
        os.environ.get("RAWSSE_URL", "http://127.0.0.1:8000"),
        key=os.environ.get("RAWSSE_PUBLISH_KEY"),
    ) as hub:
        app.state.hub = hub
        yield


app = FastAPI(lifespan=lifespan)
numbers = count(1)


@app.post("/orders")
async def create_order(order: Order, request: Request) -> dict[str, Any]:
    number = next(numbers)  # stands for the row your database wrote
    hub: AsyncClient = request.app.state.hub
    try:
        event_id = await hub.publish(
            "orders", {"number": number, **order.model_dump()}, event="order-created"
        )
    except ClientError as exc:  # the write stands; say the notification did not go out
        raise HTTPException(502, f"order {number} saved, not announced: {exc}") from None
    return {"number": number, "event_id": event_id}
