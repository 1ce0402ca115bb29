"""MQTT delivery through a real Mosquitto broker that this test starts, stops and restarts."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import free_port, wait_until

from detector.config import MqttConfig
from detector.values import Act

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="needs the mosquitto broker (apt-get install mosquitto)")


class Broker:
    """Mosquitto on its own port, with persistence so that a subscriber's session survives a restart."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.conf = tmp / "mosquitto.conf"
        (tmp / "data").mkdir()
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {tmp / 'data'}/\nautosave_interval 1\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # a broker restart: it saves its sessions and exits
            self.proc.wait(10)


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


class Subscriber:
    """Persistent session (clean_session=False, QoS 1): queued messages survive our disconnects."""

    def __init__(self, port: int, topics: list[str]) -> None:
        import paho.mqtt.client as mqtt

        self.ids: list[str] = []
        self.availability: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-subscriber", clean_session=False)
        self.client.reconnect_delay_set(0.2, 1)
        self.client.on_connect = lambda c, *_: [c.subscribe(t, qos=1) for t in topics]
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=5)
        self.client.loop_start()

    def _on_message(self, _c, _u, msg) -> None:
        import json

        with self.lock:
            if msg.topic.endswith("/events"):
                self.ids.append(json.loads(msg.payload)["id"])
            else:
                self.availability.append((msg.topic, msg.payload.decode()))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def make_act(i: int) -> Act:
    return Act("littering", "gate", "pavement", "bottle", (10, 20, 30, 40), "small", float(i), float(i) + 2, i)


def test_nothing_lost_across_broker_restart(broker, tmp_path):
    from detector.outbox import Outbox, Sender
    from detector.protocol import keys
    from detector.signer import EventSigner
    from detector.sinks.mqtt import MqttSink

    key_path, _, _ = keys.generate("gate", tmp_path / "keys")
    outbox = Outbox(tmp_path / "gate.db", EventSigner(keys.load_private_key(key_path), "site", "gate"))
    sub = Subscriber(broker.port, ["detector/gate/events", "detector/gate/availability"])
    sink = MqttSink(MqttConfig(port=broker.port, ack_timeout_s=2), "gate")
    sender = Sender(outbox, sink, batch_size=5, backoff_initial_s=0.1, backoff_max_s=0.5, idle_wait_s=0.05)
    thread = threading.Thread(target=sender.run, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: ("detector/gate/availability", "online") in sub.availability, 10)
        for i in range(10):
            outbox.add(make_act(i))
        assert wait_until(lambda: outbox.counts()[1] == 0 and len(set(sub.ids)) == 10, 15), (
            outbox.counts(),
            len(sub.ids),
        )

        t_stop = time.monotonic()
        broker.stop()
        for i in range(10, 25):
            outbox.add(make_act(i))
        time.sleep(1.5)
        pending_while_down = outbox.counts()[1]
        assert pending_while_down == 15  # nothing acknowledged without a broker
        assert sender.failures > 0

        broker.start()
        t_start = time.monotonic()
        assert wait_until(lambda: outbox.counts()[1] == 0, 30), outbox.counts()
        t_drained = time.monotonic()
        assert wait_until(lambda: len(set(sub.ids)) == 25, 15), len(set(sub.ids))
        expected = {row[0] for row in outbox.conn.execute("SELECT id FROM events")}
        assert set(sub.ids) == expected
        print(
            f"\nbroker restart: down {t_start - t_stop:.1f} s with {pending_while_down} events pending; outbox "
            f"drained {t_drained - t_start:.1f} s after the restart; {len(set(sub.ids))} distinct ids of 25 "
            f"received ({len(sub.ids)} messages incl. duplicates)",
            file=sys.stderr,
        )
    finally:
        sender.stop()
        thread.join(5)
        sink.close()
    assert wait_until(lambda: sub.availability[-1:] == [("detector/gate/availability", "offline")], 5)
    sub.close()
    outbox.close()


def test_last_will_marks_a_dead_worker_offline(broker):
    sub = Subscriber(broker.port, ["detector/lwt/availability"])
    code = (
        "import sys, time\n"
        "from detector.config import MqttConfig\n"
        "from detector.sinks.mqtt import MqttSink\n"
        f"s = MqttSink(MqttConfig(port={broker.port}), 'lwt')\n"
        "assert s.connected.wait(10)\n"
        "print('up', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "up"
        assert wait_until(lambda: ("detector/lwt/availability", "online") in sub.availability, 5)
        proc.kill()  # no DISCONNECT: the broker publishes the will
        assert wait_until(lambda: sub.availability[-1:] == [("detector/lwt/availability", "offline")], 10)
    finally:
        proc.kill()
        proc.wait()
        sub.close()


def test_deliver_without_broker_acknowledges_nothing():
    from detector.sinks.mqtt import MqttSink

    sink = MqttSink(MqttConfig(port=free_port()), "nobody")
    try:
        result = sink.deliver([{"id": "x"}])
        assert result.delivered == 0 and not result.ok
    finally:
        sink.close()


@pytest.mark.footage
def test_worker_publishes_signed_events_with_evidence(broker, footage_dir, model_dir, tmp_path):
    """Camera worker -> outbox -> MQTT: the act of a real clip arrives with its evidence hash."""
    import json

    from detector.config import validate_site
    from detector.worker import CameraWorker

    got: list[dict] = []
    sub = Subscriber(broker.port, ["detector/porch/events"])
    sub._on_message = lambda _c, _u, msg: got.append(json.loads(msg.payload))  # keep whole events
    sub.client.on_message = sub._on_message
    site = validate_site(
        {
            "site": "s1",
            "cameras": [{"name": "porch", "url": str(footage_dir / "porch_bottle_drop_bad2.mp4"), "realtime": False}],
            "mqtt": {"enabled": True, "port": broker.port},
            "privacy": {"evidence_dir": str(tmp_path / "evidence")},
            "outbox": {"dir": str(tmp_path / "outbox"), "key_dir": str(tmp_path / "keys")},
        },
        "test",
    )
    stats = CameraWorker(site, site.cameras[0]).run()  # the file ends: the worker flushes and returns
    try:
        assert stats.acts >= 1, "the porch clip holds a bottle drop"
        assert stats.outbox_depth == 0 and stats.delivered == stats.acts
        assert wait_until(lambda: len({e["id"] for e in got}) == stats.acts, 10)
        event = got[0]
        assert event["source"] == "/sites/s1/cameras/porch" and event["sig"]
        assert (tmp_path / "evidence" / f"{event['data']['evidence_sha256']}.jpg").exists()
    finally:
        sub.close()
