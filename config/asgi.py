import os
import sys

from config.request_threads import serving_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = serving_application()

# Sync views (the admin, the model list) run in threads beside the event loop that streams
# the answers. While the loop is busy, a thread waits for the GIL up to the switch interval at
# each handoff (5 ms by default, several per request): 1 ms keeps those pages quick under load.
sys.setswitchinterval(0.001)
