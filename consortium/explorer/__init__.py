"""The block explorer: a web UI over one node's store (read-only) and the nodes' heartbeats."""
