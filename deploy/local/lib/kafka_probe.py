"""Health probe used by deploy/local/services.sh: does a Kafka broker answer a metadata request?

Usage: kafka_probe.py BOOTSTRAP TIMEOUT_SECONDS   (exit status 0 = healthy)
"""

from __future__ import annotations

import asyncio
import logging
import sys

from aiokafka.client import AIOKafkaClient


async def broker_answers(bootstrap: str, seconds: float) -> bool:
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(seconds * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), seconds)
        metadata = await asyncio.wait_for(client.fetch_all_metadata(), seconds)
        return bool(metadata.brokers())
    except Exception:
        return False
    finally:
        await client.close()


def main() -> int:
    # aiokafka logs every refused connection at ERROR; the exit status is the whole answer.
    logging.disable(logging.CRITICAL)
    bootstrap, seconds = sys.argv[1], float(sys.argv[2])
    return 0 if asyncio.run(broker_answers(bootstrap, seconds)) else 1


if __name__ == "__main__":
    sys.exit(main())
