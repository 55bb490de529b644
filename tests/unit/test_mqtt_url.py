"""The MQTT broker URL parser."""

from __future__ import annotations

import pytest

from cityos.adapters.mqtt.url import MqttUrl, parse_mqtt_url
from cityos.platform.domain.errors import ConfigError


def test_plain_url_with_credentials() -> None:
    url = parse_mqtt_url("mqtt://ingest:s3cret@broker.example.jp:1884")
    assert url == MqttUrl(
        host="broker.example.jp", port=1884, tls=False, username="ingest", password="s3cret"
    )


@pytest.mark.parametrize(
    ("raw", "port", "tls"),
    [
        ("mqtt://broker", 1883, False),
        ("mqtts://broker", 8883, True),
        ("MQTTS://broker:443", 443, True),
    ],
)
def test_default_ports_and_tls(raw: str, port: int, tls: bool) -> None:
    url = parse_mqtt_url(raw)
    assert (url.host, url.port, url.tls, url.username, url.password) == (
        "broker",
        port,
        tls,
        None,
        None,
    )


def test_user_and_password_are_percent_decoded() -> None:
    url = parse_mqtt_url("mqtts://dev%40omaezaki:p%3Aw%2Fd%40%25@[::1]:8884/")
    assert url.username == "dev@omaezaki"
    assert url.password == "p:w/d@%"
    assert url.host == "::1"
    assert url.port == 8884


def test_redacted_never_shows_the_password() -> None:
    url = parse_mqtt_url("mqtt://ingest:s3cret@10.0.0.5:1883")
    assert url.redacted() == "mqtt://ingest:***@10.0.0.5:1883"
    assert "s3cret" not in str(url)
    assert "s3cret" not in repr(url)
    assert parse_mqtt_url("mqtts://[::1]").redacted() == "mqtts://[::1]:8883"
    assert parse_mqtt_url("mqtt://only-user@h").redacted() == "mqtt://only-user@h:1883"


@pytest.mark.parametrize(
    "raw",
    [
        "http://broker:1883",
        "tcp://broker:1883",
        "broker:1883",
        "ws://user:s3cret@broker",
    ],
)
def test_other_schemes_are_config_errors(raw: str) -> None:
    with pytest.raises(ConfigError, match="mqtt:// or mqtts://") as info:
        parse_mqtt_url(raw)
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    "raw",
    [
        "mqtt://",
        "mqtt://:1883",
        "mqtt://user:s3cret@broker:notaport",
        "mqtt://broker:70000",
        "mqtt://broker:0",
        "mqtt://broker/some/path",
        "mqtt://broker?x=1",
    ],
)
def test_malformed_urls_are_config_errors(raw: str) -> None:
    with pytest.raises(ConfigError, match="malformed MQTT URL") as info:
        parse_mqtt_url(raw)
    assert "s3cret" not in str(info.value)
