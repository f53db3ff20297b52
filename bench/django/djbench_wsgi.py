"""The WSGI entry point gunicorn serves (bench/django_cpu.py)."""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djbench_settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
