"""The PBFT replica (Castro & Liskov, OSDI 1999) as a sans-IO state machine.

Each call takes one input and `now` (ms) and returns `Actions`; nothing here reads a clock,
touches the network, or draws random numbers. Quorums are `quorum_size(n)` for any n >= 4, so two
quorums share f + 1 replicas and at least one honest one.

Blocks are hash-chained, which plain PBFT does not need. So a replica sends COMMIT for sequence
number s only once it validated the block (its parent is the block it holds at s - 1) and it sent
COMMIT for s - 1 in the same view, or executed s - 1: commits go out in order. Every honest
replica in a commit quorum then holds prepared certificates of that view for all the block's
unexecuted ancestors, so a quorum of VIEW-CHANGEs always reports the whole committed chain, and
the NEW-VIEW rule can re-issue a prepared block only if it extends the block chosen just before
it, filling everything else with empty (null) blocks without ever dropping a committed one.

Every public input runs in two halves. Its handler does only what belongs to that input: it
records a vote, a checkpoint vote or a request, installs fetched blocks, starts or completes a
view change. Then `_advance` runs the normal case in one fixed order (validate in order, vote,
execute, settle checkpoints, propose) and repeats it until a pass changes nothing. No step calls
back into another, so whatever an input caused, its actions come out in that order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from consortium import codec
from consortium.certificate import CommitCertificate, commit_statement
from consortium.crypto import KeyPair
from consortium.errors import CodecError, LocalError, RemoteError
from consortium.pbft.actions import (
    Actions,
    CancelTimer,
    CommittedBlock,
    Persist,
    Reply,
    Send,
    SetTimer,
)
from consortium.pbft.app import Application, InvalidBlock, MissingParent
from consortium.pbft.messages import (
    MAX_FETCH_BLOCKS,
    MAX_FORWARDED_REQUESTS,
    Checkpoint,
    Commit,
    CommittedBlocks,
    FetchBlocks,
    FetchProposals,
    ForwardRequests,
    Message,
    NewView,
    Prepare,
    PreparedProof,
    PrePrepare,
    Proposal,
    Signed,
    Status,
    ViewChange,
    sign,
)
from consortium.pbft.new_view import plan_new_view
from consortium.pbft.proofs import Dropped, ProofChecker, Selection, select_prepared
from consortium.pbft.settings import ConsensusConfig
from consortium.pbft.wire import WireCache
from consortium.roles import max_faulty, quorum_size

MAX_VIEW_JUMP = 1000
"""VIEW-CHANGEs further ahead than this are ignored; a NEW-VIEW (a quorum's proof) is not bounded."""

BATCH_TIMER = "batch"
PROGRESS_TIMER = "progress"
VIEW_CHANGE_TIMER = "view_change"
STATUS_TIMER = "status"
FETCH_TIMER = "fetch"
RELAY_TIMER = "relay"
PROPOSALS_TIMER = "proposals"
MAX_PROPOSALS_PER_SEQ = 4
"""Blocks remembered per sequence number besides the slot's and its certificate's: those of
earlier views that a later NEW-VIEW may re-issue and a peer may ask for."""
# The replica's record of its stable checkpoint: (seq, block hash, the quorum of CHECKPOINTs).
STABLE_RECORD = "stable"


@dataclass(slots=True)
class Slot:
    """What a replica knows about one sequence number."""

    seq: int
    preprepare: Signed | None = None  # accepted in the current view
    digest: bytes = b""
    block: bytes = b""
    request_ids: tuple[bytes, ...] = ()
    validated: bool = False
    rejected: bool = False
    prepare_sent: bool = False
    commit_sent: bool = False
    prepared: bool = False  # in the current view
    proof: PreparedProof | None = None  # the highest-view prepared certificate, kept across views


class Replica:
    def __init__(
        self,
        node_id: str,
        node_keys: Mapping[str, bytes],
        key: KeyPair,
        chain_id: str,
        config: ConsensusConfig,
        app: Application,
        records: Mapping[str, bytes] | None = None,
        cache: WireCache | None = None,
    ) -> None:
        if node_id not in node_keys:
            raise LocalError(f"{node_id} is not one of the nodes")
        self.node_id = node_id
        self.nodes = tuple(sorted(node_keys))
        self.keys = dict(node_keys)
        self.key = key
        self.chain_id = chain_id
        self.config = config
        self.app = app
        self.cache = cache or WireCache()
        self.n = len(self.nodes)
        self.f = max_faulty(self.n)
        self.q = quorum_size(self.n)
        self.window = config.watermark_window
        self.interval = config.checkpoint_interval
        self.proofs = ProofChecker(
            chain_id,
            node_keys,
            self.q,
            self.interval,
            self.window,
            app.genesis_digest(),
            self.cache,
        )
        self.counters: Counter[str] = Counter()  # dropped inputs, by reason
        self.stats: Counter[str] = Counter()  # protocol events worth a metric

        self.view = 0
        self.changing = False
        self.failed_views = 0
        self.stable_seq = 0
        self.stable_digest = app.genesis_digest()
        self.stable_proof: tuple[Signed, ...] = ()
        self.executed = app.committed_height()
        self.validated_upto = self.executed
        self.next_seq = self.executed + 1
        self.slots: dict[int, Slot] = {}
        # Heights with a pre-prepare or prepared certificate on disk, whatever became of their
        # slot since (a view change clears it, a state transfer skips it): each is deleted once
        # a checkpoint covers it, so the records stay within the window.
        self.recorded_seqs: set[int] = set()
        self.prepare_votes: dict[tuple[int, int], dict[str, Signed]] = {}
        self.commit_votes: dict[int, dict[int, dict[str, Signed]]] = {}
        self.checkpoint_votes: dict[int, dict[str, Signed]] = {}
        self.view_changes: dict[int, dict[str, Signed]] = {}
        self.new_view_message: Signed | None = None
        self.own_view_change: Signed | None = None
        self.pending: dict[bytes, bytes] = {}
        self.pending_since: dict[bytes, int] = {}  # when each pending request was last relayed
        self.executed_at_last_relay = self.executed
        self.peer_executed: dict[str, int] = {}
        self.fetch_target = 0
        self.fetch_attempt = 0
        self.timer_due: dict[str, int] = {}
        self.last_push: dict[str, int] = {}
        self.committed_digests: dict[int, bytes] = {}
        # Blocks proposed in the window, by seq and digest: certificates travel by digest, so a
        # replica serves these to peers that a new view asks to re-issue them.
        self.proposals: dict[int, dict[bytes, bytes]] = {}
        # Blocks a NEW-VIEW needs that this replica lacks, each with the replicas that hold it
        # (the certificate's signers); the NEW-VIEW waiting for them, when this is a backup.
        self.wanted_proposals: dict[tuple[int, bytes], tuple[str, ...]] = {}
        self.proposal_attempt = 0
        self.waiting_new_view: Signed | None = None
        self.executed_at_last_heartbeat = -1
        self._now = 0
        self._out = Actions()
        # Facts the handlers leave for `_advance`: the batch delay is over; checkpoints that
        # received votes and may now be stable.
        self._batch_due = False
        self._checkpoints_to_check: set[int] = set()
        if records:
            self._restore(records)

    # ----------------------------------------------------------------- public inputs

    def start(self, now: int) -> Actions:
        """Arm the heartbeat; after a restart, resume an unfinished view change."""
        self._begin(now)
        self._set_timer(STATUS_TIMER, now + self._status_interval())
        if self.changing:
            self.own_view_change = self._broadcast(self._make_view_change(self.view))
            self.view_changes.setdefault(self.view, {})[self.node_id] = self.own_view_change
        return self._finish()

    def receive(self, data: bytes, now: int, publisher: str | None = None) -> Actions:
        """A message from a peer. Bad input is dropped and counted, never raised.

        `publisher` is the node the transport says sent it (the broker's ACL makes that true):
        only NEW-VIEWs and CHECKPOINTs are passed on by nodes other than their signer, so any
        other message in another node's name is a replay and is dropped."""
        self._begin(now)
        try:
            signed = self.cache.decode(data, remember=False)
            self._check_sender(signed)
            if (
                publisher is not None
                and publisher != signed.sender
                and not isinstance(signed.body, NewView | Checkpoint)
            ):
                raise Dropped("relayed_by_other")
            self.cache.remember(data, signed)
            self._dispatch(signed)
        except CodecError:
            self.counters["malformed"] += 1
        except Dropped as dropped:
            self.counters[dropped.reason] += 1
        except InvalidBlock:
            self.counters["invalid_block"] += 1
        except RemoteError:
            self.counters["invalid"] += 1
        return self._finish()

    def submit(self, request: bytes, now: int) -> Actions:
        """A client request handed to this replica (forwarded to the primary if we are not it)."""
        return self.submit_many((request,), now, forward=True)

    def submit_many(self, requests: Sequence[bytes], now: int, forward: bool) -> Actions:
        """Client requests handed over together. Without `forward` the caller promises that
        every replica receives them directly (clients broadcast on the bus), so forwarding them to
        the primary would only multiply the traffic; clients still retransmit on timeout."""
        self._begin(now)
        for request in requests:
            try:
                self._add_request(request, forward=forward)
            except RemoteError:
                self.counters["invalid_request"] += 1
        return self._finish()

    def timer(self, name: str, now: int) -> Actions:
        """A timer set through `SetTimer` fired; stale firings are ignored."""
        self._begin(now)
        due = self.timer_due.get(name)
        if due is None or due > now:
            return self._finish()
        del self.timer_due[name]
        if name == STATUS_TIMER:
            self._heartbeat()
        elif name == BATCH_TIMER:
            self._batch_due = True
        elif name == PROGRESS_TIMER:
            if self.primary == self.node_id:
                # A primary does not suspect itself: when it is slow or cut off, the backups
                # time out and it follows their view change. Keep watching for stale requests.
                self._arm_progress()
            elif not self.changing and self.pending:
                self.stats["view_change_timeouts"] += 1
                self._start_view_change(self.view + 1)
        elif name == VIEW_CHANGE_TIMER:
            if self.changing:
                self._start_view_change(self.view + 1)
        elif name == FETCH_TIMER:
            self.fetch_attempt += 1
            self._start_fetch()
        elif name == RELAY_TIMER:
            self._relay_unproposed()
        elif name == PROPOSALS_TIMER:
            self.proposal_attempt += 1
            self._fetch_proposals()
        return self._finish()

    @property
    def primary(self) -> str:
        return self.primary_of(self.view)

    def primary_of(self, view: int) -> str:
        return self.nodes[view % self.n]

    # ----------------------------------------------------------------- plumbing

    def _begin(self, now: int) -> None:
        self._now = now
        self._out = Actions()

    def _finish(self) -> Actions:
        self._advance()
        out, self._out = self._out, Actions()
        return out

    def _advance(self) -> None:
        """Take the normal case as far as this step's facts allow, in one fixed order per pass,
        until a pass changes nothing. Each step returns whether it changed what a later one
        reads: a validated block may be voted on, a vote may complete a certificate, an executed
        block may let the next one's COMMIT go out, settle a checkpoint or free room in the
        window, and a stable checkpoint or a new block may free room for another proposal. Every
        step is idempotent once nothing changed, so running the loop after any input is safe."""
        while True:
            changed = False
            if not self.changing:
                changed |= self._validate_in_order()
                changed |= self._vote()
            changed |= self._execute_ready()
            changed |= self._settle_checkpoints()
            changed |= self._propose()
            if not changed:
                return

    def _sign(self, body: Message) -> Signed:
        return sign(self.key, self.chain_id, self.node_id, body)

    def _broadcast(self, body: Message) -> Signed:
        signed = self._sign(body)
        self._out.send.append(Send(None, signed.encode()))
        return signed

    def _send_to(self, to: str, body: Message) -> None:
        self._out.send.append(Send(to, self._sign(body).encode()))

    def _persist(self, key: str, value: bytes | None) -> None:
        self._out.persist.append(Persist(key, value))

    def _set_timer(self, name: str, at_ms: int) -> None:
        self.timer_due[name] = at_ms
        self._out.timers.append(SetTimer(name, at_ms))

    def _cancel_timer(self, name: str) -> None:
        if self.timer_due.pop(name, None) is not None:
            self._out.timers.append(CancelTimer(name))

    def _timeout(self) -> int:
        base = self.config.view_change_timeout_ms
        return min(base << min(self.failed_views, 20), self.config.view_change_timeout_max_ms)

    def _status_interval(self) -> int:
        return max(self.config.view_change_timeout_ms // 2, 1)

    def _relay_interval(self) -> int:
        """How long a backup waits for the primary to propose a request before relaying it: a
        quarter of the view-change timeout, so a request the primary missed costs a relay, not a
        view change."""
        return max(self.config.view_change_timeout_ms // 4, 1)

    def _check_sender(self, signed: Signed) -> None:
        if signed.sender not in self.keys:
            raise Dropped("non_member")
        if signed.sender == self.node_id:
            raise Dropped("own_message")
        if not self.proofs.is_valid_signature(signed):
            raise Dropped("bad_signature")

    def _dispatch(self, signed: Signed) -> None:
        body = signed.body
        if isinstance(body, PrePrepare):
            self._on_preprepare(signed, body)
        elif isinstance(body, Prepare):
            self._on_prepare(signed, body)
        elif isinstance(body, Commit):
            self._on_commit(signed, body)
        elif isinstance(body, Checkpoint):
            self._on_checkpoint(signed, body)
        elif isinstance(body, ViewChange):
            self._on_view_change(signed, body)
        elif isinstance(body, NewView):
            self._on_new_view(signed, body)
        elif isinstance(body, Status):
            self._on_status(signed, body)
        elif isinstance(body, FetchBlocks):
            self._on_fetch(signed, body)
        elif isinstance(body, CommittedBlocks):
            self._on_committed_blocks(body)
        elif isinstance(body, ForwardRequests):
            self._on_forward(body)
        elif isinstance(body, FetchProposals):
            self._on_fetch_proposals(signed, body)
        elif isinstance(body, Proposal):
            self._on_proposal(body)

    def _slot(self, seq: int) -> Slot:
        slot = self.slots.get(seq)
        if slot is None:
            slot = self.slots[seq] = Slot(seq)
        return slot

    def _in_window(self, seq: int) -> bool:
        return self.stable_seq < seq <= self.stable_seq + self.window

    def _check_view(self, view: int) -> None:
        if view < self.view:
            raise Dropped("stale_view")
        if view > self.view:
            raise Dropped("far_future_view" if view > self.view + MAX_VIEW_JUMP else "future_view")

    def _committed_digest(self, height: int) -> bytes:
        if height == 0:
            return self.app.genesis_digest()
        found = self.committed_digests.get(height)
        if found is None:
            found = self.app.committed_block(height)[1].block_hash
        return found

    # ----------------------------------------------------------------- requests

    def _add_request(self, request: bytes, forward: bool) -> None:
        request_id = self.app.request_id(request)
        height = self.app.lookup_request(request_id)
        if height is not None:
            self._out.replies.append(Reply(request_id, height, self._committed_digest(height)))
            return
        if request_id in self.pending:
            if forward and not self.changing and self.primary != self.node_id:
                self._send_to(self.primary, ForwardRequests((request,)))
            return
        self.pending[request_id] = request
        self.pending_since[request_id] = self._now
        if forward and not self.changing and self.primary != self.node_id:
            self._send_to(self.primary, ForwardRequests((request,)))
        self._arm_progress()
        self._arm_relay()

    def _drop_pending(self, request_id: bytes) -> None:
        self.pending.pop(request_id, None)
        self.pending_since.pop(request_id, None)

    def _arm_relay(self) -> None:
        if (
            self.pending
            and not self.changing
            and self.primary != self.node_id
            and RELAY_TIMER not in self.timer_due
        ):
            self._set_timer(RELAY_TIMER, self._now + self._relay_interval())

    def _relay_unproposed(self) -> None:
        """Relay to the primary the requests it has not proposed for a relay interval (PBFT
        section 4.1: a backup forwards a client request to the primary). The primary may have
        missed or shed the client's message while the backups hold it. Only when no block was
        executed during the interval: while blocks keep executing, nothing is stalled (the
        progress timer restarts with each one), and relaying a backlog the primary already holds
        would only load it further."""
        if self.changing or self.primary == self.node_id:
            return
        progressed = self.executed != self.executed_at_last_relay
        self.executed_at_last_relay = self.executed
        if progressed:
            self._shed_passed_over()
            self._arm_relay()
            return
        cutoff = self._now - self._relay_interval()
        inflight = self._inflight_ids()
        stale = [
            rid
            for rid, since in self.pending_since.items()
            if since <= cutoff and rid not in inflight
        ][:MAX_FORWARDED_REQUESTS]
        if stale:
            self.stats["relayed_requests"] += len(stale)
            self._send_to(self.primary, ForwardRequests(tuple(self.pending[r] for r in stale)))
            for rid in stale:  # relayed again only after another interval without a proposal
                self.pending_since[rid] = self._now
        self._arm_relay()

    def _shed_passed_over(self) -> None:
        """While blocks keep executing, a request the primary has left out for a whole
        view-change timeout is one it refused (its backlog was full: the client was told so) or
        will not propose. A backup that kept it would only shrink its own room for the requests
        the primary does take, and validate those cold; it lets it go, and the client sends it
        again (an unanswered client retransmits)."""
        cutoff = self._now - self.config.view_change_timeout_ms
        inflight = self._inflight_ids()
        passed = [
            rid
            for rid, since in self.pending_since.items()
            if since <= cutoff and rid not in inflight
        ]
        for rid in passed:
            self._drop_pending(rid)
        self.stats["shed_requests"] += len(passed)

    def _on_forward(self, body: ForwardRequests) -> None:
        for request in body.requests:
            try:
                self._add_request(request, forward=False)
            except RemoteError:
                self.counters["invalid_request"] += 1

    def _arm_progress(self) -> None:
        if self.pending and not self.changing and PROGRESS_TIMER not in self.timer_due:
            self._set_timer(PROGRESS_TIMER, self._now + self._timeout())

    def _inflight_ids(self) -> set[bytes]:
        return {
            rid
            for slot in self.slots.values()
            if slot.preprepare is not None and slot.seq > self.executed
            for rid in slot.request_ids
        }

    def _propose(self) -> bool:
        """The primary turns pending requests into blocks; whether it proposed any. The batch
        delay being over (`_batch_due`) lets it propose a block that is not full, once."""
        force, self._batch_due = self._batch_due, False
        before = self.next_seq
        self._propose_blocks(force)
        return self.next_seq != before

    def _propose_blocks(self, force: bool) -> None:
        """Propose while the window has room and requests are waiting; a partial batch waits
        for the batch timer unless `force`."""
        if self.changing or self.primary != self.node_id:
            return
        # Blocks in flight are capped below the watermark window: on a CPU-bound network a deep
        # pipeline only makes blocks smaller and speculation deeper, while requests held back
        # for a moment join the next block, which grows with the load.
        while (
            self.next_seq <= self.stable_seq + self.window
            and self.next_seq - self.executed <= self.config.max_inflight_blocks
        ):
            if self.validated_upto != self.next_seq - 1:
                return
            inflight = self._inflight_ids()
            batch = [r for rid, r in self.pending.items() if rid not in inflight]
            if not batch:
                self._cancel_timer(BATCH_TIMER)
                return
            limit = self.config.batch_max_txs
            full = len(batch) >= limit or (
                sum(len(r) for r in batch[:limit]) >= self.config.batch_max_bytes
            )
            if not full and not force:
                if BATCH_TIMER not in self.timer_due:
                    self._set_timer(BATCH_TIMER, self._now + self.config.batch_delay_ms)
                return
            batch = self._fit_bytes(batch[:limit])
            block = self.app.propose(self.next_seq, self.view, self.node_id, batch)
            ids = tuple(self.app.request_ids(block))
            included = set(ids)
            for request in batch:  # what the application refused will never be proposable
                rid = self.app.request_id(request)
                if rid not in included:
                    self._drop_pending(rid)
            if not ids:
                self.app.discard_speculation_above(self.next_seq - 1)
                continue
            pp = PrePrepare(self.view, self.next_seq, self.app.digest(block), block)
            signed = self._broadcast(pp)
            slot = self._slot(pp.seq)
            self._accept_preprepare(slot, signed, pp, ids)
            slot.validated = True
            self.validated_upto = pp.seq
            self.next_seq += 1
            force = force and len(batch) >= limit
        self._cancel_timer(BATCH_TIMER)

    def _fit_bytes(self, batch: list[bytes]) -> list[bytes]:
        """Cap a block's payload at batch_max_bytes: brokers drop oversized packets silently.
        A single request above the cap still goes alone (the application may refuse it)."""
        total = 0
        for count, request in enumerate(batch):
            total += len(request)
            if total > self.config.batch_max_bytes and count > 0:
                return batch[:count]
        return batch

    # ----------------------------------------------------------------- normal case (4.2)

    def _accept_preprepare(
        self, slot: Slot, signed: Signed, pp: PrePrepare, ids: tuple[bytes, ...]
    ) -> None:
        slot.preprepare = signed
        slot.digest = pp.digest
        slot.block = pp.block
        slot.request_ids = ids
        slot.validated = slot.rejected = slot.prepared = False
        slot.prepare_sent = slot.commit_sent = False
        self._persist(f"pp/{pp.seq:012d}", signed.encode())
        self.recorded_seqs.add(pp.seq)
        self._remember_proposal(pp.seq, pp.digest, pp.block)

    def _on_preprepare(self, signed: Signed, pp: PrePrepare) -> None:
        self._check_view(pp.view)
        if self.changing:
            raise Dropped("in_view_change")
        if signed.sender != self.primary:
            raise Dropped("not_primary")
        if not self._in_window(pp.seq):
            raise Dropped("out_of_window")
        slot = self.slots.get(pp.seq)
        if slot is not None and slot.preprepare is not None:
            raise Dropped("duplicate" if slot.digest == pp.digest else "equivocation")
        if self.app.digest(pp.block) != pp.digest:
            raise Dropped("digest_mismatch")
        ids = tuple(self.app.request_ids(pp.block))
        if pp.seq <= self.executed and self._committed_digest(pp.seq) != pp.digest:
            raise Dropped("conflicts_committed")
        slot = self._slot(pp.seq)
        self._accept_preprepare(slot, signed, pp, ids)
        slot.validated = pp.seq <= self.executed

    def _on_vote(self, signed: Signed, view: int, seq: int, digest: bytes, kind: str) -> None:
        self._check_view(view)
        if not self._in_window(seq):
            raise Dropped("out_of_window")
        if kind == "prepare":
            if signed.sender == self.primary_of(view):
                raise Dropped("primary_prepare")
            votes = self.prepare_votes.setdefault((view, seq), {})
        else:
            votes = self.commit_votes.setdefault(seq, {}).setdefault(view, {})
        earlier = votes.get(signed.sender)
        if earlier is not None:
            same = earlier.body.digest == digest  # type: ignore[union-attr]
            raise Dropped("duplicate_vote" if same else "conflicting_vote")
        votes[signed.sender] = signed

    def _on_prepare(self, signed: Signed, p: Prepare) -> None:
        self._on_vote(signed, p.view, p.seq, p.digest, "prepare")

    def _on_commit(self, signed: Signed, c: Commit) -> None:
        self._on_vote(signed, c.view, c.seq, c.digest, "commit")

    def _validate_in_order(self) -> bool:
        """Validate accepted blocks strictly by height (the application's speculative chain);
        whether more blocks are validated than before."""
        before = self.validated_upto
        seq = max(self.validated_upto, self.executed) + 1
        while True:
            slot = self.slots.get(seq)
            if slot is None or slot.preprepare is None or slot.rejected:
                break
            if not slot.validated:
                try:
                    digest = self.app.validate(seq, self.view, self.primary, slot.block)
                except MissingParent:
                    break
                except InvalidBlock:
                    self.counters["invalid_block"] += 1
                    slot.rejected = True
                    break
                if digest != slot.digest:
                    self.counters["digest_mismatch"] += 1
                    self.app.discard_speculation_above(seq - 1)
                    slot.rejected = True
                    break
                slot.validated = True
            self.validated_upto = seq
            seq += 1
        return self.validated_upto != before

    def _matching_prepares(self, slot: Slot) -> list[Signed]:
        votes = self.prepare_votes.get((self.view, slot.seq), {})
        return [v for v in votes.values() if v.body.digest == slot.digest]  # type: ignore[union-attr]

    def _vote(self) -> bool:
        """Advance every slot of the current view as far as its votes allow: send PREPARE,
        record a prepared certificate, send COMMIT (in order); whether anything moved."""
        changed = False
        is_primary = self.primary == self.node_id
        for seq in sorted(self.slots):
            slot = self.slots[seq]
            if slot.preprepare is None or slot.rejected:
                continue
            if slot.validated and not slot.prepare_sent and not is_primary:
                slot.prepare_sent = changed = True
                own = self._broadcast(Prepare(self.view, seq, slot.digest))
                self.prepare_votes.setdefault((self.view, seq), {})[self.node_id] = own
            if not slot.prepared:
                prepares = self._matching_prepares(slot)
                if len(prepares) + 1 >= self.q:
                    chosen = tuple(sorted(prepares, key=lambda s: s.sender)[: self.q - 1])
                    slot.prepared = changed = True
                    slot.proof = PreparedProof(slot.preprepare, chosen)
                    self._persist(f"proof/{seq:012d}", codec.encode_flat(slot.proof.to_wire()))
                    self.recorded_seqs.add(seq)
            if slot.prepared and slot.validated and not slot.commit_sent:
                before = self.slots.get(seq - 1)
                if seq - 1 <= self.executed or (before is not None and before.commit_sent):
                    slot.commit_sent = changed = True
                    own = self._broadcast(Commit(self.view, seq, slot.digest))
                    votes = self.commit_votes.setdefault(seq, {}).setdefault(self.view, {})
                    votes[self.node_id] = own
        return changed

    def _commit_certificate(self, seq: int) -> CommitCertificate | None:
        for view, votes in self.commit_votes.get(seq, {}).items():
            if len(votes) < self.q:
                continue
            by_digest: dict[bytes, list[Signed]] = {}
            for vote in votes.values():
                by_digest.setdefault(vote.body.digest, []).append(vote)  # type: ignore[union-attr]
            for digest, group in by_digest.items():
                if len(group) >= self.q:
                    sigs = tuple(sorted((v.sender, v.signature) for v in group)[: self.q])
                    return CommitCertificate(view, seq, digest, sigs)
        return None

    def _execute_ready(self) -> bool:
        """Execute, in order, every block with a commit certificate; whether any executed."""
        before = self.executed
        while True:
            seq = self.executed + 1
            cert = self._commit_certificate(seq)
            if cert is None:
                break
            slot = self.slots.get(seq)
            has_block = slot is not None and slot.block and slot.digest == cert.block_hash
            if not has_block:
                self._want_blocks_up_to(seq)
                break
            assert slot is not None
            # The ids of the block being executed, whichever path filled the slot (a proof
            # restored from disk carries the block but not its ids).
            ids = slot.request_ids or tuple(self.app.request_ids(slot.block))
            if slot.validated and slot.preprepare is not None:
                self.app.commit(seq, slot.block, cert)
            else:
                try:
                    self.app.install(slot.block, cert)
                except InvalidBlock:
                    self.counters["invalid_block"] += 1
                    break
                self._speculation_dropped()
            self._executed(seq, slot.block, cert, ids)
        return self.executed != before

    def _speculation_dropped(self) -> None:
        self.validated_upto = self.executed
        for slot in self.slots.values():
            if slot.seq > self.executed:
                slot.validated = False

    def _executed(
        self, seq: int, block: bytes, cert: CommitCertificate, ids: tuple[bytes, ...]
    ) -> None:
        self.executed = seq
        self.validated_upto = max(self.validated_upto, seq)
        self.next_seq = max(self.next_seq, seq + 1)
        self.committed_digests[seq] = cert.block_hash
        self._out.committed.append(CommittedBlock(seq, block, cert, ids))
        for rid in ids:
            self._drop_pending(rid)
            self._out.replies.append(Reply(rid, seq, cert.block_hash))
        if not self.changing:
            self.failed_views = 0
        self._cancel_timer(PROGRESS_TIMER)
        self._arm_progress()
        if seq % self.interval == 0:
            own = self._broadcast(Checkpoint(seq, cert.block_hash))
            self.checkpoint_votes.setdefault(seq, {})[self.node_id] = own
        # The votes may all be in already: settle the checkpoint as its block executes, since
        # the rest of the step may read the low watermark (a NEW-VIEW built right after state
        # transfer leaves out the slots at or below it).
        for stable in sorted(s for s in self.checkpoint_votes if self.stable_seq < s <= seq):
            self._check_stable(stable)

    # ----------------------------------------------------------------- checkpoints (4.3)

    def _on_checkpoint(self, signed: Signed, c: Checkpoint) -> None:
        if c.seq <= self.stable_seq:
            raise Dropped("stale_checkpoint")
        if c.seq % self.interval != 0 or c.seq > self.stable_seq + 64 * self.window:
            raise Dropped("out_of_window")
        votes = self.checkpoint_votes.setdefault(c.seq, {})
        if signed.sender in votes:
            raise Dropped("duplicate_vote")
        votes[signed.sender] = signed
        self._checkpoints_to_check.add(c.seq)

    def _settle_checkpoints(self) -> bool:
        """Check, lowest first, the checkpoints that received votes in this step (after what the
        step executed); whether the stable checkpoint moved."""
        if not self._checkpoints_to_check:
            return False
        before = self.stable_seq
        seqs, self._checkpoints_to_check = sorted(self._checkpoints_to_check), set()
        for seq in seqs:
            if seq > self.stable_seq:
                self._check_stable(seq)
        return self.stable_seq != before

    def _check_stable(self, seq: int) -> None:
        votes = self.checkpoint_votes.get(seq, {})
        by_digest: dict[bytes, list[Signed]] = {}
        for vote in votes.values():
            by_digest.setdefault(vote.body.digest, []).append(vote)  # type: ignore[union-attr]
        for digest, group in by_digest.items():
            if len(group) < self.q:
                continue
            if self.executed < seq:
                self._want_blocks_up_to(seq)
                return
            if self._committed_digest(seq) != digest:
                raise LocalError(f"a quorum checkpointed another block at {seq}: safety is lost")
            proof = tuple(sorted(group, key=lambda s: s.sender)[: self.q])
            self._make_stable(seq, digest, proof)
            return
        if len(votes) > self.f and seq > self.executed:
            self._want_blocks_up_to(seq)

    def _make_stable(self, seq: int, digest: bytes, proof: tuple[Signed, ...]) -> None:
        self.stable_seq, self.stable_digest, self.stable_proof = seq, digest, proof
        wire = (seq, digest, tuple(p.to_wire() for p in proof))
        self._persist(STABLE_RECORD, codec.encode_flat(wire))
        for old in [s for s in self.slots if s <= seq]:
            del self.slots[old]
        self.proposals = {k: v for k, v in self.proposals.items() if k > seq}
        self.wanted_proposals = {k: v for k, v in self.wanted_proposals.items() if k[0] > seq}
        for old in sorted(s for s in self.recorded_seqs if s <= seq):
            self._persist(f"pp/{old:012d}", None)
            self._persist(f"proof/{old:012d}", None)
            self.recorded_seqs.discard(old)
        self.prepare_votes = {k: v for k, v in self.prepare_votes.items() if k[1] > seq}
        self.commit_votes = {k: v for k, v in self.commit_votes.items() if k > seq}
        self.checkpoint_votes = {k: v for k, v in self.checkpoint_votes.items() if k > seq}
        keep_from = seq - self.window
        self.committed_digests = {k: v for k, v in self.committed_digests.items() if k > keep_from}

    # ----------------------------------------------------------------- view change (4.4)

    def _make_view_change(self, new_view: int) -> ViewChange:
        proofs = tuple(
            slot.proof.without_block()
            for seq, slot in sorted(self.slots.items())
            if slot.proof is not None and seq > self.stable_seq
        )
        return ViewChange(new_view, self.stable_seq, self.stable_digest, self.stable_proof, proofs)

    def _persist_view(self) -> None:
        self._persist("view", codec.encode_flat((self.view, self.changing, self.failed_views)))

    def _start_view_change(self, new_view: int) -> None:
        if new_view <= self.view and (self.changing or new_view < self.view):
            raise LocalError("views never go back")
        self.stats["view_changes"] += 1
        # Every view change without an executed block in between doubles the timeouts (capped):
        # if messages take longer than the timeout, views must slow down until they do not.
        self.failed_views += 1
        self.view = new_view
        self.changing = True
        waiting = self.waiting_new_view
        if waiting is None or waiting.body.view < new_view:  # type: ignore[union-attr]
            self._stop_fetching_proposals()
        self._persist_view()
        for name in (PROGRESS_TIMER, BATCH_TIMER, VIEW_CHANGE_TIMER):
            self._cancel_timer(name)
        for slot in self.slots.values():
            slot.preprepare = None
            slot.validated = slot.prepared = slot.rejected = False
        self.app.discard_speculation_above(self.executed)
        self.validated_upto = self.executed
        self.own_view_change = self._broadcast(self._make_view_change(new_view))
        self.view_changes.setdefault(new_view, {})[self.node_id] = self.own_view_change
        self._after_view_change_vote()

    def _on_view_change(self, signed: Signed, vc: ViewChange) -> None:
        if vc.new_view < self.view or (vc.new_view == self.view and not self.changing):
            self._push_new_view(signed.sender)
            raise Dropped("stale_view")
        if vc.new_view > self.view + MAX_VIEW_JUMP:
            raise Dropped("far_future_view")
        if signed.sender in self.view_changes.get(vc.new_view, {}):
            raise Dropped("duplicate_vote")
        self.proofs.check_view_change(vc)
        self.view_changes.setdefault(vc.new_view, {})[signed.sender] = signed
        self._join_view_change()
        self._after_view_change_vote()

    def _join_view_change(self) -> None:
        """Follow f + 1 replicas to a higher view: at least one of them is honest."""
        highest: dict[str, int] = {}
        for view, votes in self.view_changes.items():
            if view > self.view:
                for sender in votes:
                    highest[sender] = max(highest.get(sender, 0), view)
        if len(highest) > self.f:
            target = sorted(highest.values(), reverse=True)[self.f]
            self._start_view_change(target)

    def _after_view_change_vote(self) -> None:
        if not self.changing:
            return
        # A replica that already moved past this view still wants a change: count it, or a
        # lost VIEW-CHANGE could leave a quorum waiting for one another forever.
        supporters = {s for v, votes in self.view_changes.items() if v >= self.view for s in votes}
        if len(supporters) >= self.q and VIEW_CHANGE_TIMER not in self.timer_due:
            self._set_timer(VIEW_CHANGE_TIMER, self._now + self._timeout())
        if self.primary == self.node_id:
            self._try_new_view()

    def _try_new_view(self) -> None:
        votes = self.view_changes.get(self.view, {})
        if len(votes) < self.q or self.node_id not in votes:
            return
        others = [votes[s] for s in sorted(votes) if s != self.node_id]
        chosen = [votes[self.node_id], *others[: self.q - 1]]
        selection = select_prepared([c.body for c in chosen])  # type: ignore[misc]
        min_s, max_s = selection.min_s, selection.max_s
        if self.executed < min_s:
            self._want_blocks_up_to(min_s)
            return
        if self._want_missing_blocks(selection):
            return
        self.app.discard_speculation_above(self.executed)

        def build_null(seq: int, tip: bytes) -> tuple[bytes, bytes]:
            if seq <= self.executed:
                raise LocalError(f"view change would replace committed block {seq}")
            block = self.app.propose(seq, self.view, self.node_id, [])
            return block, self.app.digest(block)

        preprepares = []
        for planned in plan_new_view(selection, self._held_block, self.app.parent, build_null):
            seq, block = planned.seq, planned.block
            if seq <= self.executed:
                if self.app.digest(block) != self._committed_digest(seq):
                    raise LocalError(f"view change would replace committed block {seq}")
            elif planned.proof is not None:
                try:
                    self.app.validate(seq, self.view, self.node_id, block)
                except (InvalidBlock, MissingParent) as exc:
                    raise LocalError(f"prepared block {seq} does not validate: {exc}") from exc
            carried = b"" if planned.proof is not None else block  # re-issued by digest
            preprepares.append(self._sign(PrePrepare(self.view, seq, planned.digest, carried)))
        nv = NewView(self.view, tuple(chosen), tuple(preprepares))
        signed = self._broadcast(nv)
        self._enter_new_view(signed, nv, min_s, max_s, validated=True)
        best = max(chosen, key=lambda v: (v.body.stable_seq, v.body.stable_digest))  # type: ignore[union-attr]
        self._learn_checkpoint_proof(best.body.checkpoint_proof)  # type: ignore[union-attr]

    def _on_new_view(self, signed: Signed, nv: NewView) -> None:
        if nv.view < self.view or (nv.view == self.view and not self.changing):
            raise Dropped("stale_view")
        if signed.sender != self.primary_of(nv.view):
            raise Dropped("not_primary")
        vcs: list[ViewChange] = []
        senders = set()
        for vc_signed in nv.view_changes:
            vc = vc_signed.body
            if (
                not isinstance(vc, ViewChange)
                or vc.new_view != nv.view
                or vc_signed.sender in senders
                or not self.proofs.is_valid_signature(vc_signed)
            ):
                raise Dropped("bad_new_view")
            self.proofs.check_view_change(vc)
            senders.add(vc_signed.sender)
            vcs.append(vc)
        if len(senders) < self.q:
            raise Dropped("bad_new_view")
        selection = select_prepared(vcs)
        min_s, max_s = selection.min_s, selection.max_s
        if len(nv.preprepares) != max_s - min_s:
            raise Dropped("bad_new_view")
        if self._want_missing_blocks(selection):
            self.waiting_new_view = signed  # checked again once the blocks are in
            return

        def carried(seq: int) -> PrePrepare:
            """The NEW-VIEW's pre-prepare for `seq`, well formed and signed by its primary."""
            pp_signed = nv.preprepares[seq - min_s - 1]
            pp = pp_signed.body
            if (
                not isinstance(pp, PrePrepare)
                or pp_signed.sender != signed.sender
                or (pp.view, pp.seq) != (nv.view, seq)
                or not self.proofs.is_valid_signature(pp_signed)
            ):
                raise Dropped("bad_new_view")
            return pp

        def carried_null(seq: int, tip: bytes) -> tuple[bytes, bytes]:
            pp = carried(seq)
            if (
                self.app.digest(pp.block) != pp.digest
                or self.app.request_ids(pp.block)
                or self.app.parent(pp.block) != tip
            ):
                raise Dropped("bad_new_view")
            return pp.block, pp.digest

        for planned in plan_new_view(selection, self._held_block, self.app.parent, carried_null):
            if planned.proof is not None:
                reissued = carried(planned.seq)
                if reissued.digest != planned.digest or reissued.block:
                    raise Dropped("bad_new_view")
            if (
                planned.seq <= self.executed
                and self._committed_digest(planned.seq) != planned.digest
            ):
                raise Dropped("conflicts_committed")
        self._enter_new_view(signed, nv, min_s, max_s, validated=False)
        best = max(vcs, key=lambda v: (v.stable_seq, v.stable_digest))
        self._learn_checkpoint_proof(best.checkpoint_proof)

    def _enter_new_view(
        self, signed: Signed, nv: NewView, min_s: int, max_s: int, validated: bool
    ) -> None:
        self.view = nv.view
        self.changing = False
        self.new_view_message = signed
        self.own_view_change = None
        self._persist_view()
        self._persist("new_view", signed.encode())
        self._cancel_timer(VIEW_CHANGE_TIMER)
        self._stop_fetching_proposals()
        self.view_changes = {v: s for v, s in self.view_changes.items() if v > self.view}
        if not validated:
            self.app.discard_speculation_above(self.executed)
            self.validated_upto = self.executed
        for slot in self.slots.values():
            slot.preprepare = None
            slot.validated = slot.prepared = slot.rejected = False
            slot.prepare_sent = slot.commit_sent = False
        for pp_signed in nv.preprepares:
            pp = pp_signed.body
            assert isinstance(pp, PrePrepare)
            if pp.seq <= self.stable_seq:
                continue
            if not pp.block:  # a re-issued block: the planner made sure it is held
                pp = PrePrepare(pp.view, pp.seq, pp.digest, self._held_block(pp.seq, pp.digest))
                pp_signed = pp_signed.with_body(pp)
            slot = self._slot(pp.seq)
            self._accept_preprepare(slot, pp_signed, pp, tuple(self.app.request_ids(pp.block)))
            slot.validated = validated or pp.seq <= self.executed
        if validated:
            self.validated_upto = max(self.executed, max_s)
        self.next_seq = max(max_s, self.executed) + 1
        if self.executed < min_s:
            self._want_blocks_up_to(min_s)
        if self.primary != self.node_id and self.pending:
            requests = tuple(self.pending.values())[:MAX_FORWARDED_REQUESTS]
            self._send_to(self.primary, ForwardRequests(requests))
        for rid in self.pending_since:
            self.pending_since[rid] = self._now
        self._arm_progress()
        self._arm_relay()

    def _push_new_view(self, to: str) -> None:
        """Hand a replica stuck in an older view the NEW-VIEW that proves ours (rate-limited)."""
        if self.changing or self.new_view_message is None:
            return
        if self._now - self.last_push.get(to, -(10**12)) < self._status_interval():
            return
        self.last_push[to] = self._now
        self._out.send.append(Send(to, self.new_view_message.encode()))

    def _push_checkpoint_proof(self, to: str) -> None:
        """A replica that missed the CHECKPOINTs (crashed, or caught up by state transfer)
        would keep an old low watermark and reject everything new: resend the proof."""
        key = "checkpoint:" + to
        if self._now - self.last_push.get(key, -(10**12)) < self._status_interval():
            return
        self.last_push[key] = self._now
        for signed in self.stable_proof:
            self._out.send.append(Send(to, signed.encode()))

    def _learn_checkpoint_proof(self, proof: tuple[Signed, ...]) -> None:
        """Adopt the checkpoint votes inside an already verified VIEW-CHANGE."""
        for signed in proof:
            c = signed.body
            assert isinstance(c, Checkpoint)
            if c.seq > self.stable_seq:
                self.checkpoint_votes.setdefault(c.seq, {}).setdefault(signed.sender, signed)
        if proof:
            self._checkpoints_to_check.add(proof[0].body.seq)  # type: ignore[union-attr]

    # ----------------------------------------------------------------- proposals by digest

    def _remember_proposal(self, seq: int, digest: bytes, block: bytes) -> None:
        if seq <= self.stable_seq or not block:
            return
        held = self.proposals.setdefault(seq, {})
        held.pop(digest, None)
        held[digest] = block  # the newest last
        while len(held) > MAX_PROPOSALS_PER_SEQ:
            del held[next(iter(held))]

    def _block_for(self, seq: int, digest: bytes) -> bytes | None:
        """The block proposed at `seq` with `digest`, if this replica holds it."""
        if 0 < seq <= self.executed and self._committed_digest(seq) == digest:
            return self.app.committed_block(seq)[0]
        slot = self.slots.get(seq)
        if slot is not None:
            if slot.block and slot.digest == digest:
                return slot.block
            if slot.proof is not None:
                pp = slot.proof.preprepare.body
                assert isinstance(pp, PrePrepare)
                if pp.digest == digest and pp.block:
                    return pp.block
        return self.proposals.get(seq, {}).get(digest)

    def _held_block(self, seq: int, digest: bytes) -> bytes:
        block = self._block_for(seq, digest)
        if block is None:
            raise LocalError(f"the block at {seq} a new view re-issues is not held")
        return block

    def _want_missing_blocks(self, selection: Selection) -> bool:
        """Ask for the blocks the selected certificates name and this replica lacks, each from
        the replicas that signed its certificate (at least f + 1 honest ones accepted it);
        whether any is missing."""
        missing: dict[tuple[int, bytes], tuple[str, ...]] = {}
        for seq, proof in selection.best.items():
            pp = proof.preprepare.body
            assert isinstance(pp, PrePrepare)
            if self._block_for(seq, pp.digest) is None:
                signers = (proof.preprepare.sender, *(p.sender for p in proof.prepares))
                missing[(seq, pp.digest)] = tuple(s for s in signers if s != self.node_id)
        if not missing:
            return False
        fresh = any(key not in self.wanted_proposals for key in missing)
        self.wanted_proposals.update(missing)
        if fresh or PROPOSALS_TIMER not in self.timer_due:
            self._fetch_proposals()
        return True

    def _fetch_proposals(self) -> None:
        """Ask one holder of each wanted block, a different one on each attempt."""
        if not self.wanted_proposals:
            return
        asks: dict[str, list[tuple[int, bytes]]] = {}
        peers = tuple(p for p in self.nodes if p != self.node_id)
        for key, holders in sorted(self.wanted_proposals.items()):
            choices = holders or peers
            peer = choices[self.proposal_attempt % len(choices)]
            asks.setdefault(peer, []).append(key)
        for peer, keys in sorted(asks.items()):
            self._send_to(peer, FetchProposals(tuple(keys[:MAX_FETCH_BLOCKS])))
        self._set_timer(PROPOSALS_TIMER, self._now + max(self._status_interval() // 2, 1))

    def _stop_fetching_proposals(self) -> None:
        self.wanted_proposals = {}
        self.waiting_new_view = None
        self.proposal_attempt = 0
        self._cancel_timer(PROPOSALS_TIMER)

    def _on_fetch_proposals(self, signed: Signed, fp: FetchProposals) -> None:
        found = [(seq, self._block_for(seq, digest)) for seq, digest in fp.wanted]
        held = [(seq, block) for seq, block in found if block is not None]
        if not held:
            raise Dropped("nothing_to_fetch")
        # Blocks are large: answer each peer at most once per half status interval.
        key = "proposals:" + signed.sender
        if self._now - self.last_push.get(key, -(10**12)) < self._status_interval() // 2:
            raise Dropped("fetch_too_often")
        self.last_push[key] = self._now
        for seq, block in held:
            self._send_to(signed.sender, Proposal(seq, block))

    def _on_proposal(self, p: Proposal) -> None:
        key = (p.seq, self.app.digest(p.block))
        if key not in self.wanted_proposals:
            raise Dropped("unwanted_proposal")
        del self.wanted_proposals[key]
        self._remember_proposal(p.seq, key[1], p.block)
        self.stats["proposals_fetched"] += 1
        if self.wanted_proposals:
            return
        self._cancel_timer(PROPOSALS_TIMER)
        self.proposal_attempt = 0
        waiting, self.waiting_new_view = self.waiting_new_view, None
        if waiting is not None:
            self._on_new_view(waiting, waiting.body)  # type: ignore[arg-type]
        elif self.changing and self.primary == self.node_id:
            self._try_new_view()

    # ----------------------------------------------------------------- status and state transfer

    def _heartbeat(self) -> None:
        self._set_timer(STATUS_TIMER, self._now + self._status_interval())
        self._broadcast(Status(self.view, self.changing, self.executed, self.stable_seq))
        if self.changing and self.own_view_change is not None:
            self._out.send.append(Send(None, self.own_view_change.encode()))
        elif self.executed == self.executed_at_last_heartbeat:
            self._retransmit_lowest()
        self.executed_at_last_heartbeat = self.executed

    def _retransmit_lowest(self) -> None:
        """No block executed for a whole heartbeat: resend our votes for the oldest unexecuted
        one, since a dropped vote must not stall it until a view change."""
        slot = self.slots.get(self.executed + 1)
        if slot is None or slot.preprepare is None:
            return
        if self.primary == self.node_id:
            self._out.send.append(Send(None, slot.preprepare.encode()))
        prepares = self.prepare_votes.get((self.view, slot.seq), {})
        commits = self.commit_votes.get(slot.seq, {}).get(self.view, {})
        for votes in (prepares, commits):
            own = votes.get(self.node_id)
            if own is not None:
                self._out.send.append(Send(None, own.encode()))

    def _on_status(self, signed: Signed, st: Status) -> None:
        if st.view < self.view:
            self._push_new_view(signed.sender)
        if st.stable_seq < self.stable_seq and self.stable_proof:
            self._push_checkpoint_proof(signed.sender)
        self.peer_executed[signed.sender] = st.executed
        heights = sorted(self.peer_executed.values(), reverse=True)
        if len(heights) > self.f and heights[self.f] > self.executed:
            self._want_blocks_up_to(heights[self.f])

    def _want_blocks_up_to(self, height: int) -> None:
        if height > self.fetch_target:
            self.fetch_target = height
        if FETCH_TIMER not in self.timer_due:
            self._start_fetch()

    def _start_fetch(self) -> None:
        if self.fetch_target <= self.executed:
            return
        peers = [p for p in self.nodes if p != self.node_id]
        ahead = [p for p in peers if self.peer_executed.get(p, 0) > self.executed] or peers
        peer = ahead[self.fetch_attempt % len(ahead)]
        self._send_to(peer, FetchBlocks(self.executed + 1))
        self._set_timer(FETCH_TIMER, self._now + max(self._status_interval() // 2, 1))

    def _on_fetch(self, signed: Signed, fb: FetchBlocks) -> None:
        top = self.app.committed_height()
        if fb.from_height < 1 or fb.from_height > top:
            raise Dropped("nothing_to_fetch")
        # Blocks are large: answer each peer at most once per status interval.
        key = "fetch:" + signed.sender
        if self._now - self.last_push.get(key, -(10**12)) < self._status_interval() // 2:
            raise Dropped("fetch_too_often")
        self.last_push[key] = self._now
        last = min(top, fb.from_height + MAX_FETCH_BLOCKS - 1)
        blocks = tuple(self.app.committed_block(h) for h in range(fb.from_height, last + 1))
        self._send_to(signed.sender, CommittedBlocks(blocks))

    def _is_valid_certificate(self, cert: CommitCertificate) -> bool:
        statement = commit_statement(self.chain_id, cert.view, cert.height, cert.block_hash)
        signers = set()
        for node_id, signature in cert.signatures:
            key = self.keys.get(node_id)
            if key is None or node_id in signers:
                return False
            if not self.cache.verify(key, statement, signature):
                return False
            signers.add(node_id)
        return len(signers) >= self.q

    def _on_committed_blocks(self, cb: CommittedBlocks) -> None:
        installed = 0
        for block, cert in cb.blocks:
            seq = self.executed + 1
            if cert.height < seq:
                continue
            if cert.height > seq:
                break
            if self.app.digest(block) != cert.block_hash or not self._is_valid_certificate(cert):
                self.counters["bad_certificate"] += 1
                break
            try:
                self.app.install(block, cert)
            except InvalidBlock:
                self.counters["invalid_block"] += 1
                break
            installed += 1
            self._speculation_dropped()
            self._executed(seq, block, cert, tuple(self.app.request_ids(block)))
        if not installed:
            raise Dropped("useless_blocks")
        for seq in [s for s in self.slots if s <= self.executed]:
            slot = self.slots[seq]
            if slot.preprepare is not None and slot.digest == self._committed_digest(seq):
                slot.validated = True
        self.fetch_attempt = 0
        self._cancel_timer(FETCH_TIMER)
        if self.fetch_target > self.executed:
            self._start_fetch()
        if self.changing and self.primary == self.node_id:
            self._try_new_view()

    # ----------------------------------------------------------------- restart

    def _restore(self, records: Mapping[str, bytes]) -> None:
        """Rebuild from what earlier steps persisted (the node's own disk, trusted)."""
        if "view" in records:
            view, changing, failed = codec.decode(records["view"])
            self.view, self.changing, self.failed_views = view, changing, failed
        if STABLE_RECORD in records:
            seq, digest, proof = codec.decode(records[STABLE_RECORD])
            self.stable_seq, self.stable_digest = seq, digest
            self.stable_proof = tuple(Signed.from_wire(p) for p in proof)
        if "new_view" in records:
            nv = Signed.decode(records["new_view"])
            if nv.body.view == self.view:  # type: ignore[union-attr]
                self.new_view_message = nv
        for key, value in sorted(records.items()):
            if key.startswith(("pp/", "proof/")):
                self.recorded_seqs.add(int(key.split("/")[1]))
            if key.startswith("pp/"):
                signed = Signed.decode(value)
                pp = signed.body
                assert isinstance(pp, PrePrepare)
                self._remember_proposal(pp.seq, pp.digest, pp.block)
                if pp.view == self.view and not self.changing and pp.seq > self.stable_seq:
                    slot = self._slot(pp.seq)
                    slot.preprepare, slot.digest, slot.block = signed, pp.digest, pp.block
                    slot.request_ids = tuple(self.app.request_ids(pp.block))
                    slot.validated = pp.seq <= self.executed
                    self.next_seq = max(self.next_seq, pp.seq + 1)
            elif key.startswith("proof/"):
                proof = PreparedProof.from_wire(codec.decode(value))
                pp = proof.preprepare.body
                assert isinstance(pp, PrePrepare)
                self._remember_proposal(pp.seq, pp.digest, pp.block)
                if pp.seq > self.stable_seq:
                    slot = self._slot(pp.seq)
                    slot.proof = proof
                    if slot.block == b"":
                        slot.digest, slot.block = pp.digest, pp.block
                        slot.request_ids = tuple(self.app.request_ids(pp.block))
                    slot.prepared = (
                        slot.preprepare is not None
                        and pp.view == self.view
                        and pp.digest == slot.digest
                    )
        self.app.discard_speculation_above(self.executed)
        self.validated_upto = self.executed

    def snapshot(self) -> dict[str, object]:
        """A small summary for status displays and tests."""
        return {
            "view": self.view,
            "changing": self.changing,
            "executed": self.executed,
            "stable_seq": self.stable_seq,
            "pending": len(self.pending),
            "primary": self.primary,
        }
