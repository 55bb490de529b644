"""The TTN integration: a subscription to a The Things Stack v3 MQTT server's uplinks.

The Things Stack publishes each application's uplinks on `v3/<app>@<tenant>/devices/<id>/up`
to clients logged in as `<app>@<tenant>` with an API key. The subscription is the same QoS 1,
persistent-session, ack-after-write `MqttMessageSource` as for our own broker; TTS speaks
MQTT 3.1.1, so the source falls back to a plain subscription there.
"""

from __future__ import annotations

from dataclasses import replace

from cityos.adapters.mqtt.source import MqttMessageSource
from cityos.adapters.mqtt.url import parse_mqtt_url
from cityos.platform.config import Settings
from cityos.platform.domain.errors import ConfigError
from cityos.platform.ingest.topics import ttn_uplink_filter
from cityos.platform.secrets import secret_value


def create_ttn_source(
    settings: Settings, *, connect_timeout: float = 10.0, v5_answer_timeout: float = 2.0
) -> MqttMessageSource:
    """Entry point `cityos.message_sources:ttn`: the TTS uplinks of the configured application."""
    ttn = settings.ttn
    if ttn.url is None or ttn.application is None:
        raise ConfigError("the TTN integration needs CITYOS__TTN__URL and CITYOS__TTN__APPLICATION")
    api_key = secret_value(ttn.api_key, ttn.api_key_file, "TTN API key")
    if api_key is None:
        raise ConfigError(
            "the TTN integration needs CITYOS__TTN__API_KEY or CITYOS__TTN__API_KEY_FILE"
        )
    url = parse_mqtt_url(ttn.url)
    if url.username is not None or url.password is not None:
        raise ConfigError(
            "CITYOS__TTN__URL must not carry credentials: the username is "
            "CITYOS__TTN__APPLICATION and the password CITYOS__TTN__API_KEY"
        )
    return MqttMessageSource(
        url=replace(url, username=ttn.application, password=api_key),
        client_id=ttn.client_id,
        share_group=settings.mqtt.share_group,
        session_expiry_seconds=settings.mqtt.session_expiry_seconds,
        receive_maximum=settings.mqtt.receive_maximum,
        connect_timeout=connect_timeout,
        v5_answer_timeout=v5_answer_timeout,
        topic_filter=ttn_uplink_filter(ttn.application),
    )
