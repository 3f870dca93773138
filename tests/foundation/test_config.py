"""Config validation: every bad value is refused with the field's name in the message."""

from __future__ import annotations

import pytest

from rawsse.config import Config
from rawsse.errors import ConfigError


def test_defaults_are_valid_and_frozen() -> None:
    config = Config()
    assert config.host == "127.0.0.1" and config.port == 8000
    assert config.max_event_size == 1024 * 1024
    with pytest.raises(AttributeError):
        config.port = 1  # type: ignore[misc]
    assert config.replace(port=0).port == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("port", 70000),
        ("port", -1),
        ("history", -1),
        ("max_event_size", 0),
        ("max_buffer", 10),
        ("slow_timeout", 0),
        ("heartbeat", -1.0),
        ("request_timeout", 0),
        ("shutdown_timeout", 0),
        ("retry", -5),
        ("retry", 2**31),
        ("max_topics", 0),
        ("publish_key", ""),
        ("history", True),
    ],
)
def test_bad_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        Config(**{field: value})  # type: ignore[arg-type]


def test_positional_arguments_are_refused() -> None:
    with pytest.raises(TypeError):
        Config("0.0.0.0")  # type: ignore[misc]


SECRET = "a-mercure-secret-of-at-least-32-bytes"


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"mercure": True}, "mercure needs a key"),
        ({"mercure": True, "subscriber_jwt_key": SECRET}, "mercure needs a key"),
        ({"publish_origins": ("app.example",)}, "publish_origins"),
        ({"publish_origins": ("https://app.example/path",)}, "publish_origins"),
        ({"publisher_jwt_key": ""}, "publisher_jwt_key"),
        ({"mercure_cookie": ""}, "mercure_cookie"),
        ({"mercure_url": "example.com/.well-known/mercure"}, "mercure_url"),
    ],
)
def test_mercure_settings_are_checked(changes: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Config(**changes)  # type: ignore[arg-type]


def test_mercure_keys_fall_back_to_the_native_ones() -> None:
    own = Config(mercure=True, publisher_jwt_key=SECRET)
    assert own.mercure_key("publisher") == SECRET and own.mercure_key("subscriber") is None
    shared = Config(mercure=True, jwt_secret=SECRET, subscriber_jwt_key="x" * 40)
    assert shared.mercure_key("publisher") == SECRET
    assert shared.mercure_key("subscriber") == "x" * 40
