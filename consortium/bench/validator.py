"""The validator benchmark: how many transactions per second a node validates, against the raw
signature-verification rate measured in the same run on the same machine.

A block of mixed business transactions from many signers is validated by a replica that holds
the parent state: cold (no signature seen before: every one verified, spread over all cores while
the contracts execute) and warm (every signature already verified at mempool admission).

The replica is a node's own ledger, its committed state in the store behind the state cache (as
a running node has it); the same block validated on a state held wholly in memory is measured in
the same run (`*_state_in_memory`), which is what the state on disk costs.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from consortium.certificate import sign_certificate
from consortium.crypto import KeyPair
from consortium.devnet import Devnet, make_devnet
from consortium.ledger.chain import Chain
from consortium.ledger.ledger import Ledger, genesis_state, store_path
from consortium.ledger.signatures import BatchVerifier, VerifiedCache, VerifyJob, verify_jobs
from consortium.ledger.tx import TX_DOMAIN
from consortium.parallel import PoolVerifier
from consortium.roles import quorum_size
from consortium.workload import build_workload

SIGNERS = 120


@dataclass(frozen=True, slots=True)
class ValidatorResult:
    block_txs: int
    signers: int
    cores: int
    verify_per_s_1core: float
    verify_per_s_all_cores: float
    cold_tx_per_s: float
    warm_tx_per_s: float
    cold_tx_per_s_state_in_memory: float
    warm_tx_per_s_state_in_memory: float
    signatures_per_tx: float = 1.0

    @property
    def ceiling_tx_per_s(self) -> float:
        """What the hardware allows a cold validator: every core verifying, nothing else."""
        return self.verify_per_s_all_cores / self.signatures_per_tx

    def as_json(self) -> dict:
        return {
            "block_txs": self.block_txs,
            "signers": self.signers,
            "cores": self.cores,
            "verify_per_s_1core": round(self.verify_per_s_1core),
            "verify_per_s_all_cores": round(self.verify_per_s_all_cores),
            "cold_tx_per_s": round(self.cold_tx_per_s),
            "warm_tx_per_s": round(self.warm_tx_per_s),
            "cold_tx_per_s_state_in_memory": round(self.cold_tx_per_s_state_in_memory),
            "warm_tx_per_s_state_in_memory": round(self.warm_tx_per_s_state_in_memory),
            "cold_over_verify": round(self.cold_tx_per_s / self.verify_per_s_1core, 3),
            "signatures_per_tx": round(self.signatures_per_tx, 3),
            "ceiling_tx_per_s": round(self.ceiling_tx_per_s),
            "cold_over_ceiling": round(self.cold_tx_per_s / self.ceiling_tx_per_s, 3),
            "warm_over_verify": round(self.warm_tx_per_s / self.verify_per_s_1core, 3),
        }


class CountingVerifier:
    """A `BatchVerifier` that counts the signatures it is handed, then lets `inner` check them."""

    def __init__(self, inner: BatchVerifier) -> None:
        self.inner = inner
        self.jobs = 0

    def start(self, jobs: Sequence[VerifyJob]) -> Callable[[], list[bool]]:
        self.jobs += len(jobs)
        return self.inner.start(jobs)

    def verify_many(self, jobs: Sequence[VerifyJob]) -> list[bool]:
        self.jobs += len(jobs)
        return self.inner.verify_many(jobs)


def signatures_per_tx(chain: Chain, block: bytes, block_txs: int) -> float:
    """How many signatures a cold validation of `block` checks per transaction: its own, and
    the confirmations and consents some transactions carry."""
    saved = chain.verifier, chain.cache
    counting = CountingVerifier(chain.verifier)
    chain.verifier, chain.cache = counting, VerifiedCache()
    chain.pending.clear()
    try:
        chain.validate(block)
    finally:
        chain.verifier, chain.cache = saved
        chain.pending.clear()
    return counting.jobs / block_txs


def _verify_jobs_for_bench(count: int) -> list[VerifyJob]:
    key = KeyPair.generate()
    jobs = []
    for i in range(count):
        message = TX_DOMAIN + i.to_bytes(32, "big")
        jobs.append((key.public_key, message, key.sign(message)))
    return jobs


def _best_verify_rate(verify_many: Callable[[list[VerifyJob]], list[bool]], count: int) -> float:
    jobs = _verify_jobs_for_bench(count)
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        verdicts = verify_many(jobs)
        best = max(best, count / (time.perf_counter() - start))
        if not all(verdicts):
            raise RuntimeError("signature verification failed in the benchmark")
    return best


def measure_verify_rate(count: int = 4000) -> float:
    """The raw PyNaCl verify loop on one core (the same call the validator makes)."""
    return _best_verify_rate(verify_jobs, count)


def measure_pool_verify_rate(pool: PoolVerifier, count: int = 8000) -> float:
    """The same verification spread over every core by the validator's worker pool, with
    nothing else running: the most a cold validation could reach on this machine right now
    (on a shared VM the second core does not always deliver a full core)."""
    return _best_verify_rate(pool.verify_many, count)


def _fresh_chain(net: Devnet, verifier: BatchVerifier | None) -> Chain:
    state = genesis_state(net.config, net.keys)
    return Chain(
        net.config.chain_id, state, Chain.genesis_header(net.config.chain_id, state), verifier
    )


def _best_rate(
    runs: int, txs: int, prepare: Callable[[], None], validate: Callable[[], None]
) -> float:
    rates = []
    for _ in range(runs):
        prepare()
        start = time.perf_counter()
        validate()
        rates.append(txs / (time.perf_counter() - start))
    return statistics.median(rates)


def _cold_and_warm(
    chain: Chain, block: bytes, txs: list, block_txs: int, runs: int
) -> tuple[float, float]:
    """Validate `block` with no signature known (cold), then with every one admitted (warm)."""

    def cold() -> None:
        chain.pending.clear()
        chain.cache = VerifiedCache()

    def warm() -> None:
        chain.pending.clear()

    def validate() -> None:
        chain.validate(block)

    cold_rate = _best_rate(runs, block_txs, cold, validate)
    for stx in txs:
        chain.admit(stx.raw)
    return cold_rate, _best_rate(runs, block_txs, warm, validate)


def run_validator_bench(
    block_txs: int = 5000,
    runs: int = 5,
    workdir: Path | None = None,
    pool: PoolVerifier | None = None,
) -> ValidatorResult:
    cores = os.cpu_count() or 1
    own_pool = pool is None
    pool = pool or PoolVerifier(cores)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            net = make_devnet(Path(workdir or tmp) / "bench", nodes=5, load_signers=SIGNERS)
            primary = _fresh_chain(net, None)
            in_memory = _fresh_chain(net, pool)
            ledger = Ledger(net.config, net.keys, store_path(net.config, "bank-b"), verifier=pool)
            on_disk = ledger.chain
            signers = dict(sorted(net.node_pairs.items())[: quorum_size(len(net.node_pairs))])

            def execute(txs: list) -> list:
                for chain in (primary, in_memory, on_disk):
                    for stx in txs:
                        chain.admit(stx.raw)
                executed, excluded = primary.propose(txs, 0, "bank-a")
                if excluded or not all(r.ok for r in executed.receipts):
                    raise RuntimeError("the benchmark workload does not apply cleanly")
                primary.commit(executed.hash)
                block = executed.block.encode()
                in_memory.validate(block)
                in_memory.commit(executed.hash)
                on_disk.validate(block)
                height = executed.header.height
                cert = sign_certificate(net.config.chain_id, 0, height, executed.hash, signers)
                ledger.commit(executed.hash, cert)
                return [r.result for r in executed.receipts]

            workload = build_workload(net, block_txs, execute)
            for stx in workload.measured:
                primary.admit(stx.raw)
            executed, excluded = primary.propose(workload.measured, 0, "bank-a")
            if excluded or not all(r.ok for r in executed.receipts):
                raise RuntimeError("the measured block does not apply cleanly")
            block = executed.block.encode()
            verify_rate = measure_verify_rate()
            all_cores_rate = measure_pool_verify_rate(pool)
            per_tx = signatures_per_tx(in_memory, block, block_txs)
            rates = {}
            # Alternating, so that both see the machine in the same state.
            for chain in (in_memory, on_disk, in_memory, on_disk):
                cold, warm = _cold_and_warm(chain, block, workload.measured, block_txs, runs)
                rates.setdefault(id(chain), []).append((cold, warm))
            ledger.close()
            (mem_cold, mem_warm), (disk_cold, disk_warm) = (
                tuple(max(r[i] for r in rates[id(c)]) for i in (0, 1)) for c in (in_memory, on_disk)
            )
            return ValidatorResult(
                block_txs,
                workload.signers,
                cores,
                verify_rate,
                all_cores_rate,
                disk_cold,
                disk_warm,
                mem_cold,
                mem_warm,
                per_tx,
            )
    finally:
        if own_pool:
            pool.close()
