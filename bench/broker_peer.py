"""The Python side of bench/brokers.sh: prepares and counts the queue or stream a run
delivers to, and runs the peer, the broker's own Python client sending the same number of
messages with confirmation (what a Python producer of those events achieves, with no file
watching at all).

    broker_peer.py prepare|count|cleanup TARGET NAME
    broker_peer.py peer TARGET NAME COUNT      prints "rate=<messages/s>"

TARGET is celery-redis, celery-amqp, redis_stream or jetstream."""

import asyncio
import json
import sys
import time

REDIS_URL = "redis://127.0.0.1:6379/0"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
NATS_URL = "nats://127.0.0.1:4222"
BATCH = 500

# About the size of an event's JSON object.
EVENT = {
    "id": 1,
    "mask": 256,
    "maskname": "IN_CREATE",
    "path": "/tmp/inotifier-bbench/w",
    "name": "f000001",
    "pathname": "/tmp/inotifier-bbench/w/f000001",
    "dir": False,
    "wd": 1,
    "cookie": 0,
    "src_pathname": None,
    "synthetic": False,
    "origin": "kernel",
    "time": 1764077825.123456789,
}


def amqp_channel():
    import amqp

    connection = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest")
    connection.connect()
    return connection, connection.channel()


def nats_run(work):
    async def main():
        import nats

        client = await nats.connect(NATS_URL)
        try:
            return await work(client.jetstream())
        finally:
            await client.close()

    return asyncio.run(main())


def prepare(target, name):
    cleanup(target, name)
    if target == "jetstream":
        nats_run(lambda js: js.add_stream(name=name, subjects=[f"{name}.>"]))


def count(target, name):
    if target in ("celery-redis", "redis_stream"):
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        return client.llen(name) if target == "celery-redis" else client.xlen(name)
    if target == "celery-amqp":
        connection, channel = amqp_channel()
        try:
            return channel.queue_declare(name, passive=True).message_count
        finally:
            connection.close()
    return nats_run(lambda js: _stream_messages(js, name))


async def _stream_messages(js, name):
    return (await js.stream_info(name)).state.messages


def cleanup(target, name):
    if target in ("celery-redis", "redis_stream"):
        import redis

        redis.Redis.from_url(REDIS_URL).delete(
            name, f"_kombu.binding.{name}", f"_kombu.binding_permanent.{name}"
        )
    elif target == "celery-amqp":
        connection, channel = amqp_channel()
        try:
            channel.queue_delete(name)
        finally:
            connection.close()
    else:

        async def delete(js):
            try:
                await js.delete_stream(name)
            except Exception:  # noqa: BLE001 (absent: nothing to delete)
                pass

        nats_run(delete)


def peer(target, name, n):
    if target.startswith("celery"):
        from celery import Celery

        url = REDIS_URL if target == "celery-redis" else AMQP_URL
        app = Celery("peer", broker=url)
        app.conf.broker_transport_options = {"confirm_publish": True}
        with app.producer_or_acquire() as producer:
            start = time.perf_counter()
            for index in range(n):
                app.send_task(
                    "peer.record", args=[dict(EVENT, id=index)], queue=name, producer=producer
                )
            return n / (time.perf_counter() - start)
    if target == "redis_stream":
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        start = time.perf_counter()
        for first in range(0, n, BATCH):
            pipeline = client.pipeline(transaction=False)
            for index in range(first, min(first + BATCH, n)):
                event = dict(EVENT, id=index)
                pipeline.xadd(
                    name,
                    {
                        "source": "peer",
                        "id": index,
                        "pathname": event["pathname"],
                        "maskname": "IN_CREATE",
                        "event": json.dumps(event),
                    },
                )
            pipeline.execute()
        return n / (time.perf_counter() - start)

    async def publish(js):
        start = time.perf_counter()
        for first in range(0, n, BATCH):
            await asyncio.gather(
                *(
                    js.publish(f"{name}.IN_CREATE", json.dumps(dict(EVENT, id=index)).encode())
                    for index in range(first, min(first + BATCH, n))
                )
            )
        return n / (time.perf_counter() - start)

    return nats_run(publish)


def main():
    command, target, name = sys.argv[1:4]
    if command == "prepare":
        prepare(target, name)
    elif command == "count":
        print(count(target, name))
    elif command == "cleanup":
        cleanup(target, name)
    elif command == "peer":
        print(f"rate={peer(target, name, int(sys.argv[4])):.0f}")
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
