"""consentmw: cookie consent and privacy-preserving request logs for ASGI apps."""
