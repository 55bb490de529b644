"""The TTN integration's configuration, subscription and topic names."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from cityos.adapters.mqtt.ttn import create_ttn_source
from cityos.platform.config import Settings, TtnSettings
from cityos.platform.domain.errors import ConfigError
from cityos.platform.ingest.topics import device_of_topic, device_of_ttn_topic, ttn_uplink_filter


def settings(**ttn: object) -> Settings:
    return Settings(ttn=TtnSettings.model_validate(ttn))


def test_source_logs_in_as_the_application_with_the_api_key() -> None:
    source = create_ttn_source(
        settings(
            url="mqtts://eu1.cloud.thethings.network:8883",
            application="omaezaki-sensors@ttn",
            api_key="NNSXS.ABC.DEF",
            client_id="cityos-ttn-1",
        )
    )
    assert source.url.host == "eu1.cloud.thethings.network"
    assert source.url.tls
    assert (source.url.username, source.url.password) == ("omaezaki-sensors@ttn", "NNSXS.ABC.DEF")
    assert "NNSXS" not in str(source.url)
    assert source.client_id == "cityos-ttn-1"
    assert source.topic_filter == "v3/omaezaki-sensors@ttn/devices/+/up"


def test_api_key_from_a_secret_file(tmp_path: Path) -> None:
    key_file = tmp_path / "ttn-key"
    key_file.write_text("NNSXS.FROM.FILE\n", encoding="utf-8")
    source = create_ttn_source(
        settings(url="mqtt://127.0.0.1:1884", application="a1@ttn", api_key_file=key_file)
    )
    assert source.url.password == "NNSXS.FROM.FILE"
    key_file.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="empty"):
        create_ttn_source(
            settings(url="mqtt://127.0.0.1:1884", application="a1@ttn", api_key_file=key_file)
        )


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ({"url": "mqtt://h:1883"}, "CITYOS__TTN__APPLICATION"),
        ({"url": "mqtt://h:1883", "application": "a1@ttn"}, "CITYOS__TTN__API_KEY"),
        ({"url": "mqtt://u:p@h:1883", "application": "a1@ttn", "api_key": "k"}, "credentials"),
        ({"url": "http://h", "application": "a1@ttn", "api_key": "k"}, "scheme"),
    ],
)
def test_incomplete_configuration_is_a_clear_error(given: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        create_ttn_source(settings(**given))


@pytest.mark.parametrize(
    "application", ["app", "app@", "@ttn", "a/b@ttn", "a+@ttn", "a#@ttn", "A1@ttn", "a1@t/n"]
)
def test_application_cannot_smuggle_topic_wildcards(application: str) -> None:
    with pytest.raises(ValidationError, match="application id"):
        TtnSettings(application=application)


def test_ttn_topics() -> None:
    assert ttn_uplink_filter("a1@ttn") == "v3/a1@ttn/devices/+/up"
    assert device_of_ttn_topic("v3/a1@ttn/devices/niino-river/up") == "niino-river"
    for topic in (
        "v3/a1@ttn/devices/niino-river/join",
        "v3/a1/devices/niino-river/up",
        "v3/a1@ttn/devices/Bad_Id/up",
        "v3/a1@ttn/devices/x/y/up",
        "cityos/v1/devices/niino-river/up",
    ):
        assert device_of_ttn_topic(topic) is None, topic
    assert device_of_topic("v3/a1@ttn/devices/niino-river/up") is None
