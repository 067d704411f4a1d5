"""Hostile input for the live network: a compromised node's login and key and a client's login
publish garbage, forgeries, replays and rule-breaking transactions while a workload keeps going."""
