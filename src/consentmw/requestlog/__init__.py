"""Pseudonymous request logs (not anonymous: a masked IP with a time and browser facets can
still single someone out): masked IPs, coarse browser/OS facts, period-named files that
rotate on a fixed schedule, compression, retention purge and legal hold."""

from consentmw.requestlog.middleware import RequestLogMiddleware
from consentmw.requestlog.record import RECORD_FIELDS
from consentmw.requestlog.service import RequestLog

__all__ = ["RECORD_FIELDS", "RequestLog", "RequestLogMiddleware"]
