"""Privacy helpers: the real client address behind proxies, masked before it is stored."""

from consentmw.privacy.ip import (
    UNKNOWN_IP,
    TrustedProxies,
    client_ip,
    mask_ip,
    parse_trusted_proxies,
)
from consentmw.privacy.logconfig import gunicorn_logconfig_dict, logging_config
from consentmw.privacy.logfilter import MaskIPFilter, install_access_log_filter
from consentmw.privacy.paths import clean_path

__all__ = [
    "UNKNOWN_IP",
    "MaskIPFilter",
    "TrustedProxies",
    "clean_path",
    "client_ip",
    "gunicorn_logconfig_dict",
    "install_access_log_filter",
    "logging_config",
    "mask_ip",
    "parse_trusted_proxies",
]
