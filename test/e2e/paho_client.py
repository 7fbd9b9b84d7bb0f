"""Eclipse Paho (Debian's python3-paho-mqtt) against Nimbus over WebSocket.

Subscribes at QoS 0, 1 and 2, publishes at each QoS (one message retained), then
reconnects a second client to receive the retained message. Prints one JSON line
with what it saw; the end-to-end test checks it.
"""
import json
import sys
import threading
import time

import paho.mqtt.client as mqtt

host, port, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
result = {"connack": None, "granted": None, "messages": [], "retained": None}
done = threading.Event()
subscribed = threading.Event()


def on_connect(client, userdata, flags, rc):
    result["connack"] = rc
    client.subscribe([(prefix + "/q0", 0), (prefix + "/q1", 1), (prefix + "/q2", 2)])


def on_subscribe(client, userdata, mid, granted_qos):
    result["granted"] = list(granted_qos)
    subscribed.set()


def on_message(client, userdata, msg):
    result["messages"].append({"topic": msg.topic, "payload": msg.payload.decode(), "qos": msg.qos})
    if len(result["messages"]) == 3:
        done.set()


sub = mqtt.Client(client_id=prefix + "-sub", transport="websockets")
sub.ws_set_options(path="/mqtt")
sub.on_connect = on_connect
sub.on_subscribe = on_subscribe
sub.on_message = on_message
sub.connect(host, port, keepalive=30)
sub.loop_start()
subscribed.wait(10)

pub = mqtt.Client(client_id=prefix + "-pub", transport="websockets")
pub.ws_set_options(path="/mqtt")
pub.connect(host, port, keepalive=30)
pub.loop_start()
for qos in (0, 1, 2):
    info = pub.publish(prefix + "/q%d" % qos, "paho qos %d" % qos, qos=qos, retain=(qos == 1))
    info.wait_for_publish(10)
done.wait(10)

late = threading.Event()


def on_late_connect(client, userdata, flags, rc):
    client.subscribe(prefix + "/q1", 1)


def on_late_message(client, userdata, msg):
    result["retained"] = {"payload": msg.payload.decode(), "retain": bool(msg.retain)}
    late.set()


later = mqtt.Client(client_id=prefix + "-late", transport="websockets")
later.ws_set_options(path="/mqtt")
later.on_connect = on_late_connect
later.on_message = on_late_message
later.connect(host, port, keepalive=30)
later.loop_start()
late.wait(10)

for c in (sub, pub, later):
    c.disconnect()
    c.loop_stop()
print(json.dumps(result))
