"""Deterministic simulation of the PBFT core: a seeded virtual network, clock and fault mix,
byzantine nodes, simulated clients, and an outside checker of safety and convergence."""
