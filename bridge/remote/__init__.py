"""Remote control and telemetry: command checks, MQTT, the web page."""
