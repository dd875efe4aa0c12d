"""The control plane: routing, API keys, rate limits, usage metering."""
