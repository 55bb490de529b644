"""Parse `mqtt://user:pass@host:port` and `mqtts://...` broker URLs."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from cityos.platform.domain.errors import ConfigError

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True, slots=True)
class MqttUrl:
    """Where an MQTT broker is and how to log in to it."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def scheme(self) -> str:
        """`mqtts` with TLS, else `mqtt`."""
        return "mqtts" if self.tls else "mqtt"

    def redacted(self) -> str:
        """The URL with the password masked, safe for logs and error messages."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        userinfo = ""
        if self.username is not None:
            userinfo = self.username + (":***" if self.password is not None else "") + "@"
        elif self.password is not None:
            userinfo = ":***@"
        return f"{self.scheme}://{userinfo}{host}:{self.port}"

    def __str__(self) -> str:
        """Never show the password."""
        return self.redacted()


def _mask(url: str) -> str:
    """Best-effort masking of a password in a URL that failed to parse."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url[:200]
    userinfo, at, hostpart = rest.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    return f"{scheme}://{userinfo}{at}{hostpart}"[:200]


def parse_mqtt_url(url: str) -> MqttUrl:
    """Parse a broker URL; ConfigError for other schemes or a malformed URL."""
    shown = _mask(url.strip())
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"malformed MQTT URL {shown!r}: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ConfigError(
            f"unsupported MQTT URL scheme in {shown!r}: expected mqtt:// or mqtts:// "
            "(e.g. mqtt://user:pass@broker:1883)"
        )
    if not parts.hostname:
        raise ConfigError(f"malformed MQTT URL {shown!r}: no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"malformed MQTT URL {shown!r}: no path, query or fragment allowed")
    if port == 0:
        raise ConfigError(f"malformed MQTT URL {shown!r}: port 0")
    return MqttUrl(
        host=parts.hostname,
        port=port if port is not None else DEFAULT_PORTS[scheme],
        tls=scheme == "mqtts",
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )
