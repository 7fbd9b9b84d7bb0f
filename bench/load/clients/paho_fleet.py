"""One host's share of a benchmark fleet driven by Eclipse Paho (Debian's python3-paho-mqtt).

The same fleet as bench/load/clients/core.ts describes: publisher i publishes QoS 1 to
<prefix>/t<i>; subscriber j subscribes to the topics of publishers j .. j+fanOut-1 (mod
slots). Commands arrive as JSON lines on stdin, answers leave as JSON lines on stdout:
open {plan, slice} -> {"ready": true}; start {traffic}; progress -> {published, received};
finish -> {published, received, latencies}; close -> {"closed": true}.
"""
import json
import random
import sys
import threading
import time
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

lock = threading.Lock()
tally = {"published": 0, "received": 0, "latencies": []}
publishers = {}
subscribers = []
driver = None


def now_ms():
    return time.time() * 1000


def answer(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def topic(plan, i):
    return "%s/t%d" % (plan["prefix"], i)


def make_client(plan, client_id):
    """A connected client (CONNACK received), its network loop running in a thread of its own."""
    url = urlparse(plan["url"])
    v5 = plan["version"] == 5
    if v5:
        c = mqtt.Client(client_id=client_id, transport="websockets", protocol=mqtt.MQTTv5)
    else:
        c = mqtt.Client(client_id=client_id, clean_session=plan["clean"], transport="websockets",
                        protocol=mqtt.MQTTv311)
    c.ws_set_options(path=url.path)
    connected = threading.Event()
    c.on_connect = lambda *args: connected.set()
    if v5:
        props = None
        if not plan["clean"]:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
        c.connect(url.hostname, url.port, keepalive=60, clean_start=plan["clean"], properties=props)
    else:
        c.connect(url.hostname, url.port, keepalive=60)
    c.loop_start()
    return c, connected


def on_message(client, userdata, msg):
    try:
        sent = float(msg.payload.decode().split()[0])
    except (ValueError, IndexError):
        sent = None
    with lock:
        tally["received"] += 1
        if sent is not None:
            tally["latencies"].append(now_ms() - sent)


def connect_batches(plan, ids):
    """Connects clients `ids` (index, client id), 50 at a time; yields (index, client) once each has its CONNACK."""
    batch = 50
    for start in range(0, len(ids), batch):
        pending = [(i, make_client(plan, cid)) for i, cid in ids[start:start + batch]]
        for i, (c, connected) in pending:
            if not connected.wait(60):
                raise RuntimeError("no CONNACK for %s" % dict(ids)[i])
            yield i, c


def open_slice(plan, first, last):
    for j, c in connect_batches(plan, [(j, "%s-s%d" % (plan["prefix"], j)) for j in range(first, last)]):
        done = threading.Event()
        c.on_subscribe = lambda *args, ev=done: ev.set()
        c.on_message = on_message
        c.subscribe([(topic(plan, (j + k) % plan["slots"]), 1) for k in range(plan["fanOut"])])
        if not done.wait(60):
            raise RuntimeError("no SUBACK for subscriber %d" % j)
        subscribers.append(c)
    for i, c in connect_batches(plan, [(i, "%s-p%d" % (plan["prefix"], i)) for i in range(first, last)]):
        publishers[i] = c


def publish(plan, i, seq):
    payload = ("%.3f %d %d" % (now_ms(), i, seq)).ljust(32)
    with lock:
        tally["published"] += 1
    publishers[i].publish(topic(plan, i), payload, qos=1)


def drive(plan, traffic):
    if traffic["kind"] == "burst":
        for i in sorted(publishers):
            for seq in range(traffic["each"]):
                publish(plan, i, seq)
        return
    start = time.monotonic()
    due = sorted((random.random() + seq, i, seq) for i in publishers for seq in range(traffic["seconds"]))
    for at, i, seq in due:
        wait = start + at - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        publish(plan, i, seq)


def main():
    global driver
    plan = None
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "open":
            plan = cmd["plan"]
            try:
                open_slice(plan, cmd["slice"]["from"], cmd["slice"]["to"])
                answer({"ready": True})
            except Exception as err:  # reported to the benchmark, which stops the run
                answer({"error": str(err)})
        elif cmd["cmd"] == "start":
            driver = threading.Thread(target=drive, args=(plan, cmd["traffic"]), daemon=True)
            driver.start()
        elif cmd["cmd"] == "progress":
            with lock:
                answer({"published": tally["published"], "received": tally["received"]})
        elif cmd["cmd"] == "finish":
            if driver is not None:
                driver.join()
            with lock:
                answer(tally)
        elif cmd["cmd"] == "close":
            for c in list(publishers.values()) + subscribers:
                c.disconnect()
            for c in list(publishers.values()) + subscribers:
                c.loop_stop()
            answer({"closed": True})
            return


main()
