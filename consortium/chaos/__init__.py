"""Chaos testing of the live network: a seeded nemesis breaks up to f nodes while a workload of
acknowledged transactions runs, then everything is healed and every node's ledger is checked."""
