"""Contract of `ports.Catalog`: the SQL catalog on SQLite and on PostgreSQL passes one suite."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from cityos.adapters.sql.catalog import SqlCatalog, create_catalog
from cityos.platform import plugins
from cityos.platform.config import DbSettings, Settings
from cityos.platform.domain.errors import AlreadyExists, InvalidInput, NotFound, RetryableError
from cityos.platform.domain.model import (
    Alert,
    AlertStatus,
    AlertTransition,
    AuditEvent,
    Dataset,
    Device,
    Domain,
    Facility,
    GeoPoint,
    OAuthClient,
    Rejection,
    RevokedToken,
    Sensor,
    SigningKey,
)
from cityos.platform.ports import Catalog, DeviceCredential, UpsertCounts

JST = timezone(timedelta(hours=9))
T0 = datetime(2026, 7, 1, 9, 0, tzinfo=JST)
HOSTILE = 'it\'s "quoted"; DROP TABLE devices; --\nsecond line\t\\ %s %(x)s ? :x 🌊'
ALL_DOMAINS = frozenset(Domain)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlCatalog]:
    """A migrated, empty catalog on each backend."""
    if request.param == "sqlite":
        settings = Settings(data_dir=tmp_path / "data")
    else:
        settings = Settings(db=DbSettings(url=request.getfixturevalue("postgres_url")))
    cat = create_catalog(settings)
    cat.migrate()
    yield cat
    cat.close()


def make_device(device_id: str = "omaezaki-port", **changes: object) -> Device:
    device = Device(
        id=device_id,
        name="御前崎港 潮位計",
        domain=Domain.DISASTER,
        payload_format="json",
        location=GeoPoint(lat=34.6, lon=138.22),
    )
    return replace(device, **changes)  # type: ignore[arg-type]


def make_sensor(device_id: str, quantity: str, domain: Domain = Domain.DISASTER) -> Sensor:
    return Sensor(
        id=f"{device_id}.{quantity}",
        device_id=device_id,
        quantity=quantity,
        unit="m",
        domain=domain,
        name=f"{quantity} at {device_id}",
        location=GeoPoint(lat=34.6, lon=138.22),
        valid_min=-5.0,
        valid_max=10.0,
    )


def make_dataset(dataset_id: str = "yaizu-evacuation", **changes: object) -> Dataset:
    dataset = Dataset(
        id=dataset_id,
        name="焼津市 指定緊急避難場所一覧",
        source="https://example.jp/evacuation.csv",
        licence="CC-BY-4.0",
        public=True,
        fetched_at=T0,
        checksum="sha256:abc",
        row_count=3,
        connector="evacuation_sites",
    )
    return replace(dataset, **changes)  # type: ignore[arg-type]


def make_facility(key: str, dataset_id: str = "yaizu-evacuation", **changes: object) -> Facility:
    facility = Facility(
        id=f"{dataset_id}:{key}",
        kind="evacuation_site",
        name=f"避難所 {key}",
        location=GeoPoint(lat=34.86, lon=138.32),
        domain=Domain.DISASTER,
        dataset_id=dataset_id,
        source_key=key,
        name_kana="ひなんじょ",
        address="静岡県焼津市本町",
        hazards=frozenset({"flood", "tsunami"}),
        attributes={"capacity": 120, "note": "2階以上"},
    )
    return replace(facility, **changes)  # type: ignore[arg-type]


def add_devices(catalog: Catalog) -> None:
    """Three devices, five sensors over three domains."""
    catalog.add_device(
        make_device("omaezaki-port"),
        [make_sensor("omaezaki-port", "tide_level"), make_sensor("omaezaki-port", "wave_height")],
    )
    catalog.add_device(
        make_device("cape-wind", domain=Domain.TOURISM),
        [
            make_sensor("cape-wind", "wind_speed", Domain.TOURISM),
            make_sensor("cape-wind", "wbgt", Domain.HEALTH),
        ],
    )
    catalog.add_device(
        make_device("city-hall", domain=Domain.HEALTH),
        [make_sensor("city-hall", "wbgt", Domain.HEALTH)],
    )


# ---------------------------------------------------------------- lifecycle


def test_implements_the_protocol_and_is_registered(catalog: SqlCatalog) -> None:
    assert isinstance(catalog, Catalog)
    assert plugins.load(plugins.CATALOGS, "sql") is create_catalog


def test_migrate_is_idempotent_and_ping_answers(catalog: SqlCatalog) -> None:
    catalog.add_device(make_device(), [])
    catalog.migrate()
    catalog.migrate()
    catalog.ping()
    assert catalog.get_device("omaezaki-port") is not None


def test_ping_raises_retryable_when_unreachable(tmp_path: Path) -> None:
    unreachable = create_catalog(
        Settings(
            db=DbSettings(url="postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
        )
    )
    with pytest.raises(RetryableError):
        unreachable.ping()
    with pytest.raises(RetryableError):
        unreachable.list_devices()
    unreachable.close()


def test_sqlite_creates_the_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "not" / "yet" / "there"
    cat = create_catalog(Settings(data_dir=data_dir))
    cat.migrate()
    cat.ping()
    assert (data_dir / "catalog.db").exists()
    with cat.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one() >= 1000
    cat.close()


# ---------------------------------------------------------------- devices and sensors


def test_add_and_get_device_round_trips(catalog: Catalog) -> None:
    sensors = [make_sensor("omaezaki-port", "tide_level")]
    catalog.add_device(make_device(), sensors, credential_hash="$argon2id$hash")
    device = catalog.get_device("omaezaki-port")
    assert device is not None
    assert device == replace(make_device(), created_at=device.created_at)
    assert device.created_at is not None
    assert device.created_at.utcoffset() == timedelta(0)
    assert datetime.now(UTC) - device.created_at < timedelta(minutes=5)
    assert catalog.sensors_of_device("omaezaki-port") == sensors
    assert catalog.get_sensor("omaezaki-port.tide_level") == sensors[0]


def test_given_created_at_is_kept_as_the_same_instant_in_utc(catalog: Catalog) -> None:
    catalog.add_device(make_device(created_at=T0, location=None, revoked=True), [])
    device = catalog.get_device("omaezaki-port")
    assert device is not None
    assert device.created_at == T0
    assert device.created_at is not None
    assert device.created_at.tzinfo is not None
    assert device.created_at.utcoffset() == timedelta(0)
    assert device.location is None
    assert device.revoked is True


def test_get_missing_returns_none(catalog: Catalog) -> None:
    assert catalog.get_device("nope") is None
    assert catalog.get_sensor("nope.tide_level") is None
    assert catalog.sensors_of_device("nope") == []
    assert catalog.list_devices() == []
    assert catalog.list_datasets() == []
    assert catalog.list_facilities() == []
    assert catalog.list_rejections() == []


def test_duplicate_device_raises_already_exists_atomically(catalog: Catalog) -> None:
    catalog.add_device(make_device(), [make_sensor("omaezaki-port", "tide_level")])
    with pytest.raises(AlreadyExists):
        catalog.add_device(make_device(name="other"), [make_sensor("omaezaki-port", "water_level")])
    device = catalog.get_device("omaezaki-port")
    assert device is not None
    assert device.name == "御前崎港 潮位計"
    assert [s.quantity for s in catalog.sensors_of_device("omaezaki-port")] == ["tide_level"]
    assert catalog.get_sensor("omaezaki-port.water_level") is None


def test_sensors_must_belong_to_the_device(catalog: Catalog) -> None:
    with pytest.raises(InvalidInput):
        catalog.add_device(make_device(), [make_sensor("other-device", "tide_level")])
    twice = make_sensor("omaezaki-port", "tide_level")
    with pytest.raises(InvalidInput):
        catalog.add_device(make_device(), [twice, twice])
    assert catalog.get_device("omaezaki-port") is None


def test_concurrent_adds_of_one_id_let_exactly_one_win(catalog: Catalog) -> None:
    outcomes: list[str] = []
    lock = threading.Lock()

    def add(n: int) -> None:
        try:
            catalog.add_device(make_device(name=f"racer {n}"), [])
            result = "added"
        except AlreadyExists:
            result = "exists"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=add, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["added"] + ["exists"] * 7


def test_update_device_changes_name_location_and_upserts_sensors(catalog: Catalog) -> None:
    tide, wave = (
        make_sensor("omaezaki-port", "tide_level"),
        make_sensor("omaezaki-port", "wave_height"),
    )
    catalog.add_device(make_device(), [tide, wave], credential_hash="$7$h")
    moved = replace(make_device(), name=HOSTILE, location=GeoPoint(lat=34.61, lon=138.23))
    ranged = replace(tide, valid_min=-1.0, valid_max=None, location=moved.location)
    added = replace(make_sensor("omaezaki-port", "water_temp"), unit="Cel")
    catalog.update_device(moved, [ranged, added, replace(wave, retired=True)])
    device = catalog.get_device("omaezaki-port")
    assert device is not None
    assert (device.name, device.location) == (HOSTILE, moved.location)
    assert device.domain == Domain.DISASTER
    assert device.revoked is False
    assert catalog.sensors_of_device("omaezaki-port") == [
        ranged,
        added,  # ordered by id: water_temp < wave_height
        replace(wave, retired=True),
    ]
    # sensors not given stay as they are; a retired one comes back when given again
    catalog.update_device(moved, [wave])
    assert catalog.get_sensor("omaezaki-port.wave_height") == wave
    assert catalog.get_sensor("omaezaki-port.tide_level") == ranged
    assert catalog.device_credentials()[0].credential_hash == "$7$h"  # untouched


def test_update_device_refuses_unknown_devices_and_foreign_sensors(catalog: Catalog) -> None:
    with pytest.raises(NotFound):
        catalog.update_device(make_device("nope"), [])
    add_devices(catalog)
    with pytest.raises(InvalidInput):
        catalog.update_device(make_device("city-hall"), [make_sensor("cape-wind", "wbgt")])
    assert catalog.get_sensor("city-hall.wbgt") == make_sensor("city-hall", "wbgt", Domain.HEALTH)


def test_credentials_rotate_and_revoke(catalog: Catalog) -> None:
    catalog.add_device(make_device("b-device"), [], credential_hash="$7$1$old")
    catalog.add_device(make_device("a-device"), [])
    assert catalog.device_credentials() == [
        DeviceCredential("a-device", None, False),
        DeviceCredential("b-device", "$7$1$old", False),
    ]
    catalog.set_credential_hash("b-device", "$7$1$new")
    catalog.revoke_device("a-device")
    catalog.revoke_device("a-device")  # idempotent
    assert catalog.device_credentials() == [
        DeviceCredential("a-device", None, True),
        DeviceCredential("b-device", "$7$1$new", False),
    ]
    revoked = catalog.get_device("a-device")
    assert revoked is not None
    assert revoked.revoked
    for call in (
        lambda: catalog.set_credential_hash("nope", "$7$x"),
        lambda: catalog.revoke_device("nope"),
    ):
        with pytest.raises(NotFound):
            call()
    assert [d.id for d in catalog.list_devices()] == ["a-device", "b-device"]


def test_updates_bump_updated_at(catalog: SqlCatalog) -> None:
    catalog.add_device(make_device(), [])

    def updated_at() -> datetime:
        with catalog.engine.connect() as connection:
            value = connection.exec_driver_sql("select updated_at from devices").scalar_one()
        return value if isinstance(value, datetime) else datetime.fromisoformat(value)

    before = updated_at()
    for change in (
        lambda: catalog.set_credential_hash("omaezaki-port", "$7$x"),
        lambda: catalog.update_device(make_device(), []),
        lambda: catalog.revoke_device("omaezaki-port"),
    ):
        time.sleep(0.01)
        change()
        assert updated_at() > before
        before = updated_at()


def test_list_devices_is_ordered_by_id(catalog: Catalog) -> None:
    add_devices(catalog)
    assert [d.id for d in catalog.list_devices()] == ["cape-wind", "city-hall", "omaezaki-port"]


def test_list_sensors_filters_by_domain(catalog: Catalog) -> None:
    add_devices(catalog)
    health = catalog.list_sensors(domains=frozenset({Domain.HEALTH}))
    assert [s.id for s in health] == ["cape-wind.wbgt", "city-hall.wbgt"]
    assert catalog.count_sensors(domains=frozenset({Domain.HEALTH})) == 2
    both = catalog.list_sensors(domains=frozenset({Domain.HEALTH, Domain.TOURISM}))
    assert [s.id for s in both] == ["cape-wind.wbgt", "cape-wind.wind_speed", "city-hall.wbgt"]
    assert catalog.count_sensors(domains=ALL_DOMAINS) == 5


def test_empty_domain_set_sees_nothing(catalog: Catalog) -> None:
    add_devices(catalog)
    assert catalog.list_sensors(domains=frozenset()) == []
    assert catalog.count_sensors(domains=frozenset()) == 0
    assert catalog.count_sensors(domains=frozenset(), device_id="cape-wind") == 0


def test_list_sensors_filters_by_device(catalog: Catalog) -> None:
    add_devices(catalog)
    sensors = catalog.list_sensors(domains=ALL_DOMAINS, device_id="cape-wind")
    assert [s.id for s in sensors] == ["cape-wind.wbgt", "cape-wind.wind_speed"]
    assert catalog.count_sensors(domains=ALL_DOMAINS, device_id="cape-wind") == 2
    tourism = frozenset({Domain.TOURISM})
    assert catalog.count_sensors(domains=tourism, device_id="cape-wind") == 1
    assert catalog.list_sensors(domains=ALL_DOMAINS, device_id="unknown") == []
    assert catalog.count_sensors(domains=ALL_DOMAINS, device_id="unknown") == 0


def test_list_sensors_pages_by_id(catalog: Catalog) -> None:
    add_devices(catalog)
    expected = sorted(s.id for s in catalog.list_sensors(domains=ALL_DOMAINS, limit=1000))
    assert len(expected) == 5
    for size in (1, 2, 3, 5, 7):
        seen: list[str] = []
        after: str | None = None
        while True:
            page = catalog.list_sensors(domains=ALL_DOMAINS, after_id=after, limit=size)
            assert len(page) <= size
            if not page:
                break
            seen.extend(s.id for s in page)
            after = page[-1].id
        assert seen == expected, size


def test_paging_edge_cases(catalog: Catalog) -> None:
    add_devices(catalog)
    assert catalog.list_sensors(domains=ALL_DOMAINS, limit=0) == []
    last = "omaezaki-port.wave_height"
    assert catalog.list_sensors(domains=ALL_DOMAINS, after_id=last) == []
    # a cursor that is not an existing id still pages from its position
    after_gap = catalog.list_sensors(domains=ALL_DOMAINS, after_id="cape-wind.x", limit=1)
    assert [s.id for s in after_gap] == ["city-hall.wbgt"]
    assert [s.id for s in catalog.list_sensors(domains=ALL_DOMAINS, after_id="")] == [
        "cape-wind.wbgt",
        "cape-wind.wind_speed",
        "city-hall.wbgt",
        "omaezaki-port.tide_level",
        "omaezaki-port.wave_height",
    ]
    # count ignores paging: it is the total the pages walk through
    assert catalog.count_sensors(domains=ALL_DOMAINS) == 5


def test_ids_order_bytewise_on_every_backend(catalog: Catalog) -> None:
    # '-' (0x2d) sorts before '.' (0x2e) and digits; locale collations would disagree
    for device_id in ("a-b", "a1", "ab", "a0-z"):
        catalog.add_device(make_device(device_id), [make_sensor(device_id, "q")])
    ids = [s.id for s in catalog.list_sensors(domains=ALL_DOMAINS)]
    assert ids == sorted(ids)
    assert [d.id for d in catalog.list_devices()] == sorted(["a-b", "a1", "ab", "a0-z"])


def test_unicode_and_hostile_strings_round_trip(catalog: Catalog) -> None:
    device = make_device("hostile-1", name=HOSTILE, payload_format=HOSTILE)
    sensor = replace(make_sensor("hostile-1", "tide_level"), name="潮位 " + HOSTILE, unit=HOSTILE)
    catalog.add_device(device, [sensor])
    stored = catalog.get_device("hostile-1")
    assert stored is not None
    assert stored.name == HOSTILE
    assert stored.payload_format == HOSTILE
    assert catalog.get_sensor(sensor.id) == sensor
    # hostile ids are data, never SQL
    assert catalog.get_device(HOSTILE) is None
    assert catalog.get_sensor(HOSTILE) is None
    assert catalog.list_sensors(domains=ALL_DOMAINS, device_id=HOSTILE, after_id=HOSTILE) == []
    assert [d.id for d in catalog.list_devices()] == ["hostile-1"]


# ---------------------------------------------------------------- dead letters


def test_rejections_newest_first_with_filters(catalog: Catalog) -> None:
    rejections = [
        Rejection(
            received_at=T0 + timedelta(minutes=i),
            reason=f"reason {i}",
            topic=f"cityos/v1/devices/dev-{i % 2}/up",
            excerpt=f"excerpt {i}",
            device_id=f"dev-{i % 2}",
            quantity="tide_level" if i % 2 else None,
        )
        for i in range(6)
    ]
    catalog.record_rejections(rejections)
    catalog.record_rejections([])
    assert catalog.list_rejections() == list(reversed(rejections))
    assert catalog.list_rejections(limit=2) == [rejections[5], rejections[4]]
    assert catalog.list_rejections(limit=0) == []
    assert catalog.list_rejections(device_id="dev-1") == [
        rejections[5],
        rejections[3],
        rejections[1],
    ]
    since = (T0 + timedelta(minutes=3)).astimezone(UTC)
    assert catalog.list_rejections(since=since) == [rejections[5], rejections[4], rejections[3]]
    assert catalog.list_rejections(device_id="dev-0", since=since) == [rejections[4]]
    assert catalog.list_rejections(device_id="unknown") == []


def test_purging_rejections_keeps_the_newer_ones(catalog: Catalog) -> None:
    catalog.record_rejections(
        [
            Rejection(
                received_at=T0 + timedelta(days=i),
                reason=f"reason {i}",
                topic="cityos/v1/devices/dev-0/up",
                excerpt="",
            )
            for i in range(5)
        ]
    )
    assert catalog.purge_rejections(before=T0 + timedelta(days=2)) == 2
    assert [r.reason for r in catalog.list_rejections()] == ["reason 4", "reason 3", "reason 2"]
    assert catalog.purge_rejections(before=T0 + timedelta(days=2)) == 0
    with pytest.raises(InvalidInput):
        catalog.purge_rejections(before=datetime(2026, 1, 1))  # naive on purpose


def test_rejections_keep_times_utc_aware_and_strings_intact(catalog: Catalog) -> None:
    hostile = Rejection(
        received_at=T0,
        reason="非数値 " + HOSTILE,
        topic=HOSTILE,
        excerpt='{"readings": "\x01\'; DROP TABLE rejections; --"}',
        device_id=None,
    )
    catalog.record_rejections([hostile])
    catalog.record_rejections([hostile])  # append-only: duplicates are kept
    stored = catalog.list_rejections()
    assert stored == [hostile, hostile]
    assert stored[0].received_at.utcoffset() == timedelta(0)
    assert stored[0].received_at.tzinfo is not None


def test_naive_times_are_refused(catalog: Catalog) -> None:
    naive = Rejection(received_at=datetime(2026, 7, 1), reason="r", topic="t", excerpt="e")
    with pytest.raises(InvalidInput):
        catalog.record_rejections([naive])
    with pytest.raises(InvalidInput):
        catalog.list_rejections(since=datetime(2026, 7, 1))
    with pytest.raises(InvalidInput):
        catalog.upsert_dataset_facilities(make_dataset(fetched_at=datetime(2026, 7, 1)), [])
    assert catalog.list_rejections() == []


# ---------------------------------------------------------------- administrative data


def test_upsert_inserts_then_reruns_unchanged(catalog: Catalog) -> None:
    facilities = [make_facility("001"), make_facility("002"), make_facility("003")]
    first = catalog.upsert_dataset_facilities(make_dataset(), facilities)
    assert first == UpsertCounts(inserted=3)
    again = catalog.upsert_dataset_facilities(make_dataset(), facilities)
    assert again == UpsertCounts(unchanged=3)
    assert catalog.list_facilities() == facilities
    assert catalog.list_datasets() == [make_dataset()]


def test_upsert_counts_updates_and_withdrawals(catalog: Catalog) -> None:
    catalog.upsert_dataset_facilities(
        make_dataset(), [make_facility("001"), make_facility("002"), make_facility("003")]
    )
    changed = make_facility("002", name="避難所 二", hazards=frozenset({"flood"}))
    moved = make_facility("001", location=GeoPoint(lat=34.8612345678, lon=138.3298765432))
    later = make_dataset(fetched_at=T0 + timedelta(days=1), checksum="sha256:def", row_count=2)
    counts = catalog.upsert_dataset_facilities(later, [moved, changed])
    assert counts == UpsertCounts(updated=2, withdrawn=1)
    assert catalog.list_datasets() == [later]
    assert catalog.list_facilities() == [moved, changed]
    withdrawn = make_facility("003", withdrawn=True)
    assert catalog.list_facilities(include_withdrawn=True) == [moved, changed, withdrawn]
    # withdrawn rows are counted once, not at every later run
    assert catalog.upsert_dataset_facilities(later, [moved, changed]) == UpsertCounts(unchanged=2)
    # a withdrawn row that comes back is an update
    back = catalog.upsert_dataset_facilities(later, [moved, changed, make_facility("003")])
    assert back == UpsertCounts(updated=1, unchanged=2)
    assert len(catalog.list_facilities()) == 3


def test_upsert_detects_attribute_and_optional_field_changes(catalog: Catalog) -> None:
    base = make_facility("001")
    catalog.upsert_dataset_facilities(make_dataset(), [base])
    variants = [
        replace(base, attributes={"capacity": 121, "note": "2階以上"}),
        replace(base, attributes={"capacity": 121, "note": "2階以上", "extra": [1, 2]}),
        replace(base, name_kana=None),
        replace(base, address=None),
        replace(base, kind="shelter"),
        replace(base, domain=Domain.HEALTH),
        replace(base, hazards=frozenset()),
    ]
    for variant in variants:
        counts = catalog.upsert_dataset_facilities(make_dataset(), [variant])
        assert counts == UpsertCounts(updated=1), variant
        assert catalog.list_facilities() == [variant]
        assert catalog.upsert_dataset_facilities(make_dataset(), [variant]) == UpsertCounts(
            unchanged=1
        )


def test_upsert_is_scoped_to_its_dataset(catalog: Catalog) -> None:
    catalog.upsert_dataset_facilities(make_dataset("a"), [make_facility("1", "a")])
    catalog.upsert_dataset_facilities(make_dataset("b"), [make_facility("1", "b")])
    emptied = catalog.upsert_dataset_facilities(make_dataset("a"), [])
    assert emptied == UpsertCounts(withdrawn=1)
    assert [f.id for f in catalog.list_facilities()] == ["b:1"]
    assert [d.id for d in catalog.list_datasets()] == ["a", "b"]


def test_upsert_repeated_source_key_last_wins(catalog: Catalog) -> None:
    first, last = make_facility("001"), make_facility("001", name="訂正後")
    assert catalog.upsert_dataset_facilities(make_dataset(), [first, last]) == UpsertCounts(
        inserted=1
    )
    assert catalog.list_facilities() == [last]


def test_upsert_refuses_facilities_of_another_dataset(catalog: Catalog) -> None:
    with pytest.raises(InvalidInput):
        catalog.upsert_dataset_facilities(make_dataset("a"), [make_facility("1", "b")])
    assert catalog.list_datasets() == []


def test_upsert_of_an_id_used_by_another_dataset_is_already_exists(catalog: Catalog) -> None:
    catalog.upsert_dataset_facilities(make_dataset("a"), [make_facility("1", "a")])
    clash = make_facility("1", "b", id="a:1")
    with pytest.raises(AlreadyExists):
        catalog.upsert_dataset_facilities(make_dataset("b"), [clash])
    assert [d.id for d in catalog.list_datasets()] == ["a"]


def test_list_facilities_by_kind(catalog: Catalog) -> None:
    facilities = [
        make_facility("1", kind="aed"),
        make_facility("2", kind="evacuation_site"),
        make_facility("3", kind="shelter"),
    ]
    catalog.upsert_dataset_facilities(make_dataset(), facilities)
    assert catalog.list_facilities(kinds=frozenset({"aed", "shelter"})) == [
        facilities[0],
        facilities[2],
    ]
    assert catalog.list_facilities(kinds=frozenset()) == []
    assert catalog.list_facilities(kinds=frozenset({HOSTILE})) == []
    assert catalog.list_facilities(kinds=None) == facilities


def test_facility_strings_unicode_and_hostile_round_trip(catalog: Catalog) -> None:
    facility = make_facility(
        HOSTILE,
        id="odd:" + HOSTILE,
        name="御前崎市役所 " + HOSTILE,
        name_kana="おまえざきしやくしょ",
        address="静岡県御前崎市池新田５５８５",
        hazards=frozenset({"tsunami", HOSTILE}),
        attributes={HOSTILE: HOSTILE, "nested": {"列": ["一", 2, None, True, 1.5]}},
    )
    dataset = make_dataset(name=HOSTILE, source=HOSTILE, licence="政府標準利用規約 " + HOSTILE)
    assert catalog.upsert_dataset_facilities(dataset, [facility]) == UpsertCounts(inserted=1)
    assert catalog.list_facilities() == [facility]
    assert catalog.list_datasets() == [dataset]
    assert catalog.upsert_dataset_facilities(dataset, [facility]) == UpsertCounts(unchanged=1)


def test_dataset_times_come_back_utc_aware(catalog: Catalog) -> None:
    catalog.upsert_dataset_facilities(make_dataset(), [])
    (dataset,) = catalog.list_datasets()
    assert dataset.fetched_at == T0
    assert dataset.fetched_at.utcoffset() == timedelta(0)


def test_threads_share_one_catalog(catalog: Catalog) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            device_id = f"dev-{n:02d}"
            catalog.add_device(make_device(device_id), [make_sensor(device_id, "tide_level")])
            catalog.record_rejections(
                [Rejection(received_at=T0, reason="r", topic="t", excerpt="e", device_id=device_id)]
            )
            assert catalog.get_device(device_id) is not None
            catalog.count_sensors(domains=ALL_DOMAINS)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert catalog.count_sensors(domains=ALL_DOMAINS) == 12
    assert len(catalog.list_rejections(limit=100)) == 12


def test_upsert_bumps_updated_at_only_on_change(catalog: SqlCatalog) -> None:
    now = [T0]
    clocked = SqlCatalog(catalog.engine, clock=lambda: now[0])
    clocked.upsert_dataset_facilities(make_dataset(), [make_facility("1"), make_facility("2")])

    def updated_at() -> dict[str, datetime]:
        with catalog.engine.connect() as connection:
            rows = connection.exec_driver_sql("SELECT source_key, updated_at FROM facilities")
            return {key: value for key, value in rows}

    created = updated_at()
    now[0] = T0 + timedelta(hours=1)
    clocked.upsert_dataset_facilities(make_dataset(), [make_facility("1")])
    now[0] = T0 + timedelta(hours=2)
    clocked.upsert_dataset_facilities(make_dataset(), [make_facility("1")])
    after = updated_at()
    assert after["1"] == created["1"]
    assert after["2"] != created["2"]
    assert "2" not in [f.source_key for f in catalog.list_facilities()]


# ---------------------------------------------------------------- OAuth clients


def make_client(client_id: str = "c0ffee", **changes: object) -> OAuthClient:
    client = OAuthClient(
        id=client_id,
        name="焼津サーフ情報 partner",
        scopes=frozenset({"tourism:read", "export:read"}),
        created_at=T0,
    )
    return replace(client, **changes)  # type: ignore[arg-type]


def test_oauth_clients_round_trip_with_their_secret_hash(catalog: Catalog) -> None:
    catalog.add_oauth_client(make_client("b-client"), secret_hash="pbkdf2_sha256$1$s$h")
    catalog.add_oauth_client(
        make_client("a-client", name=HOSTILE, scopes=frozenset()), secret_hash="other"
    )
    assert catalog.get_oauth_client("b-client") == make_client("b-client")
    stored = catalog.get_oauth_client("a-client")
    assert stored is not None
    assert (stored.name, stored.scopes) == (HOSTILE, frozenset())
    assert stored.created_at == T0
    assert stored.created_at.utcoffset() == timedelta(0)
    assert catalog.oauth_client_secret_hash("b-client") == "pbkdf2_sha256$1$s$h"
    assert [c.id for c in catalog.list_oauth_clients()] == ["a-client", "b-client"]
    assert catalog.get_oauth_client("nope") is None
    assert catalog.oauth_client_secret_hash("nope") is None


def test_duplicate_oauth_client_is_already_exists(catalog: Catalog) -> None:
    catalog.add_oauth_client(make_client(), secret_hash="first")
    with pytest.raises(AlreadyExists):
        catalog.add_oauth_client(make_client(name="other"), secret_hash="second")
    assert catalog.oauth_client_secret_hash("c0ffee") == "first"
    assert [c.name for c in catalog.list_oauth_clients()] == ["焼津サーフ情報 partner"]


def test_oauth_client_scopes_must_be_single_words(catalog: Catalog) -> None:
    for bad in ("tourism:read export:read", ""):
        with pytest.raises(InvalidInput):
            catalog.add_oauth_client(make_client(scopes=frozenset({bad})), secret_hash="h")
    assert catalog.list_oauth_clients() == []


def test_rotating_an_oauth_client_secret_sets_rotated_at(catalog: Catalog) -> None:
    catalog.add_oauth_client(make_client(), secret_hash="old")
    before = datetime.now(UTC)
    rotated = catalog.set_oauth_client_secret("c0ffee", "new")
    assert catalog.oauth_client_secret_hash("c0ffee") == "new"
    assert rotated.rotated_at is not None
    assert before - timedelta(seconds=1) <= rotated.rotated_at <= datetime.now(UTC)
    assert catalog.get_oauth_client("c0ffee") == rotated
    assert rotated == make_client(rotated_at=rotated.rotated_at)
    with pytest.raises(NotFound):
        catalog.set_oauth_client_secret("nope", "x")


def test_revoking_an_oauth_client_is_idempotent_and_keeps_the_first_time(
    catalog: Catalog,
) -> None:
    catalog.add_oauth_client(make_client(), secret_hash="h")
    catalog.add_oauth_client(make_client("other"), secret_hash="h")
    first = catalog.revoke_oauth_client("c0ffee")
    assert first.revoked
    assert first.revoked_at is not None
    time.sleep(0.01)
    again = catalog.revoke_oauth_client("c0ffee")
    assert again == first
    assert catalog.get_oauth_client("c0ffee") == first
    other = catalog.get_oauth_client("other")
    assert other is not None
    assert not other.revoked
    assert other.revoked_at is None
    with pytest.raises(NotFound):
        catalog.revoke_oauth_client("nope")


# ---------------------------------------------------------------- signing keys


def make_key(kid: str, created_at: datetime = T0) -> SigningKey:
    return SigningKey(
        kid=kid, algorithm="ES256", private_jwk=f'{{"kid": "{kid}"}}', created_at=created_at
    )


def test_a_new_signing_key_retires_the_others_at_its_creation(catalog: Catalog) -> None:
    catalog.add_signing_key(make_key("k1"))
    assert catalog.list_signing_keys() == [make_key("k1")]
    t1 = T0 + timedelta(hours=1)
    catalog.add_signing_key(make_key("k2", t1))
    t2 = T0 + timedelta(hours=2)
    catalog.add_signing_key(make_key("k3", t2))
    keys = catalog.list_signing_keys()
    assert [(k.kid, k.retired_at) for k in keys] == [("k1", t1), ("k2", t2), ("k3", None)]
    assert keys[0].private_jwk == '{"kid": "k1"}'
    assert all(k.created_at.utcoffset() == timedelta(0) for k in keys)


def test_a_duplicate_kid_changes_nothing(catalog: Catalog) -> None:
    catalog.add_signing_key(make_key("k1"))
    with pytest.raises(AlreadyExists):
        catalog.add_signing_key(make_key("k1", T0 + timedelta(hours=1)))
    assert catalog.list_signing_keys() == [make_key("k1")]


def test_deleting_signing_keys_retired_long_ago(catalog: Catalog) -> None:
    for hours, kid in enumerate(("k1", "k2", "k3")):
        catalog.add_signing_key(make_key(kid, T0 + timedelta(hours=hours)))
    # k1 retired at T0+1h, k2 at T0+2h, k3 is active
    assert catalog.delete_signing_keys(retired_before=T0 + timedelta(hours=1, minutes=30)) == 1
    assert [k.kid for k in catalog.list_signing_keys()] == ["k2", "k3"]
    assert catalog.delete_signing_keys(retired_before=T0 + timedelta(days=9)) == 1
    assert [k.kid for k in catalog.list_signing_keys()] == ["k3"]


# ---------------------------------------------------------------- revoked tokens


def test_revoked_tokens_are_kept_until_they_expire(catalog: Catalog) -> None:
    early = RevokedToken(
        jti="jti-1", client_id="c0ffee", expires_at=T0 + timedelta(minutes=5), revoked_at=T0
    )
    late = RevokedToken(
        jti="jti-2", client_id="c0ffee", expires_at=T0 + timedelta(minutes=15), revoked_at=T0
    )
    catalog.revoke_token(early)
    catalog.revoke_token(late)
    catalog.revoke_token(replace(early, expires_at=T0 + timedelta(days=1)))  # idempotent
    assert catalog.list_revoked_tokens(expiring_after=T0) == [early, late]
    assert catalog.list_revoked_tokens(expiring_after=T0 + timedelta(minutes=10)) == [late]
    assert catalog.purge_revoked_tokens(expired_before=T0 + timedelta(minutes=10)) == 1
    assert catalog.list_revoked_tokens(expiring_after=T0) == [late]
    with pytest.raises(InvalidInput):
        catalog.revoke_token(replace(late, jti="naive", expires_at=datetime(2026, 7, 1)))


# ---------------------------------------------------------------- audit log


def test_audit_events_newest_first_with_filters(catalog: Catalog) -> None:
    events = [
        AuditEvent(
            time=T0 + timedelta(minutes=n),
            client_id=client,
            operation="query observations",
            resources=(f"omaezaki-port.tide_level#{n}",),
            details={"n": n, "text": HOSTILE, "nested": {"list": [1, 2.5, None]}},
            source_ip="192.0.2.10" if n % 2 else "2001:db8::1",
        )
        for n, client in enumerate(["a", "b", "a", None, "a"])
    ]
    catalog.append_audit(events[:3])
    catalog.append_audit(events[3:])
    catalog.append_audit([])
    assert catalog.list_audit() == events[::-1]
    assert catalog.list_audit(client_id="a") == [events[4], events[2], events[0]]
    assert catalog.list_audit(client_id="a", since=T0 + timedelta(minutes=2)) == [
        events[4],
        events[2],
    ]
    assert catalog.list_audit(limit=2) == [events[4], events[3]]
    assert catalog.list_audit(limit=0) == []
    assert all(e.time.utcoffset() == timedelta(0) for e in catalog.list_audit())


def test_audit_refuses_naive_times(catalog: Catalog) -> None:
    with pytest.raises(InvalidInput):
        catalog.append_audit(
            [AuditEvent(time=datetime(2026, 7, 1), client_id=None, operation="query")]
        )
    assert catalog.list_audit() == []


# ---------------------------------------------------------------- official alerts


def make_alert(key: str = "jma:warning:2222300:03", **changes: object) -> Alert:
    alert = Alert(
        id=f"{key}@20260701T000000Z",
        source="jma",
        kind="大雨警報",
        area=key.split(":")[2],
        area_name="御前崎市",
        status="issued",
        drill=False,
        issued_at=T0,
        kind_code="03",
        headline="【大雨警報】御前崎市に大雨警報を発表しました。",
        key=key,
        group=key.rsplit(":", 1)[0],
        dataset_id="jma:extra.xml",
        reported_at=T0,
        message_id="https://www.data.jma.go.jp/developer/xml/data/x_VPWW54_220000.xml",
        timeline=(AlertTransition(at=T0, status=AlertStatus.ISSUED),),
        attributes={"condition": "浸水害"},
    )
    return replace(alert, **changes)  # type: ignore[arg-type]


def alert_dataset(dataset_id: str = "jma:extra.xml") -> Dataset:
    return make_dataset(dataset_id, name="extra.xml", connector="jma", row_count=0)


def test_alerts_upsert_inserts_then_reruns_unchanged(catalog: Catalog) -> None:
    alerts = [make_alert(), make_alert("jma:warning:2222300:10", kind="大雨注意報")]
    assert catalog.upsert_dataset_alerts(alert_dataset(), alerts) == UpsertCounts(inserted=2)
    assert catalog.upsert_dataset_alerts(alert_dataset(), alerts) == UpsertCounts(unchanged=2)
    stored = {a.id: a for a in catalog.list_alerts()}
    assert stored[alerts[0].id] == alerts[0]
    assert stored[alerts[0].id].issued_at.tzinfo is not None
    (dataset,) = catalog.list_datasets()
    assert dataset.row_count == 2


def test_alerts_upsert_counts_changes_and_keeps_the_timeline(catalog: Catalog) -> None:
    catalog.upsert_dataset_alerts(alert_dataset(), [make_alert()])
    ended = T0 + timedelta(hours=2)
    cancelled = make_alert(
        status="cancelled",
        ended_at=ended,
        reported_at=ended,
        timeline=(
            AlertTransition(at=T0, status=AlertStatus.ISSUED),
            AlertTransition(at=ended, status=AlertStatus.CANCELLED),
        ),
    )
    assert catalog.upsert_dataset_alerts(alert_dataset(), [cancelled]) == UpsertCounts(updated=1)
    (stored,) = catalog.list_alerts()
    assert stored == cancelled
    assert stored.ended_at == ended


def test_alerts_belong_to_the_dataset_that_last_changed_them(catalog: Catalog) -> None:
    catalog.upsert_dataset_alerts(alert_dataset("jma:a"), [make_alert(dataset_id="jma:a")])
    moved = make_alert(dataset_id="jma:b", status="continued")
    assert catalog.upsert_dataset_alerts(alert_dataset("jma:b"), [moved]) == UpsertCounts(updated=1)
    counts = {d.id: d.row_count for d in catalog.list_datasets()}
    assert counts == {"jma:a": 0, "jma:b": 1}


def test_alerts_upsert_bumps_updated_at_only_on_change(catalog: SqlCatalog) -> None:
    now = [T0]
    clocked = SqlCatalog(catalog.engine, clock=lambda: now[0])
    clocked.upsert_dataset_alerts(alert_dataset(), [make_alert()])

    def updated_at() -> datetime:
        with catalog.engine.connect() as connection:
            value: datetime = connection.exec_driver_sql(
                "SELECT updated_at FROM alerts"
            ).scalar_one()
            return value

    created = updated_at()
    now[0] = T0 + timedelta(hours=1)
    clocked.upsert_dataset_alerts(alert_dataset(), [make_alert()])
    assert updated_at() == created
    clocked.upsert_dataset_alerts(alert_dataset(), [make_alert(headline="changed")])
    assert updated_at() != created


def test_alerts_of_lineage(catalog: Catalog) -> None:
    open_one = make_alert()
    ended = make_alert("jma:warning:2222300:10", status="replaced", ended_at=T0)
    tsunami = make_alert(
        "jma:tsunami:E1:380:62", group="jma:tsunami:E1:380", area="380", kind_code="62"
    )
    tricky = make_alert("jma:tsunami:E1_0:390:62", group="jma:tsunami:E1_0:390", area="390")
    catalog.upsert_dataset_alerts(alert_dataset(), [open_one, ended, tsunami, tricky])

    def ids(**query: list[str]) -> list[str]:
        arguments: dict[str, list[str]] = {"keys": [], "groups": [], "group_prefixes": []}
        arguments |= query
        return [a.id for a in catalog.alerts_of_lineage(**arguments)]

    assert ids(keys=["jma:warning:2222300:10"]) == [ended.id]
    assert ids(groups=["jma:warning:2222300"]) == [open_one.id]  # only the open ones
    assert ids(group_prefixes=["jma:tsunami:E1"]) == [tsunami.id]  # "_" is no wildcard
    assert ids(group_prefixes=["jma:tsunami:E1%"]) == []
    assert ids() == []


def test_list_alerts_filters(catalog: Catalog) -> None:
    later = T0 + timedelta(hours=3)
    alerts = [
        make_alert(),
        make_alert("jma:warning:2222300:10", issued_at=later, reported_at=later),
        make_alert("jma:warning:2221100:03", ended_at=T0 + timedelta(hours=1), status="cancelled"),
        make_alert("jma:drill:warning:2222300:04", area="2222300", drill=True),
        make_alert(
            "jma:heat:220000:2026-07-01", area="220000", valid_until=T0 + timedelta(hours=1)
        ),
        make_alert("jma:warning:2222300:" + HOSTILE, area=HOSTILE),
    ]
    catalog.upsert_dataset_alerts(alert_dataset(), alerts)
    assert catalog.list_alerts()[0].key == alerts[1].key  # newest issue first
    assert len(catalog.list_alerts(limit=2)) == 2
    assert catalog.list_alerts(limit=0) == []
    assert {a.key for a in catalog.list_alerts(area="2222300")} == {
        alerts[0].key,
        alerts[1].key,
        alerts[3].key,
    }
    assert [a.area for a in catalog.list_alerts(area=HOSTILE)] == [HOSTILE]
    assert alerts[1].key not in {a.key for a in catalog.list_alerts(issued_by=T0)}
    open_now = {a.key for a in catalog.list_alerts(open_at=T0 + timedelta(hours=2))}
    assert open_now == {alerts[0].key, alerts[5].key}  # not ended, no drill, within validity
    with pytest.raises(InvalidInput):
        catalog.list_alerts(open_at=datetime(2026, 7, 1))


def test_checkpoints_are_stored_with_the_alerts(catalog: Catalog) -> None:
    assert catalog.get_checkpoint("jma:extra.xml") is None
    catalog.upsert_dataset_alerts(alert_dataset(), [], checkpoint='{"etag": ""a""}')
    assert catalog.get_checkpoint("jma:extra.xml") == '{"etag": ""a""}'
    catalog.upsert_dataset_alerts(alert_dataset(), [])  # None keeps it
    assert catalog.get_checkpoint("jma:extra.xml") == '{"etag": ""a""}'
    catalog.upsert_dataset_alerts(alert_dataset(), [], checkpoint=HOSTILE)
    assert catalog.get_checkpoint("jma:extra.xml") == HOSTILE
    assert catalog.get_checkpoint("jma:other") is None
