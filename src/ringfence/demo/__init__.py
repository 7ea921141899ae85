"""The one-command demo (``make run``): a simulated fleet on the real services, and the 19 July 2024 replay."""

from ringfence.demo.clock import FastClock
from ringfence.demo.fleet import DemoFleet, DemoInfo

__all__ = ["DemoFleet", "DemoInfo", "FastClock"]
