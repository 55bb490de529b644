"""Nothing lost (issue 4): a killed worker, an InfluxDB outage, two workers, an overload burst.

Real processes throughout: mosquitto with the queue settings of the deploy config, `cityos
ingest` workers as subprocesses, `mosquitto_pub` publishers, influxd. Every reading has its own
time, so the assertions are exact: each sensor holds exactly the readings sent — every one,
with its value, once (InfluxDB keeps one point per series and time, so a redelivered message
cannot add a second copy; what the tests check beyond that is that nothing is missing,
nothing unexpected is stored and nothing was dead-lettered or dropped by the broker).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from testkit.influxd import Influxd, running_influxd
from testkit.ingest_stack import (
    WORKER_USERNAME,
    IngestStack,
    PacedStream,
    deploy_queue_limit,
    ingest_stack,
    publish_burst,
    readings_a_day_ago,
)

pytestmark = [pytest.mark.mosquitto, pytest.mark.slow]

STORE_TIMEOUT = 180.0  # generous: the machine is shared; the assertions stay exact


def assert_nothing_refused_or_dropped(stack: IngestStack) -> None:
    """No dead letters in the catalog, no "messages dropped" in the broker's log."""
    assert stack.dead_letters() == []
    assert stack.broker_dropped() == []


def test_kill_9_mid_stream_then_restart_stores_every_reading_once(
    tmp_path: Path, influxd: Influxd
) -> None:
    # Killed three times in the stream of 50,000 (at 25/50/75 % sent, on the publishers'
    # clock): each kill lands at an arbitrary point of the worker's receive-write-ack cycle,
    # so a batch acknowledged before it is written would be caught more often than by one kill.
    total, devices = 50_000, 5
    with ingest_stack(tmp_path, influxd, device_count=devices, log_deliveries=True) as stack:
        worker = stack.start_worker(f"{WORKER_USERNAME}-1")
        readings = readings_a_day_ago()
        stream = PacedStream(stack.new_publishers(), readings, rate_per_second=2500, total=total)
        stream.start()
        stack.wait_for_total(1, timeout=STORE_TIMEOUT)
        for share in (0.25, 0.5, 0.75):
            stream.wait_sent(int(total * share), timeout=STORE_TIMEOUT)
            worker.kill()
            stored_at_kill = sum(stack.counts().values())
            assert 0 < stored_at_kill < total
            # Devices keep publishing into the dead worker's persistent session meanwhile.
            worker.start()  # same client id: the broker resumes the session
            worker.wait_subscribed()
        sent = stream.finish()
        assert sum(sent) == total
        stack.wait_for_total(total, timeout=STORE_TIMEOUT)
        stack.assert_stored_exactly(
            {d.sensor_id: readings.expected(n) for d, n in zip(stack.devices, sent, strict=True)}
        )
        assert_nothing_refused_or_dropped(stack)
        # The kills must have hit messages delivered but not yet acknowledged, which the broker
        # then delivered again (with DUP=1 mostly; a PUBLISH written into the dying socket is
        # resent with DUP=0). Those were written twice and are stored once (checked above).
        delivered = sum(stack.deliveries().values())
        assert delivered > total, f"the kills hit no unacknowledged message ({delivered})"


def test_influxdb_down_for_30_s_under_1000_msg_per_s_loses_nothing(tmp_path: Path) -> None:
    rate, total, outage = 1000, 45_000, 30.0
    with (
        running_influxd(tmp_path / "influxd") as server,
        ingest_stack(tmp_path / "stack", server, device_count=4) as stack,
    ):
        worker = stack.start_worker(f"{WORKER_USERNAME}-1")
        readings = readings_a_day_ago()
        stream = PacedStream(stack.new_publishers(), readings, rate_per_second=rate, total=total)
        stream.start()
        stream.wait_sent(3 * rate, timeout=60)
        stack.wait_for_total(1, timeout=60)
        server.stop()  # SIGTERM and wait: influxd is gone, its port closed
        sent_at_stop, stopped_at = stream.sent, time.monotonic()
        time.sleep(outage)
        sent_at_start = stream.sent
        server.start()  # same port, same data directory
        down_for = time.monotonic() - stopped_at
        sent = stream.finish()
        assert sum(sent) == total
        # the outage really fell inside a steady stream
        assert sent_at_start - sent_at_stop >= 0.8 * outage * rate, (sent_at_stop, sent_at_start)
        assert sent_at_start < total
        assert sent_at_start - sent_at_stop <= deploy_queue_limit()
        stack.wait_for_total(total, timeout=STORE_TIMEOUT)
        stack.assert_stored_exactly(
            {d.sensor_id: readings.expected(n) for d, n in zip(stack.devices, sent, strict=True)}
        )
        assert_nothing_refused_or_dropped(stack)
        assert "store write failed, retrying" in worker.log()  # it did meet the outage
        assert down_for >= outage


def test_two_workers_on_the_shared_subscription_store_every_reading_once(
    tmp_path: Path, influxd: Influxd
) -> None:
    per_device, devices = 5_000, 4
    total = per_device * devices
    with ingest_stack(tmp_path, influxd, device_count=devices, log_deliveries=True) as stack:
        workers = [stack.start_worker(f"{WORKER_USERNAME}-{n}") for n in (1, 2)]
        readings = readings_a_day_ago()
        publish_burst(stack.new_publishers(), readings, per_device)
        stack.wait_for_total(total, timeout=STORE_TIMEOUT)
        stack.assert_stored_exactly(
            {d.sensor_id: readings.expected(per_device) for d in stack.devices}
        )
        assert_nothing_refused_or_dropped(stack)
        deliveries = stack.deliveries()
        first = [deliveries[(w.client_id, False)] for w in workers]
        # each message went to exactly one worker (plain subscriptions would give 2 x total),
        # and both took a real share of the load
        assert sum(first) == total, deliveries
        assert min(first) >= total * 0.2, deliveries
        for worker in workers:
            assert "shared subscription $share/cityos/cityos/v1/devices/+/up" in worker.log()


def test_overload_burst_of_100000_from_c_publishers_stores_every_reading_once(
    tmp_path: Path, influxd: Influxd
) -> None:
    per_device, devices = 20_000, 5
    total = per_device * devices
    with ingest_stack(tmp_path, influxd, device_count=devices) as stack:
        stack.start_worker(f"{WORKER_USERNAME}-1")
        readings = readings_a_day_ago()
        started = time.monotonic()
        publish_burst(stack.new_publishers(), readings, per_device)  # every one PUBACKed
        published_in = time.monotonic() - started
        backlog = total - sum(stack.counts().values())
        # an overload indeed: the broker held a backlog for the worker (and dropped nothing)
        assert backlog > 0, "the worker kept up with the burst; nothing was overloaded"
        stored_in = published_in + stack.wait_for_total(total, timeout=STORE_TIMEOUT)
        stack.assert_stored_exactly(
            {d.sensor_id: readings.expected(per_device) for d in stack.devices}
        )
        assert_nothing_refused_or_dropped(stack)
        print(
            f"{total} messages published in {published_in:.1f}s ({backlog} not yet stored then), "
            f"all stored after {stored_in:.1f}s"
        )
