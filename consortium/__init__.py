"""consortium: a multi-node consortium blockchain simulator (PBFT over MQTT, supply-chain finance)."""

__version__ = "0.1.0"
