"""MQTT sink (paho-mqtt 2.x): signed events with QoS 1 to PREFIX/<camera>/events.

An event counts as delivered only when the broker's PUBACK has arrived, so while the
broker is away the outbox keeps everything and the Sender retries. A retry after a lost
PUBACK can deliver an event twice: consumers deduplicate by the event id (as the backend
does). `PREFIX/<camera>/availability` carries a retained `online`, and the broker publishes
the retained last will `offline` when the connection dies without a goodbye.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import paho.mqtt.client as mqtt

from detector.config import MqttConfig
from detector.protocol.events import canonical
from detector.sinks import DeliveryResult

log = logging.getLogger(__name__)


class MqttSink:
    def __init__(self, cfg: MqttConfig, camera: str, client_id: str | None = None) -> None:
        self.cfg = cfg
        self.events_topic = f"{cfg.topic_prefix}/{camera}/events"
        self.availability_topic = f"{cfg.topic_prefix}/{camera}/availability"
        self.connected = threading.Event()
        # A stable client id per camera: a restarted worker takes over its old session.
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"detector-{camera}", clean_session=True
        )
        if cfg.username:
            self.client.username_pw_set(cfg.username, os.environ.get(cfg.password_env or "", None))
        self.client.will_set(self.availability_topic, "offline", qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
        self.client.loop_start()  # paho's network thread reconnects by itself

    def _on_connect(self, client, _userdata, _flags, reason_code, _props) -> None:
        if reason_code.is_failure:
            log.warning("mqtt %s:%d refused the connection: %s", self.cfg.host, self.cfg.port, reason_code)
            return
        client.publish(self.availability_topic, "online", qos=1, retain=True)
        self.connected.set()
        log.info("mqtt connected to %s:%d", self.cfg.host, self.cfg.port)

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _props) -> None:
        if self.connected.is_set():
            log.warning("mqtt disconnected from %s:%d (%s)", self.cfg.host, self.cfg.port, reason_code)
        self.connected.clear()

    def deliver(self, events: list[dict]) -> DeliveryResult:
        if not events:
            return DeliveryResult(0)
        if not self.connected.is_set():
            return DeliveryResult(0, f"mqtt broker {self.cfg.host}:{self.cfg.port} not connected")
        infos = []
        for event in events:  # pipelined: publish the batch, then wait for the PUBACKs in order
            info = self.client.publish(self.events_topic, canonical(event), qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                break
            infos.append(info)
        deadline = time.monotonic() + self.cfg.ack_timeout_s
        done = 0
        for info in infos:
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except (RuntimeError, ValueError):  # the message was dropped from paho's queue
                break
            if not info.is_published():
                break
            done += 1
        if done == len(events):
            return DeliveryResult(done)
        return DeliveryResult(done, f"mqtt: {len(events) - done} of {len(events)} events not acknowledged (PUBACK)")

    def close(self) -> None:
        """Say goodbye (retained `offline`), then disconnect without triggering the will."""
        if self.connected.is_set():
            info = self.client.publish(self.availability_topic, "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(2.0)
            except (RuntimeError, ValueError):
                pass
            self.client.disconnect()
        self.client.loop_stop()
