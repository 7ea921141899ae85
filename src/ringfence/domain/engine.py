"""The rollout engine: ``reconcile(spec, status, observations, now) -> Decision``.

A pure function in the style of a Kubernetes controller: it reads the spec
(release + plan), the last status and aggregated observations, and returns a
new status, the intents the caller must carry out, and the reasons in words.
The server's reconciler loop and the simulator call the same function; the
caller commits status and intents in one transaction, so a crash at any point
resumes from the last committed status and never double-promotes.

Transition rules of :func:`reconcile`, applied in this order:

1. ``pending``, ``paused``, ``hold``, ``halted``, ``rolled_back``, ``completed``
   and ``aborted`` expose nothing: only a command moves them (a halted rollout
   stays halted until someone resumes or rolls it back) — except that a
   ``paused`` or ``hold`` rollout whose gate fails is halted (and rolled back)
   like an active one: pausing stops exposure, not vigilance.
2. ``rolling_back`` emits a ROLLBACK intent every tick until no reporting
   exposed host is still on the release and every exposed host has either
   reported since its update or been silent past the grace (when the port
   counts that), then becomes ``rolled_back``; the
   message says what is true (desired state reverted, how many confirmed they
   are back, how many are silent and need a recovery campaign), and silent
   hosts left behind are told with a NOTIFY.
3. The health gate runs on every tick: gate v2 (:mod:`ringfence.domain.logrank`)
   when the port counts risk sets (``Observations.risk_as_of``), its evidence
   folded into ``RolloutStatus.gate_ledger``; else the first gate over the
   streams.  With ``gate.mode: shadow`` nothing below is enforced: a FAILED
   gate is logged as "would have halted", promotion ignores the gate and no
   HOLD happens.  FAILED
   halts at once (from any active state, even with late data: stopping is
   always safe): the wave becomes ``halted``, the rollout ``halted`` — or
   ``rolling_back`` with a ROLLBACK intent when the plan has
   ``auto_rollback`` — and a NOTIFY intent carries the evidence.
4. Health data older than the plan's ``max_data_age`` (or none) freezes the
   rollout where it is: no new exposure and no promotion (fail closed).
5. While the current wave still has unexposed hosts in reach that it waits for (every one, in the
   last wave; before it, not the *stragglers*, ``WaveObservation.missed_window``: hosts that had one
   whole change window of their own since the wave opened and are still offline or outside their
   window, so a laptop asleep all day never holds a wave back; they are exposed when they next
   report in a window, by whichever wave is current then), or eligible ones:
   a wave that needs approval and has none → ``waiting_approval``;
   no host eligible now (change window closed, holiday, freeze, budget) →
   ``waiting_window``; otherwise ``progressing`` with an EXPOSE intent for at
   most ``max_rate_per_minute`` × minutes since the rate anchor (the first
   host may go at once), never more than are eligible.  The anchor restarts
   whenever exposure was stopped (window, approval, late data, or more than
   ``MAX_TICK_GAP`` between ticks), so a stop never turns into a burst.  With
   ``max_in_flight`` (and the port counting ``in_flight``) at most
   ``max_in_flight + 1 - in_flight`` hosts go in one tick; with the wave's ``in_flight_slow_start``
   (the default plan's canary) at most ``max_in_flight + proven + 1 - in_flight``, ``proven`` being the
   exposed hosts already reported healthy for the crash window (0 when the port does not count them): a release that
   crashes every host proves none, so at most ``max_in_flight + 1`` crash; a healthy one doubles its
   room each crash window (a fixed cap of 5 with a 15 min window exposes at most 24 hosts an hour,
   which cannot finish a canary wave of thousands of hosts).
6. Once every host in reach is exposed the wave ``baking``: it is promoted
   only when it has baked ``min_bake``, at least ``min_observed_hosts``
   updated hosts (or all of a smaller wave) are observed, and the gate says
   SUCCESSFUL (a wave with fewer hosts in reach than the gate's
   ``min_treated_hosts`` needs all of them, and the gate's bounds still apply),
   and every stratum the port lists has ``min_per_stratum`` updated hosts
   reporting past the bake.  INCONCLUSIVE and ERROR never promote.  Past the
   wave's ``max_bake`` (or an ``extend``) a wave that cannot promote goes to
   ``hold`` with a NOTIFY and the reason in words, and waits for a person.
   After the last wave the rollout is ``completed``.

Commands (:func:`command`) are pure too: ``start`` (pending → progressing),
``pause`` (any active state → paused, remembering it), ``resume`` (paused →
what it was; halted → progressing), ``approve`` (four-eyes: not by whoever
started the rollout; on hold it promotes the wave), ``extend`` (hold →
baking for another ``max_bake``), ``halt``, ``rollback`` and ``abort``.  Commands that do
not apply to the current state raise :class:`~ringfence.errors.ConflictError`.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timedelta

from ringfence.domain.gate import GateResult, Verdict, evaluate
from ringfence.domain.logrank import accumulate, decide, next_wave
from ringfence.domain.rollout import (
    TERMINAL,
    Decision,
    Intent,
    IntentKind,
    Observations,
    Reason,
    RolloutSpec,
    RolloutState,
    RolloutStatus,
    WaveObservation,
    WaveState,
    WaveStatus,
)
from ringfence.errors import ConflictError, InputError, PermissionDeniedError, shown

__all__ = ["COMMANDS", "command", "initial_status", "reconcile"]

COMMANDS = ("start", "pause", "resume", "approve", "extend", "halt", "rollback", "abort")
#: A longer gap between two ticks (the reconciler was down) restarts the rate limit instead of bursting.
MAX_TICK_GAP = timedelta(minutes=2)
_ACTIVE = frozenset({RolloutState.PROGRESSING, RolloutState.WAITING_WINDOW, RolloutState.WAITING_APPROVAL,
                     RolloutState.BAKING})


def initial_status(spec: RolloutSpec) -> RolloutStatus:
    """A new rollout: pending, every wave pending."""
    return RolloutStatus(waves=tuple(WaveStatus() for _ in spec.plan.waves))


def _set_wave(status: RolloutStatus, index: int, wave: WaveStatus) -> tuple[WaveStatus, ...]:
    waves = list(status.waves)
    waves[index] = wave
    return tuple(waves)


def _fmt(n: float) -> str:
    return f"{n:,.0f}" if float(n).is_integer() else f"{n:,.2f}"


def _halt(spec: RolloutSpec, status: RolloutStatus, gate: GateResult, now: datetime, *, v2: bool = False) -> Decision:
    wave = status.wave
    name = spec.plan.waves[wave].name
    message = (f"halted wave {wave} ({name}): {gate.reason} (at {now:%Y-%m-%d %H:%M} UTC)" if v2 else
               f"halted wave {wave} ({name}) at {now:%Y-%m-%d %H:%M} UTC: {gate.reason}")
    rollback = spec.plan.auto_rollback
    new = replace(status, state=RolloutState.ROLLING_BACK if rollback else RolloutState.HALTED,
                  waves=_set_wave(status, wave, replace(status.waves[wave], state=WaveState.HALTED)),
                  halted_at=status.halted_at or now, halt_reason=message, last_tick_at=now, message=message)
    intents = [Intent(IntentKind.NOTIFY, wave=wave, message=message)]
    if rollback:
        intents.append(Intent(IntentKind.ROLLBACK, wave=wave, message="automatic rollback after a failed gate"))
    reasons = [Reason("gate_failed", message)]
    if rollback:
        reasons.append(Reason("auto_rollback", "rolling back: the desired state of every exposed host goes back to "
                                               "its last known good version"))
    return Decision(new, tuple(intents), tuple(reasons), gate)


def _rate_allowance(spec: RolloutSpec, status: RolloutStatus, wo: WaveObservation, now: datetime) -> tuple[int, str]:
    rate = spec.plan.waves[status.wave].max_rate_per_minute
    if rate is None:
        return wo.in_reach - wo.exposed, ""
    anchor = status.rate_anchor_at or now
    minutes = max(0.0, (now - anchor).total_seconds() / 60.0)
    allowed_total = math.floor(rate * minutes) + 1
    return max(0, allowed_total - (wo.exposed - status.rate_anchor_exposed)), f"rate limit {_fmt(rate)} hosts/min"


def _judge(spec: RolloutSpec, status: RolloutStatus, obs: Observations) -> tuple[GateResult, RolloutStatus, bool]:
    """The gate's verdict and the status carrying its evidence; the flag says gate v2 judged.

    The strata of the current wave that have updated hosts are expected to have data for every required signal.
    """
    plan = spec.plan
    expected = [s.stratum for s in obs.strata if s.observed > 0]
    if obs.risk_as_of is None:  # a port that still counts the first gate's streams
        # A wave smaller than the gate's minimum (say two hosts left after tenant policies) needs all of them,
        # not more than exist; the gate's bounds on harm still have to hold before it may promote.
        config = plan.gate
        reach = obs.waves[status.wave].in_reach if status.wave < len(obs.waves) else 0
        if 0 < reach < plan.gate.min_treated_hosts:
            config = replace(plan.gate, min_treated_hosts=reach)
        return evaluate(obs.streams, config, expected_strata=expected), status, False
    ledger, problems = accumulate(status.gate_ledger, obs.risk, plan.gate)
    gate = decide(ledger, plan.gate, problems, expected_strata=expected)
    return gate, replace(status, gate_ledger=ledger, gate_as_of=obs.risk_as_of), True


def _promote(spec: RolloutSpec, status: RolloutStatus, now: datetime, why: str,
             reasons: tuple[Reason, ...] = (), observed: int = 0) -> Decision:
    """Wave ``status.wave`` passed: open the next wave, or complete the rollout after the last."""
    plan = spec.plan
    k = status.wave
    wave_spec = plan.waves[k]
    wave = status.waves[k]
    passed = replace(wave, state=WaveState.PASSED, passed_at=now, opened_at=wave.opened_at or now,
                     bake_started_at=wave.bake_started_at or now)
    waves = _set_wave(status, k, passed)
    if k + 1 >= len(plan.waves):
        msg = f"completed: last wave {k} ({wave_spec.name}) passed ({why})"
        new = replace(status, state=RolloutState.COMPLETED, waves=waves, finished_at=now, last_tick_at=now, message=msg,
                      bake_deadline_at=None)
        return Decision(new, (), (*reasons, Reason("completed", msg)))
    next_spec = plan.waves[k + 1]
    waves = _set_wave(replace(status, waves=waves), k + 1, replace(status.waves[k + 1], state=WaveState.EXPOSING,
                                                                    opened_at=now))
    msg = f"promoted: wave {k} ({wave_spec.name}) passed ({why}); opening wave {k + 1} ({next_spec.name})"
    new = replace(status, state=RolloutState.PROGRESSING, wave=k + 1, waves=waves, last_tick_at=now,
                  rate_anchor_at=None, message=msg, gate_ledger=next_wave(status.gate_ledger), bake_deadline_at=None)
    return Decision(new, (), (*reasons, Reason("promoted", msg, (("wave", k), ("observed", observed)))))


def _rollback_facts(spec: RolloutSpec, obs: Observations) -> tuple[str, tuple[tuple[str, float | int | str], ...]]:
    """What is true during and after a rollback: desired state reverted; who confirmed; who is silent."""
    confirmed, silent = obs.rolled_back_confirmed, obs.rolled_back_silent
    numbers: tuple[tuple[str, float | int | str], ...] = (("pending", obs.rolled_back_pending),)
    if confirmed is None or silent is None:  # a port that does not count them: claim only what is known
        return "", numbers
    unheard = obs.rolled_back_unheard or 0
    numbers = (*numbers, ("confirmed", confirmed), ("silent", silent), ("unheard", unheard))
    grace = spec.plan.silence_grace.total_seconds() / 60
    facts = f"; {_fmt(confirmed)} confirmed back on another version"
    if unheard:
        facts += (f"; {_fmt(unheard)} not heard from since the update yet (they count as silent after "
                  f"{grace:.0f} min without a heartbeat)")
    if silent:
        facts += (f"; {_fmt(silent)} silent (no heartbeat for {grace:.0f} min) and need recovery: a host in a boot "
                  f"loop cannot fetch the old version by itself. Open a recovery campaign: "
                  f"/recovery/new?rollout={spec.id} or `ringfence recovery create --from-rollout {spec.id}`")
    return facts, numbers


def _rolling_back(spec: RolloutSpec, status: RolloutStatus, obs: Observations, now: datetime) -> Decision:
    """Rule 2: resend the rollback until no reporting host is on the release; then say what is true."""
    facts, numbers = _rollback_facts(spec, obs)
    if obs.rolled_back_pending == 0 and not obs.rolled_back_unheard:  # every exposed host accounted for
        msg = ("rolled back: the desired state of every exposed host is its last known good version again; "
               "no reporting host is still on the release" + facts)
        done = replace(status, state=RolloutState.ROLLED_BACK, finished_at=now, last_tick_at=now, message=msg)
        # Silent hosts stay broken after the rollback is "done": that is worth telling people.
        intents = (Intent(IntentKind.NOTIFY, wave=status.wave, message=msg),) if obs.rolled_back_silent else ()
        return Decision(done, intents, (Reason("rolled_back", msg, numbers),))
    msg = (f"rolling back: the desired state of every exposed host is its last known good version again; "
           f"{_fmt(obs.rolled_back_pending)} reporting hosts are still on the release (they move at their next "
           f"poll)" + facts)
    if not obs.rolled_back_pending:
        msg = "rolling back: the desired state of every exposed host is its last known good version again" + facts
    return Decision(replace(status, last_tick_at=now, message=msg),
                    (Intent(IntentKind.ROLLBACK, wave=status.wave, message=msg),),
                    (Reason("rolling_back", msg, numbers),))


def reconcile(spec: RolloutSpec, status: RolloutStatus, obs: Observations, now: datetime) -> Decision:
    """Decide the next step of one rollout (see the module docstring for the rules)."""
    plan = spec.plan
    shadow = plan.gate.mode == "shadow"
    watching = (RolloutState.PAUSED, RolloutState.HOLD)
    if status.state in watching and len(obs.waves) == len(plan.waves) and (obs.streams or obs.risk_as_of):
        # Pausing stops exposure, not vigilance: a gate that fails while paused (or on hold) still halts.
        watch, status, v2 = _judge(spec, status, obs)
        if watch.verdict is Verdict.FAILED and not shadow:
            return _halt(spec, status, watch, now, v2=v2)
    if status.state in TERMINAL or status.state in (RolloutState.PENDING, RolloutState.HALTED, *watching):
        what = status.message if status.state is RolloutState.HOLD else f"{status.state.value}: waiting for a command"
        return Decision(replace(status, last_tick_at=now), reasons=(Reason("idle", what),))
    if status.state is RolloutState.ROLLING_BACK:
        return _rolling_back(spec, status, obs, now)
    if len(obs.waves) != len(plan.waves):
        raise InputError.single("observations.waves", f"has {len(obs.waves)} entries for {len(plan.waves)} waves",
                                expected="one observation per wave of the plan")

    k = status.wave
    gate, status, v2 = _judge(spec, status, obs)
    reasons: list[Reason] = []
    if gate.verdict is Verdict.FAILED:
        if not shadow:
            return _halt(spec, status, gate, now, v2=v2)
        reasons.append(Reason("shadow_halt", f"shadow mode: the gate would have halted wave {k}: {gate.reason}; "
                                             "nothing enforced"))

    wave_spec = plan.waves[k]
    wo = obs.waves[k]
    wave = status.waves[k]
    if obs.health_as_of is None or now - obs.health_as_of > plan.max_data_age:
        age = "no health data" if obs.health_as_of is None else \
            f"health data is {(now - obs.health_as_of).total_seconds() / 60:.0f} min old"
        msg = f"holding wave {k} ({wave_spec.name}): {age} (limit {plan.max_data_age.total_seconds() / 60:.0f} min); " \
              "no exposure or promotion until it is fresh"
        # The rate anchor restarts after the hold, so the hold does not turn into a burst.
        return Decision(replace(status, last_tick_at=now, message=msg, rate_anchor_at=None),
                        reasons=(Reason("data_late", msg),), gate=gate)

    remaining = wo.in_reach - wo.exposed
    # Stragglers do not hold a wave back, except the last one: completing means every host in reach has it.
    stragglers = wo.missed_window if k + 1 < len(plan.waves) else 0
    if wo.held:
        reasons.append(Reason("held_by_policy", f"{_fmt(wo.held)} hosts of wave {k} held back by tenant policy "
                                                "(paused, pinned or delayed)", (("held", wo.held),)))
    if remaining > stragglers or (remaining > 0 and wo.eligible_now > 0):
        if wave_spec.needs_approval and not wave.approved_by:
            msg = f"wave {k} ({wave_spec.name}) needs approval before {_fmt(remaining)} more hosts are exposed"
            first = status.state is not RolloutState.WAITING_APPROVAL
            new = replace(status, state=RolloutState.WAITING_APPROVAL, last_tick_at=now, message=msg)
            intents = (Intent(IntentKind.NOTIFY, wave=k, message=msg),) if first else ()
            return Decision(new, intents, (*reasons, Reason("waiting_approval", msg)), gate)
        if wo.eligible_now <= 0:
            why = wo.window_reason or "no host in reach is eligible now"
            if wo.budget_blocked:
                why += f"; {_fmt(wo.budget_blocked)} hosts blocked by disruption budgets"
            nxt = f"; next window opens {wo.next_window:%Y-%m-%d %H:%M} UTC" if wo.next_window else ""
            msg = f"wave {k} ({wave_spec.name}) waiting: {why}{nxt}"
            new = replace(status, state=RolloutState.WAITING_WINDOW, last_tick_at=now, message=msg)
            return Decision(new, (), (*reasons, Reason("waiting_window", msg, (("remaining", remaining),))), gate)
        gap = now - status.last_tick_at if status.last_tick_at else None
        if (status.state is not RolloutState.PROGRESSING or status.rate_anchor_at is None
                or (gap is not None and gap > MAX_TICK_GAP)):
            # Restart the rate budget after any stop (window, approval, hold, a reconciler outage):
            # the time the rollout was not exposing never accrues as allowance.
            status = replace(status, rate_anchor_at=now, rate_anchor_exposed=wo.exposed)
        allowance, rate_note = _rate_allowance(spec, status, wo, now)
        cap = wave_spec.max_in_flight
        if cap is not None and obs.in_flight is not None:
            # A host goes only while at most `cap` exposed hosts (plus those already proven healthy) have not yet
            # reported healthy for the crash window, so a release that crashes every host crashes at most cap + 1
            # and a healthy one opens up like a slow start (rule 5).
            proven = (obs.proven or 0) if wave_spec.in_flight_slow_start else 0
            room = max(0, cap + proven + 1 - obs.in_flight)
            if room < allowance:
                allowance = room
                grown = f" + {_fmt(proven)} proven healthy" if proven else ""
                rate_note = (f"in-flight cap: {_fmt(obs.in_flight)} exposed hosts not yet healthy for the crash window, "
                             f"at most {cap}{grown} + 1")
        hosts = min(remaining, wo.eligible_now, allowance)
        wave_state = replace(wave, state=WaveState.EXPOSING, opened_at=wave.opened_at or now)
        if hosts <= 0:
            msg = f"wave {k} ({wave_spec.name}): {_fmt(wo.exposed)} of {_fmt(wo.in_reach)} exposed; waiting for the {rate_note}"
            new = replace(status, state=RolloutState.PROGRESSING, waves=_set_wave(status, k, wave_state),
                          last_tick_at=now, message=msg)
            return Decision(new, (), (*reasons, Reason("rate_limited", msg)), gate)
        msg = (f"wave {k} ({wave_spec.name}): exposing {_fmt(hosts)} more hosts "
               f"({_fmt(wo.exposed)} of {_fmt(wo.in_reach)} exposed, {_fmt(wo.eligible_now)} eligible now"
               + (f", {rate_note}" if rate_note else "") + ")")
        new = replace(status, state=RolloutState.PROGRESSING, waves=_set_wave(status, k, wave_state),
                      last_tick_at=now, message=msg)
        numbers: tuple[tuple[str, float | int | str], ...] = (
            ("exposed", wo.exposed), ("in_reach", wo.in_reach), ("eligible_now", wo.eligible_now), ("expose", hosts))
        return Decision(new, (Intent(IntentKind.EXPOSE, wave=k, hosts=hosts, message=msg),),
                        (*reasons, Reason("exposing", msg, numbers)), gate)

    # Every host in reach is exposed (or a straggler): bake, then promote on a successful gate.
    if remaining > 0:
        reasons.append(Reason("stragglers", f"{_fmt(remaining)} hosts of wave {k} were offline or outside their "
                                            "window through a whole change window of their own; they do not hold "
                                            "the wave back and are exposed when they next report in a window",
                              (("stragglers", remaining),)))
    bake_started = wave.bake_started_at or now
    wave_state = replace(wave, state=WaveState.BAKING, opened_at=wave.opened_at or now, bake_started_at=bake_started)
    baked = now - bake_started
    need_observed = min(wave_spec.min_observed_hosts, wo.in_reach)
    blockers: list[str] = []
    if baked < wave_spec.min_bake:
        blockers.append(f"baked {baked.total_seconds() / 60:.0f} of {wave_spec.min_bake.total_seconds() / 60:.0f} min")
    if wo.observed < need_observed:
        blockers.append(f"{_fmt(wo.observed)} of {_fmt(need_observed)} required updated hosts observed")
    short = [s for s in obs.strata if s.observed < min(plan.min_per_stratum, s.in_reach)]
    if short:
        lacking = short[0]
        more = f" (and {len(short) - 1:,} more strata)" if len(short) > 1 else ""
        blockers.append(f"stratum {lacking.stratum}: {_fmt(lacking.observed)} of "
                        f"{_fmt(min(plan.min_per_stratum, lacking.in_reach))} required updated hosts reporting past "
                        f"the bake{more}")
    if wo.in_reach > 0 and gate.verdict is not Verdict.SUCCESSFUL:
        if shadow:
            reasons.append(Reason("shadow_gate", f"shadow mode: the gate would not yet promote wave {k}: "
                                                 f"gate {gate.verdict.value}: {gate.reason}"))
        else:
            blockers.append(f"gate {gate.verdict.value}: {gate.reason}")
    deadline = status.bake_deadline_at or (bake_started + wave_spec.max_bake if wave_spec.max_bake else None)
    if blockers and deadline is not None and now >= deadline and baked >= wave_spec.min_bake:
        if shadow:
            reasons.append(Reason("shadow_hold", f"shadow mode: wave {k} would be on hold: " + "; ".join(blockers)))
            blockers = [b for b in blockers if not b.startswith("gate ")]
        else:
            limit = (deadline - bake_started).total_seconds() / 60
            msg = (f"hold: wave {k} ({wave_spec.name}) is still not conclusive after {baked.total_seconds() / 60:.0f} "
                   f"min (limit {limit:.0f} min): " + "; ".join(blockers) +
                   ". It will not promote by itself: approve (promote), extend (bake longer) or halt")
            new = replace(status, state=RolloutState.HOLD, waves=_set_wave(status, k, wave_state), last_tick_at=now,
                          message=msg)
            intents = (Intent(IntentKind.NOTIFY, wave=k, message=msg),)
            return Decision(new, intents, (*reasons, Reason("hold", msg)), gate)
    if blockers:
        msg = f"baking wave {k} ({wave_spec.name}): " + "; ".join(blockers)
        new = replace(status, state=RolloutState.BAKING, waves=_set_wave(status, k, wave_state), last_tick_at=now,
                      message=msg)
        numbers = (("baked_min", round(baked.total_seconds() / 60, 1)), ("observed", wo.observed),
                   ("required", need_observed))
        return Decision(new, (), (*reasons, Reason("baking", msg, numbers)), gate)

    why = "it has no hosts in reach" if wo.in_reach == 0 else f"gate {gate.verdict.value}: {gate.reason}"
    if shadow and gate.verdict is not Verdict.SUCCESSFUL and wo.in_reach > 0:
        why = f"shadow mode, gate not enforced: {gate.verdict.value}"
    elif shadow:
        reasons.append(Reason("shadow_promote", f"shadow mode: the gate would have promoted wave {k}: {gate.reason}"))
    promoted = _promote(spec, replace(status, waves=_set_wave(status, k, wave_state)), now, why, tuple(reasons),
                        wo.observed)
    return replace(promoted, gate=gate)


def command(spec: RolloutSpec, status: RolloutStatus, op: str, *, actor: str, now: datetime,
            reason: str = "") -> Decision:
    """Apply an operator command; raise ConflictError when it does not apply to the current state."""
    state = status.state
    why = f" ({reason})" if reason else ""
    if op not in COMMANDS:
        raise InputError.single("command", f"is {shown(op)}", expected="one of " + ", ".join(COMMANDS))
    if state in TERMINAL:
        raise ConflictError(f"cannot {op}: the rollout is {state.value}")
    if op == "start":
        if state is not RolloutState.PENDING:
            raise ConflictError(f"cannot start: the rollout is already {state.value}")
        waves = _set_wave(status, 0, WaveStatus(state=WaveState.EXPOSING, opened_at=now))
        new = replace(status, state=RolloutState.PROGRESSING, started_at=now, started_by=actor, waves=waves,
                      message=f"started by {actor}{why}")
    elif op == "pause":
        if state in (RolloutState.PAUSED, RolloutState.HALTED, RolloutState.ROLLING_BACK, RolloutState.PENDING):
            raise ConflictError(f"cannot pause: the rollout is {state.value}")
        new = replace(status, state=RolloutState.PAUSED, paused_from=state, message=f"paused by {actor}{why}")
    elif op == "resume":
        if state is RolloutState.PAUSED:
            back = status.paused_from or RolloutState.PROGRESSING
            new = replace(status, state=back, paused_from=None, rate_anchor_at=None, message=f"resumed by {actor}{why}")
        elif state is RolloutState.HALTED:
            k = status.wave
            wave = replace(status.waves[k], state=WaveState.EXPOSING, bake_started_at=None)
            new = replace(status, state=RolloutState.PROGRESSING, waves=_set_wave(status, k, wave), halted_at=None,
                          rate_anchor_at=None, message=f"resumed after halt by {actor}{why}")
        else:
            raise ConflictError(f"cannot resume: the rollout is {state.value}, not paused or halted")
    elif op == "approve" and state is RolloutState.HOLD:
        if actor == status.started_by:
            raise PermissionDeniedError(f"four-eyes rule: {shown(actor)} started this rollout and cannot also approve it")
        return _promote(spec, status, now, f"approved on hold by {actor}{why}")
    elif op == "extend":
        k = status.wave
        bake = spec.plan.waves[k].max_bake
        if state is not RolloutState.HOLD or bake is None:
            raise ConflictError(f"cannot extend: the rollout is {state.value}, not on hold")
        new = replace(status, state=RolloutState.BAKING, bake_deadline_at=now + bake,
                      message=f"bake of wave {k} extended by {actor}{why} until {now + bake:%Y-%m-%d %H:%M} UTC")
    elif op == "approve":
        k = status.wave
        if not spec.plan.waves[k].needs_approval or status.waves[k].approved_by:
            raise ConflictError(f"nothing to approve: wave {k} ({spec.plan.waves[k].name}) does not wait for approval")
        if actor == status.started_by:
            raise PermissionDeniedError(f"four-eyes rule: {shown(actor)} started this rollout and cannot also approve it")
        wave = replace(status.waves[k], approved_by=actor)
        back = RolloutState.PROGRESSING if state is RolloutState.WAITING_APPROVAL else state
        new = replace(status, state=back, waves=_set_wave(status, k, wave),
                      message=f"wave {k} approved by {actor}{why}")
    elif op == "halt":
        if state is RolloutState.PENDING:
            raise ConflictError("cannot halt: the rollout has not started; abort it instead")
        if state in (RolloutState.HALTED, RolloutState.ROLLING_BACK):
            raise ConflictError(f"cannot halt: the rollout is already {state.value}")
        k = status.wave
        msg = f"halted by {actor}{why}"
        new = replace(status, state=RolloutState.HALTED, halted_at=now, halt_reason=msg, message=msg,
                      waves=_set_wave(status, k, replace(status.waves[k], state=WaveState.HALTED)))
    elif op == "rollback":
        if state is RolloutState.ROLLING_BACK:
            raise ConflictError("cannot roll back: already rolling back")
        msg = f"rollback ordered by {actor}{why}"
        new = replace(status, state=RolloutState.ROLLING_BACK, halted_at=status.halted_at or now,
                      halt_reason=status.halt_reason or msg, message=msg)
        return Decision(new, (Intent(IntentKind.ROLLBACK, wave=status.wave, message=msg),), (Reason("rollback", msg),))
    else:  # abort
        msg = f"aborted by {actor}{why}: no further exposure; exposed hosts keep what they have"
        new = replace(status, state=RolloutState.ABORTED, finished_at=now, message=msg)
    return Decision(new, (), (Reason(op, new.message),))


def is_active(status: RolloutStatus) -> bool:
    """True when the reconciler should tick this rollout (on hold and paused ones too: the gate keeps watching)."""
    return status.state in _ACTIVE or status.state in (RolloutState.ROLLING_BACK, RolloutState.PAUSED,
                                                       RolloutState.HOLD)
