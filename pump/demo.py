"""Realistic Tyk gateway traffic, encoded exactly as a gateway would push it to Redis.

Like Tyk Pump's ``--demo`` (tyk-pump.md §5.3) but into Redis rather than straight to the sinks, so
``pump demo`` followed by ``pump run`` exercises the whole path. The traffic has several orgs,
APIs and versions, keys with aliases, paths with numeric ids and UUIDs, OAuth clients, a realistic
mix of status codes (including ResponseCode −1 network records), tags, geo data, and some
detailed records carrying base64 raw requests and responses.
"""

from __future__ import annotations

import base64
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

from pump.decode import msgpack as mp
from pump.decode import protobuf as pb
from pump.record import Record

ORGS = ["5e9d9544a1dcd60001d0ed20", "61f0c0ffee0000000000beef", "acme-corp"]
APIS = [
    ("727dad853a8a45f64ab981154d1ffdad", "Users API", ["/users/{id}", "/users", "/users/{id}/orders/{uuid}"]),
    ("a1b2c3d4e5f60718293a4b5c6d7e8f90", "Orders API", ["/orders/{uuid}", "/orders", "/orders/{uuid}/items/{id}"]),
    ("payments.v2", "Payments API", ["/v2/charges", "/v2/charges/{id}", "/v2/refunds/{uuid}"]),
    ("9f8e7d6c5b4a39281706f5e4d3c2b1a0", "Catalogue API", ["/products/{id}", "/search", "/categories/{id}/products"]),
    ("b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0", "Weather GraphQL", ["/graphql"]),
]
VERSIONS = ["Non Versioned", "v1", "v2"]
METHODS = [("GET", 70), ("POST", 15), ("PUT", 7), ("DELETE", 5), ("PATCH", 3)]
CODES = [
    (200, 700),
    (201, 60),
    (204, 30),
    (304, 20),
    (400, 40),
    (401, 30),
    (403, 20),
    (404, 50),
    (429, 20),
    (500, 15),
    (502, 8),
    (503, 5),
    (504, 2),
]
COUNTRIES = [
    ("US", 5391959, 37.7749, -122.4194, "America/Los_Angeles", "San Francisco"),
    ("GB", 2643743, 51.5085, -0.1257, "Europe/London", "London"),
    ("DE", 2950159, 52.5244, 13.4105, "Europe/Berlin", "Berlin"),
    ("JP", 1850147, 35.6895, 139.6917, "Asia/Tokyo", "Tokyo"),
    ("BR", 3448439, -23.5475, -46.6361, "America/Sao_Paulo", "São Paulo"),
    ("", 0, 0.0, 0.0, "", ""),
]
AGENTS = ["curl/8.4.0", "Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0", "okhttp/4.12.0", "python-httpx/0.27.0", "Go-http-client/1.1"]
OAUTH_CLIENTS = ["", "", "", "mobile-app", "partner-portal"]


@dataclass(frozen=True)
class Key:
    key: str
    alias: str
    org: str


T = TypeVar("T")


def _weighted(rng: random.Random, items: list[tuple[T, int]]) -> T:
    return rng.choices([i for i, _ in items], weights=[w for _, w in items])[0]


def _path(rng: random.Random, template: str) -> str:
    return template.replace("{id}", str(rng.randint(1, 99999))).replace("{uuid}", str(uuid.UUID(int=rng.getrandbits(128))))


def _raw_http(first_line: str, host: str, body: str) -> str:
    msg = f"{first_line}\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    return base64.b64encode(msg.encode()).decode()


class Traffic:
    """A deterministic (seeded) stream of gateway records."""

    def __init__(self, seed: int = 42, start: float | None = None, span_seconds: float = 3600.0, detailed_share: float = 0.1) -> None:
        self.rng = random.Random(seed)
        self.start = time.time() - span_seconds if start is None else start
        self.span = span_seconds
        self.detailed_share = detailed_share
        self.keys = [Key(f"{org[:8]}{self.rng.getrandbits(64):016x}", f"customer-{i}", org) for i, org in enumerate(ORGS * 6)]

    def record(self, at: float | None = None) -> Record:
        """One request; ``at`` (unix seconds) defaults to a random moment of the span."""
        rng = self.rng
        key = rng.choice(self.keys)
        api_id, api_name, templates = rng.choice(APIS)
        method = _weighted(rng, METHODS)
        code = _weighted(rng, CODES)
        path = _path(rng, rng.choice(templates))
        ts = self.start + rng.random() * self.span if at is None else at
        sec = int(ts)
        ns = sec * 1_000_000_000 + rng.randrange(1_000_000_000)
        upstream = rng.randint(2, 400) if code < 500 else rng.randint(1000, 5000)
        gateway = rng.randint(0, 6)
        iso, geoname, lat, lon, tz, city = rng.choice(COUNTRIES)
        host = f"{api_name.split()[0].lower()}.example.com"
        detailed = rng.random() < self.detailed_share
        body = f'{{"id": {rng.randint(1, 1000)}, "status": "ok"}}'
        tm = time.gmtime(sec)
        graphql = api_name.endswith("GraphQL")
        rec = Record(
            method="POST" if graphql else method,
            host=host,
            path=path,
            raw_path=path,
            content_length=rng.choice([0, 0, 0, 128, 512, 2048]),
            user_agent=rng.choice(AGENTS),
            day=tm.tm_mday,
            month=tm.tm_mon,
            year=tm.tm_year,
            hour=tm.tm_hour,
            response_code=code,
            api_key=key.key if rng.random() > 0.05 else "00000000",
            timestamp_ns=ns,
            api_version=rng.choice(VERSIONS),
            api_name=api_name,
            api_id=api_id,
            org_id=key.org,
            oauth_id=rng.choice(OAUTH_CLIENTS),
            request_time=upstream + gateway,
            raw_request=_raw_http(f"{method} {path} HTTP/1.1", host, body if method in ("POST", "PUT") else "") if detailed else "",
            raw_response=_raw_http(f"HTTP/1.1 {code} X", host, body) if detailed else "",
            ip_address=f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            geo_country_iso_code=iso,
            geo_city_geoname_id=geoname,
            geo_city_names={"en": city} if city else None,
            geo_location_latitude=lat,
            geo_location_longitude=lon,
            geo_location_time_zone=tz,
            latency_total=upstream + gateway,
            latency_upstream=upstream,
            latency_gateway=gateway,
            tags=[f"key-{key.key}", f"org-{key.org}", f"api-{api_id}", rng.choice(["env.production", "env.staging", "tier-gold"])],
            alias=key.alias,
            track_path=rng.random() < 0.7,
            expire_at_ns=ns + 7 * 86400 * 1_000_000_000,
            original_path=path,
            listen_path="/" + api_name.split()[0].lower() + "/",
            graphql_stats={
                "IsGraphQL": True,
                "OperationType": 1,
                "RootFields": ["forecast"],
                "Types": {"Forecast": ["temp"]},
                "Variables": "{}",
                "HasErrors": code >= 400,
                "Errors": None,
            }
            if graphql
            else None,
        )
        return rec

    def network_record(self, at: float | None = None) -> Record:
        """A ResponseCode −1 record: connection and byte counters only."""
        rec = self.record(at)
        rec.response_code = -1
        rec.network_open_connections = self.rng.randint(1, 50)
        rec.network_closed_connections = self.rng.randint(0, 50)
        rec.network_bytes_in = self.rng.randint(100, 100_000)
        rec.network_bytes_out = self.rng.randint(100, 1_000_000)
        return rec

    def stream(self, n: int, network_share: float = 0.01) -> Iterator[Record]:
        """``n`` records in time order across the span, as a gateway emits them."""
        step = self.span / max(n, 1)
        for i in range(n):
            at = self.start + i * step
            yield self.network_record(at) if self.rng.random() < network_share else self.record(at)


def payloads(records: Iterator[Record], protobuf_share: float = 0.0, rng: random.Random | None = None) -> Iterator[tuple[str, bytes]]:
    """(wire, payload) pairs: msgpack, or protobuf for ``protobuf_share`` of the records."""
    rng = rng or random.Random(7)
    for rec in records:
        if protobuf_share and rng.random() < protobuf_share:
            yield "protobuf", pb.encode_record(rec)
        else:
            yield "msgpack", mp.encode_record(rec)
