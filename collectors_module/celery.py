"""Celery application: `celery -A collectors_module worker` starts a worker."""

import os

from celery import Celery

from collectors_module.ops.heartbeat import HeartbeatStep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "collectors_module.settings")

app = Celery("collectors_module")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# The worker heartbeat (readiness reads it): a bootstep on the worker's own timer.
app.steps["worker"].add(HeartbeatStep)
