"""Host-checker (uptime) records: msgpack only, Go field names as keys (tyk-pump.md §1.1, §4)."""

from __future__ import annotations

from typing import Any

from pump.decode.msgpack import _bool, _int, _str, _time, _unpack, record_id
from pump.errors import DecodeError
from pump.gotime import time_from_unix
from pump.record import UptimeRecord


def decode_uptime(raw: bytes) -> UptimeRecord:
    """Decode one ``UptimeReportData`` payload."""
    m = _unpack(raw)
    if m.__class__ is not dict or ("URL" not in m and "TimeStamp" not in m):
        raise DecodeError("not an uptime record: expected a msgpack map with URL and TimeStamp")
    g = m.get
    r: UptimeRecord = UptimeRecord.__new__(UptimeRecord)
    r.url = _str(g("URL"), "URL")
    r.request_time = _int(g("RequestTime"), "RequestTime")
    r.response_code = _int(g("ResponseCode"), "ResponseCode")
    r.tcp_error = _bool(g("TCPError"), "TCPError")
    r.server_error = _bool(g("ServerError"), "ServerError")
    r.day = _int(g("Day"), "Day")
    r.month = _int(g("Month"), "Month")
    r.year = _int(g("Year"), "Year")
    r.hour = _int(g("Hour"), "Hour")
    r.minute = _int(g("Minute"), "Minute")
    r.timestamp_ns = _time(g("TimeStamp"), "TimeStamp")
    r.expire_at_ns = _time(g("ExpireAt"), "ExpireAt")
    r.timestamp = time_from_unix(*divmod(r.timestamp_ns, 1_000_000_000))
    r.expire_at = time_from_unix(*divmod(r.expire_at_ns, 1_000_000_000))
    r.api_id = _str(g("APIID"), "APIID")
    r.org_id = _str(g("OrgID"), "OrgID")
    r.record_id = record_id(raw)
    return r


def go_fields(r: UptimeRecord) -> dict[str, Any]:
    """The uptime record as the gateway's msgpack map (for the demo and tests)."""
    return {
        "URL": r.url,
        "RequestTime": r.request_time,
        "ResponseCode": r.response_code,
        "TCPError": r.tcp_error,
        "ServerError": r.server_error,
        "Day": r.day,
        "Month": r.month,
        "Year": r.year,
        "Hour": r.hour,
        "Minute": r.minute,
        "TimeStamp": list(divmod(r.timestamp_ns, 1_000_000_000)),
        "ExpireAt": list(divmod(r.expire_at_ns, 1_000_000_000)),
        "APIID": r.api_id,
        "OrgID": r.org_id,
    }
