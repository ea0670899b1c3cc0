"""Privacy helpers: the real client address behind proxies, masked before it is stored."""

from consentmw.privacy.ip import (
    UNKNOWN_IP,
    TrustedProxies,
    client_ip,
    mask_ip,
    parse_trusted_proxies,
)
from consentmw.privacy.logfilter import MaskIPFilter, install_access_log_filter

__all__ = [
    "UNKNOWN_IP",
    "MaskIPFilter",
    "TrustedProxies",
    "client_ip",
    "install_access_log_filter",
    "mask_ip",
    "parse_trusted_proxies",
]
