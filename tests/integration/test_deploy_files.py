"""The deployment files: docker-compose.yml, deploy/Dockerfile, deploy/mosquitto/mosquitto.conf.

There is no Docker engine in the test environment, so these tests check what can be checked
without one: compose validates (`docker-compose config -q`), the services are wired as
deploy/README.md describes, the Dockerfile copies the whole workspace and runs unprivileged,
and mosquitto itself accepts the broker configuration.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import shutil
import subprocess
import tomllib
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from testkit.services import free_port, require, wait_for_port

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
MOSQUITTO_CONF = REPO / "deploy" / "mosquitto" / "mosquitto.conf"
DOCKERIGNORE = REPO / ".dockerignore"
DATA_DIR = "/var/lib/cityos"
LOOPBACK = "127.0.0.1"


# ---------------------------------------------------------------- helpers


def root_pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def workspace_members() -> list[str]:
    members: list[str] = root_pyproject()["tool"]["uv"]["workspace"]["members"]
    assert members, "the root pyproject lists no workspace members"
    return members


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return data


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def cityos_services() -> dict[str, dict[str, Any]]:
    """Services that run the cityos image (built from deploy/Dockerfile)."""
    return {name: svc for name, svc in services().items() if "build" in svc}


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # ["KEY=value", ...]
        env = dict(item.split("=", 1) for item in env)
    return {str(key): str(value) for key, value in env.items()}


def published_ports(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(host ip, host port, container port) of each published port; '' where unspecified."""
    result = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):  # long syntax
            result.append(
                (
                    str(entry.get("host_ip", "")),
                    str(entry.get("published", "")),
                    str(entry["target"]),
                )
            )
            continue
        parts = str(entry).split("/", 1)[0].split(":")
        parts = [""] * (3 - len(parts)) + parts
        if len(parts) != 3:
            pytest.fail(f"cannot read port mapping {entry!r}")
        result.append((parts[0], parts[1], parts[2]))
    return result


def named_volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> named volume, for short-syntax volume entries."""
    mounts = {}
    for entry in service.get("volumes", []):
        source, _, rest = str(entry).partition(":")
        target = rest.split(":", 1)[0]
        if not source.startswith((".", "/", "~")):
            mounts[target] = source
    return mounts


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def copy_sources() -> list[str]:
    """Every source path of the COPY/ADD instructions that copy from the build context."""
    sources: list[str] = []
    for keyword, args in dockerfile_instructions():
        if keyword not in ("COPY", "ADD"):
            continue
        words = json.loads(args) if args.startswith("[") else shlex.split(args)
        if any(word.startswith("--from") for word in words):
            continue
        paths = [word for word in words if not word.startswith("--")]
        assert len(paths) >= 2, f"{keyword} {args}: needs a source and a destination"
        sources.extend(path.rstrip("/") for path in paths[:-1])
    return sources


def mosquitto_options() -> dict[str, list[str]]:
    """mosquitto.conf as option -> values (options such as log_type may repeat)."""
    options: dict[str, list[str]] = defaultdict(list)
    for number, raw in enumerate(MOSQUITTO_CONF.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        assert value.strip(), f"mosquitto.conf line {number} is not `key value`: {raw!r}"
        options[key].append(value.strip())
    return dict(options)


# ---------------------------------------------------------------- (a) docker-compose.yml


def test_compose_file_validates_with_docker_compose() -> None:
    executable = shutil.which("docker-compose")
    require(executable is not None, "docker-compose not on PATH (Debian package docker-compose)")
    assert executable is not None
    env = {key: value for key, value in os.environ.items() if key != "POSTGRES_PASSWORD"}
    result = subprocess.run(
        [executable, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"


def test_compose_has_the_documented_services() -> None:
    assert {"postgres", "influxdb", "mosquitto", "api", "ingest"} <= set(services())
    assert services()["postgres"]["image"].startswith("postgres:15")
    assert services()["mosquitto"]["image"] == "eclipse-mosquitto:2"
    healthcheck = " ".join(services()["postgres"]["healthcheck"]["test"])
    assert "pg_isready" in healthcheck


def test_api_and_ingest_are_built_from_the_deploy_dockerfile() -> None:
    built = cityos_services()
    assert {"api", "ingest"} <= set(built)
    for name, service in built.items():
        build = service["build"]
        assert build["context"] == ".", name
        assert build["dockerfile"] == "deploy/Dockerfile", name
        assert (REPO / build["context"] / build["dockerfile"]).is_file(), name
    assert built["api"]["command"] == ["serve", "--host", "0.0.0.0", "--port", "8000"]
    assert built["ingest"]["command"] == ["ingest"]
    assert built["ingest"]["restart"] == "unless-stopped"
    # the image's HEALTHCHECK probes the API; the worker has no HTTP server
    assert built["ingest"]["healthcheck"] == {"disable": True}
    assert built["api"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert {"postgres", "mosquitto"} <= set(built["ingest"]["depends_on"])


def test_cityos_environment_points_at_postgres_and_mosquitto() -> None:
    for name, service in cityos_services().items():
        env = environment(service)
        db = urlsplit(env["CITYOS__DB__URL"])
        assert db.scheme == "postgresql+psycopg", name
        assert (db.hostname, db.port, db.path) == ("postgres", 5432, "/cityos"), name
        assert db.username == services()["postgres"]["environment"]["POSTGRES_USER"], name
        mqtt = urlsplit(env["CITYOS__MQTT__URL"])
        assert (mqtt.scheme, mqtt.hostname, mqtt.port) == ("mqtt", "mosquitto", 1883), name
        assert env["CITYOS__DATA_DIR"] == DATA_DIR, name


def test_cityos_environment_points_at_influxdb() -> None:
    influx = services()["influxdb"]
    assert influx["image"].startswith("influxdb:1.")  # the v1 HTTP API our adapter speaks
    assert "ports" not in influx  # only the cityos containers talk to it
    for name, service in cityos_services().items():
        env = environment(service)
        assert env["CITYOS__TIMESERIES__BACKEND"] == "influxdb", name
        url = urlsplit(env["CITYOS__TIMESERIES__URL"])
        assert (url.scheme, url.hostname, url.port) == ("http", "influxdb", 8086), name
        assert env["CITYOS__TIMESERIES__DATABASE"] == influx["environment"]["INFLUXDB_DB"], name
        assert env["CITYOS__TIMESERIES__USERNAME"] == influx["environment"]["INFLUXDB_USER"], name
        assert service["depends_on"]["influxdb"]["condition"] == "service_healthy", name


def test_api_and_ingest_share_a_named_data_volume() -> None:
    volumes = {name: named_volume_mounts(svc).get(DATA_DIR) for name, svc in services().items()}
    assert volumes["api"] is not None
    assert volumes["api"] == volumes["ingest"]
    assert volumes["api"] in compose()["volumes"]


def test_every_ingest_worker_has_its_own_client_id() -> None:
    # Workers with one client id take each other's session over in a loop (deploy/README.md).
    ids = [
        environment(svc).get("CITYOS__MQTT__CLIENT_ID", "cityos-ingest")
        for svc in cityos_services().values()
        if svc.get("command") == ["ingest"]
    ]
    assert ids
    assert len(ids) == len(set(ids)), f"ingest workers share a client id: {ids}"


def test_ports_are_published_on_loopback_only() -> None:
    published = {name: published_ports(svc) for name, svc in services().items()}
    assert published["mosquitto"] == [(LOOPBACK, "1883", "1883")]
    assert published["api"] == [(LOOPBACK, "8000", "8000")]
    for name, ports in published.items():
        for host_ip, _, _ in ports:
            assert host_ip == LOOPBACK, f"{name} publishes a port beyond the loopback"


def test_mosquitto_mounts_the_repo_config_read_only() -> None:
    mosquitto = services()["mosquitto"]
    mounts = [str(entry) for entry in mosquitto["volumes"]]
    config_mount = "./deploy/mosquitto/mosquitto.conf:/mosquitto/config/mosquitto.conf:ro"
    assert config_mount in mounts
    data_volume = named_volume_mounts(mosquitto).get("/mosquitto/data")
    assert data_volume in compose()["volumes"]
    assert mosquitto_options()["persistence_location"] == ["/mosquitto/data/"]


# ---------------------------------------------------------------- (b) deploy/Dockerfile


def test_dockerfile_copies_every_workspace_member_and_the_lock() -> None:
    sources = set(copy_sources())
    assert {"pyproject.toml", "uv.lock"} <= sources
    readme = root_pyproject()["project"].get("readme")
    if readme:  # hatchling needs it to build the root distribution
        assert readme in sources
    for member in workspace_members():
        covered = member in sources or {f"{member}/pyproject.toml", f"{member}/src"} <= sources
        assert covered, f"the Dockerfile does not copy workspace member {member!r}"


def test_dockerignore_does_not_exclude_what_the_dockerfile_copies() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ".git" in patterns
    assert "tests" in patterns
    for source in copy_sources():
        parts = source.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        for pattern in patterns:
            bare = pattern.removeprefix("**/")
            hit = [p for p in prefixes if fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p, bare)]
            assert not hit, f".dockerignore pattern {pattern!r} excludes COPY source {source!r}"


def test_dockerfile_builds_with_uv_from_the_lock_file() -> None:
    instructions = dockerfile_instructions()
    runs = [args for keyword, args in instructions if keyword == "RUN"]
    syncs = [args for args in runs if "uv sync" in args]
    assert syncs, "no `uv sync` in the Dockerfile"
    for args in syncs:
        for flag in ("--frozen", "--no-dev", "--no-editable"):
            assert flag in args, f"`{args}` lacks {flag}"
    assert any("pip install" in args and "uv" in args for args in runs)
    stages = [args for keyword, args in instructions if keyword == "FROM"]
    assert len(stages) >= 2, "expected a multi-stage build"
    assert any(
        keyword == "COPY" and "--from=builder" in args and "/app/.venv" in args
        for keyword, args in instructions
    )


def test_dockerfile_runs_unprivileged_with_a_healthcheck() -> None:
    instructions = dockerfile_instructions()
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users, "the image runs as root (no USER)"
    user = users[-1].split(":", 1)[0]
    assert user not in ("root", "0"), f"the image runs as {users[-1]!r}"
    text = DOCKERFILE.read_text(encoding="utf-8")
    if user.isdigit():  # a numeric USER must be the uid of the cityos user created
        assert f"--uid {user}" in text
        assert "cityos" in text

    healthchecks = [args for keyword, args in instructions if keyword == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    healthcheck = healthchecks[0]
    assert "/healthz" in healthcheck
    assert "NONE" not in healthcheck
    command = json.loads(healthcheck[healthcheck.index("CMD") + 3 :].strip())
    assert command[:2] == ["python", "-c"]
    compile(command[2], "<HEALTHCHECK>", "exec")  # the probe is valid Python

    last = {keyword: args for keyword, args in instructions}
    assert json.loads(last["ENTRYPOINT"]) == ["cityos"]
    assert json.loads(last["CMD"]) == ["serve", "--host", "0.0.0.0", "--port", "8000"]
    assert last["EXPOSE"] == "8000"
    assert f"CITYOS__DATA_DIR={DATA_DIR}" in " ".join(
        args for keyword, args in instructions if keyword == "ENV"
    )


# ---------------------------------------------------------------- (c) mosquitto.conf


def test_mosquitto_conf_persists_and_sizes_its_queues() -> None:
    options = mosquitto_options()
    assert options["listener"] == ["1883"]
    assert options["persistence"] == ["true"]
    assert "stdout" in options["log_dest"]
    # mosquitto's default (1000) would drop QoS 1 messages during a worker outage
    assert int(options["max_queued_messages"][-1]) >= 10000
    assert int(options["max_inflight_messages"][-1]) >= 1
    if options.get("allow_anonymous") == ["true"]:
        # tolerable only while the broker is published on the loopback (deploy/README.md)
        assert published_ports(services()["mosquitto"]) == [(LOOPBACK, "1883", "1883")]


@pytest.mark.mosquitto
def test_mosquitto_accepts_the_config(tmp_path: Path) -> None:
    """The real broker starts with the file (only listener and data path adapted)."""
    require(shutil.which("mosquitto") is not None, "mosquitto binary not on PATH")
    port = free_port()
    data = tmp_path / "data"
    data.mkdir()
    text = MOSQUITTO_CONF.read_text(encoding="utf-8")
    assert "listener 1883\n" in text
    assert "persistence_location /mosquitto/data/\n" in text
    text = text.replace("listener 1883\n", f"listener {port} 127.0.0.1\n")
    text = text.replace("/mosquitto/data/", f"{data}/")
    # the password file and ACL `cityos mosquitto sync` writes (empty: nobody may log in)
    assert "allow_anonymous false\n" in text
    auth = tmp_path / "auth"
    auth.mkdir()
    for name in ("passwd", "acl"):
        (auth / name).touch()
    text = text.replace("/mosquitto/cityos/mosquitto/", f"{auth}/")
    config = tmp_path / "mosquitto.conf"
    config.write_text(text + "\nuser root\n", encoding="utf-8")  # as testkit: private dir
    log = tmp_path / "mosquitto.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [shutil.which("mosquitto") or "mosquitto", "-c", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            try:
                wait_for_port("127.0.0.1", port, timeout=10)
            except TimeoutError:
                pytest.fail(f"mosquitto refused the config:\n{log.read_text(errors='replace')}")
            assert process.poll() is None
        finally:
            process.terminate()
            process.wait(timeout=10)
    assert (data / "mosquitto.db").exists(), "persistence did not write its database"
