"""FaceReg's Gradio app (`python -m space`): verification, webcam capture, dataset push, training and publishing.

Importing `space` applies `FACEREG_HUB_ENDPOINT` (through hub_tools.config) before Gradio imports huggingface_hub,
so the whole app can talk to a local Hub server, and sizes Gradio's queue analytics before the queue exists.
"""
import os

from hub_tools.config import apply_env

apply_env()
# Gradio's queue keeps a record of every event (visitor session, time, status; the last 10,000 by default) and
# rebuilds a pandas summary of all of them after each event, for its monitoring page, which this app does not
# use: CPU on every request that grows with the app's uptime. Keep the last 500 and summarise every 100 events.
# (Set either variable to choose otherwise.)
os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "500")
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "100")
