"""gunicorn settings: ``gunicorn -c gunicorn.conf.py app:app`` (run.sh does this)."""

import os

from consentmw.privacy import gunicorn_logconfig_dict

bind = f"127.0.0.1:{os.environ.get('APP_PORT', '8081')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
worker_class = "worker.ConsentUvicornWorker"
# Longer than the proxy's idle timeout for upstream connections (nginx: keepalive_timeout
# in nginx.conf.template; AWS ALB: 60 s), so the proxy never reuses a closed connection.
keepalive = 65
graceful_timeout = 15
# The access log on standard output, masked (the client as 127.0.0.0 or 203.0.0.0,
# paths without query string): gunicorn's and its uvicorn workers' records alike.
logconfig_dict = gunicorn_logconfig_dict()
# gunicorn >= 24 opens a control socket in ~/.gunicorn by default; two sites (or test
# runs) on one host would share it. Older gunicorn ignores this unknown name.
control_socket_disable = True
