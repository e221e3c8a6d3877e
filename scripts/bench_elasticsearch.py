"""``scripts/bench`` row ``elasticsearch``: the Elasticsearch pump into a real OpenSearch 2.19.1 node.

The node comes from tests/servers (``PUMP_TEST_ELASTIC_URL`` points at another cluster instead).
Each run writes to a fresh ``pump-bench-<time>-*`` set of daily indices (the bench records span
six hours, so usually one or two), left in place on an external cluster for inspection.

Settings are the ones a production pump would use: rolling indices, the index template, bulk
requests of Tyk's default size (1000 documents / 5 MiB) with two in flight, and no replicas so a
single node is green (replicas would only double the server's work, not the pump's).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


def elasticsearch(workdir: Path, start_server: Callable[[str], str]) -> dict[str, Any]:
    url = start_server("elastic")
    return {
        "elasticsearch": {
            "type": "elasticsearch",
            "meta": {
                "elasticsearch_url": url,
                "index_name": f"pump-bench-{uuid.uuid4().hex[:8]}",
                "rolling_index": True,
                "bulk_config": {"workers": 2},
                "index_settings": {"number_of_replicas": 0},
            },
        }
    }


ROWS = {"elasticsearch": elasticsearch}
