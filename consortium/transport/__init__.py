"""The bus edge: MQTT topics of a chain and a connection that reconnects on its own."""
