"""Notifications: rules per tenant, signed webhooks and Apprise's json:// target delivered to a real HTTP
receiver on 127.0.0.1, retries with backoff while the receiver is down, the delivery log over the API."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator

import pytest
import yaml

from ringfence.adapters.db.engine import Database
from ringfence.adapters.notify import OutboxNotifier, parse_rules, sign
from ringfence.errors import InputError
from ringfence.services import notifications
from ringfence.services.context import Actor
from ringfence.services.notify import Event, Notification
from tests.api_support import Api, _problem, api  # noqa: F401  (fixture)
from tests.conftest import FakeClock
from tests.notify_support import Receiver
from tests.servers import free_port

SECRET = "s3cret-for-tests"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port())
    yield r
    r.close()


def _rules(port: int, tenant: str = "") -> str:
    return f"""
tenant: "{tenant}"
notify:
  targets:
    oncall: {{webhook: "http://127.0.0.1:{port}/hook", secret_env: RF_TEST_SECRET}}
    chat: {{apprise: "json://127.0.0.1:{port}/apprise"}}
  rules:
    - events: [rollout.halted, killswitch]
      targets: [oncall, chat]
    - events: ["*"]
      targets: [chat]
"""


def _halt(clock: FakeClock, tenant: str = "acme") -> Notification:
    return Notification(event=Event.ROLLOUT_HALTED, subject="ro-1", title="shop@1 halted in wave 0 (canary)",
                        text="3 of 3 updated hosts stopped reporting", at=clock(), tenant=tenant,
                        details={"wave": 0, "silent": 3})


def _notifier(db: Database, clock: FakeClock) -> OutboxNotifier:
    return OutboxNotifier(db, clock, env={"RF_TEST_SECRET": SECRET}, backoff_base=10.0, backoff_cap=60.0,
                          max_attempts=3, timeout_seconds=2.0)


def test_halt_reaches_signed_webhook_and_apprise_json(db: Database, clock: FakeClock, admin: Actor,
                                                      receiver: Receiver) -> None:
    """A halt matches both targets: the webhook is signed (HMAC over timestamp + body), Apprise posts its JSON."""
    notifications.apply_rules(db, _rules(receiver.port), actor=admin, clock=clock, reason="on-call")
    notifier = _notifier(db, clock)
    try:
        notifier.notify(_halt(clock))
        notifier.notify(Notification(event=Event.APPROVAL_NEEDED, subject="ro-2", title="wave 1 needs approval",
                                     text="", at=clock(), tenant="other"))
        assert notifier.run_once() == 3
    finally:
        notifier.stop()
    by_path = {path: (headers, body) for path, headers, body in receiver.requests}
    assert sorted(p for p, _, _ in receiver.requests) == ["/apprise", "/apprise", "/hook"]
    headers, body = by_path["/hook"]
    expected = hmac.new(SECRET.encode(), headers["x-ringfence-timestamp"].encode() + b"." + body, hashlib.sha256)
    assert headers["x-ringfence-signature"] == f"sha256={expected.hexdigest()}"
    assert headers["x-ringfence-event"] == "rollout.halted"
    payload = json.loads(body)
    assert payload["title"] == "shop@1 halted in wave 0 (canary)"
    assert payload["details"] == {"wave": 0, "silent": 3, "tenants": ["acme"]}
    assert str(payload["delivery"]) == headers["x-ringfence-delivery"]
    apprise_bodies = [json.loads(b) for p, _, b in receiver.requests if p == "/apprise"]
    assert {b["title"] for b in apprise_bodies} == {"shop@1 halted in wave 0 (canary)", "wave 1 needs approval"}
    log = notifications.deliveries(db, actor=admin)
    assert sorted((d.target, d.state, d.attempts) for d in log) == [("*/chat", "delivered", 1), ("*/chat", "delivered", 1),
                                                                    ("*/oncall", "delivered", 1)]
    assert sign(SECRET, 1, b"x") != sign(SECRET, 2, b"x")  # the timestamp is signed, so a replay needs a fresh one


def test_receiver_down_then_back_is_retried_with_backoff(db: Database, clock: FakeClock, admin: Actor) -> None:
    """Connection refused → pending with a later next attempt; nothing before it; delivered once the receiver is up."""
    port = free_port()
    notifications.apply_rules(db, _rules(port, tenant="acme"), actor=admin, clock=clock)
    notifier = _notifier(db, clock)
    try:
        notifier.notify(_halt(clock))
        assert notifier.run_once() == 2
        log = notifications.deliveries(db, actor=admin)
        assert {(d.state, d.attempts) for d in log} == {("pending", 1)}
        assert all("Connect" in d.last_error or "Apprise" in d.last_error for d in log), [d.last_error for d in log]
        first_retry = min(d.next_attempt_at for d in log)
        assert 8 <= (first_retry - clock()).total_seconds() <= 12      # 10 s ± 20 % jitter
        clock.advance(seconds=5)
        assert notifier.run_once() == 0                                 # not due yet: backoff holds
        back = Receiver(port)
        try:
            clock.advance(seconds=10)
            assert notifier.run_once() == 2
        finally:
            back.close()
    finally:
        notifier.stop()
    assert {(d.state, d.attempts, d.last_error) for d in notifications.deliveries(db, actor=admin)} == {
        ("delivered", 2, "")}
    assert sorted(p for p, _, _ in back.requests) == ["/apprise", "/hook"]


def test_gives_up_after_max_attempts_and_says_why(db: Database, clock: FakeClock, admin: Actor) -> None:
    """A receiver that never comes back: failed after max_attempts, with the last error kept in the log."""
    notifications.apply_rules(db, _rules(free_port()), actor=admin, clock=clock)
    notifier = _notifier(db, clock)
    try:
        notifier.notify(Notification(event=Event.KILL_SWITCH, subject="falcon-content", title="kill switch",
                                     text="halted 1 rollout", at=clock()))
        for _ in range(3):
            notifier.run_once()
            clock.advance(seconds=120)
        assert notifier.run_once() == 0
    finally:
        notifier.stop()
    log = notifications.deliveries(db, actor=admin)
    assert {(d.state, d.attempts) for d in log} == {("failed", 3)} and all(d.last_error for d in log)


def test_worker_thread_delivers_without_blocking_the_caller(db: Database, clock: FakeClock, admin: Actor,
                                                            receiver: Receiver) -> None:
    """notify() returns at once; the started worker delivers on its own."""
    notifications.apply_rules(db, _rules(receiver.port), actor=admin, clock=clock)
    notifier = OutboxNotifier(db, clock, env={"RF_TEST_SECRET": SECRET}, poll_seconds=0.05)
    notifier.start()
    try:
        notifier.notify(_halt(clock))
        deadline = threading.Event()
        for _ in range(200):
            if len(receiver.requests) >= 2:
                break
            deadline.wait(0.05)
    finally:
        notifier.stop()
    assert sorted(p for p, _, _ in receiver.requests) == ["/apprise", "/hook"]


@pytest.mark.parametrize(("doc", "message"), [
    ("notify: {targets: {a: {webhook: 'ftp://x'}}, rules: []}", "notify.targets.a.webhook: is 'ftp://x'"),
    ("notify: {targets: {a: {webhook: 'http://127.0.0.1/h'}}, rules: []}", "needs exactly one of secret or secret_env"),
    ("notify: {targets: {}, rules: [{events: [rollout.exploded], targets: [x]}]}", "names unknown events"),
    ("notify: {targets: {}, rules: [{events: ['*'], targets: [x]}]}", 'names undefined targets ["x"]'),
    ("tenant: acme", "notify: is missing"),
    ("{tenant: 'plan:fast', notify: {targets: {}, rules: []}}", "names a plan's rules"),
])
def test_bad_rules_name_the_field_and_change_nothing(db: Database, clock: FakeClock, admin: Actor, doc: str,
                                                     message: str) -> None:
    """Every bad document is refused with the field and the fix; the stored rules stay as they were."""
    with pytest.raises(InputError) as e:
        parse_rules(yaml.safe_load(doc))
    assert message in str(e.value)
    with pytest.raises(InputError):
        notifications.apply_rules(db, doc, actor=admin, clock=clock)
    assert notifications.list_rules(db, actor=admin) == []


def test_rules_and_log_over_the_api(api: Api, receiver: Receiver) -> None:  # noqa: F811
    """PUT (admin only, YAML), GET hides secrets, the delivery log is readable by a viewer; bad YAML is a 422."""
    put = api.call("PUT", "/v1/notify/rules", content=_rules(receiver.port, tenant="acme"),
                   headers={"content-type": "application/yaml", "x-ringfence-reason": "on-call"})
    assert put.status_code == 200, put.text
    assert put.json()["version"] == 1
    _problem(api.call("PUT", "/v1/notify/rules", role="operator", content=_rules(receiver.port)), 403)
    bad = _problem(api.call("PUT", "/v1/notify/rules", content="notify: {targets: {a: {apprise: nope}}}"), 422)
    assert "notify.targets.a.apprise" in json.dumps(bad)
    shown = api.call("GET", "/v1/notify/rules", role="viewer").json()["rules"]
    assert shown[0]["tenant"] == "acme"
    assert {t["name"]: t for t in shown[0]["targets"]}["oncall"]["secret"] == "$RF_TEST_SECRET"
    assert api.call("GET", "/v1/notify/deliveries", role="viewer").json() == {"deliveries": []}
    _problem(api.call("GET", "/v1/notify/deliveries?state=lost", role="viewer"), 422)


def test_api_kill_switch_is_told_through_the_apps_notifier(api: Api) -> None:  # noqa: F811
    """The kill switch pressed through the API reaches the app's notifier, as the reconciler's halts do
    (before, API operations fell back to a log notifier of their own and no rule ever saw them)."""
    from ringfence.services import rollouts
    from ringfence.services.notify import LogNotifier
    from tests.rollout_harness import OPERATOR

    app = api.client.app
    state = app.state.ringfence
    rollouts.create_release(state.db, state.artifacts, product="falcon-content", version="291", kind="content",
                            platforms=["windows"], files=[("c-291.bin", b"291")], actor=OPERATOR, clock=state.clock)
    told = LogNotifier()
    app.state.notifier = told
    r = api.call("POST", "/v1/killswitch/falcon-content", role="operator", json={"reason": "drill"})
    assert r.status_code == 200, r.text
    assert [(n.event, n.subject) for n in told.sent] == [(Event.KILL_SWITCH, "falcon-content")]
    assert "drill" in told.sent[0].text


def test_log_notifier_tells_a_once_notification_once(clock: FakeClock) -> None:
    """The simulator's notifier drops repeats of a `once` notification as the outbox does; others repeat."""
    from ringfence.services.notify import LogNotifier

    told = LogNotifier()
    shadow = Notification(event=Event.GATE_SHADOW, subject="ro-1", title="would have halted wave 0", text="",
                          at=clock(), once=True)
    for _ in range(3):
        told.notify(shadow)
        told.notify(_halt(clock))
    assert [n.event for n in told.sent] == [Event.GATE_SHADOW] + [Event.ROLLOUT_HALTED] * 3
