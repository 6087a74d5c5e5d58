"""tests/bgp imports the agent tests' Neutron-shaped resource builders (agent_support)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "agent"))
