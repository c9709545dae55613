"""The manager's pure state machine: events, timers (exact virtual times) and invariants."""

from __future__ import annotations

import math

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from nuttrio.mgmt.machine import (
    Logout,
    Machine,
    MonitorSpec,
    Notify,
    NumLogins,
    Observed,
    Phase,
    Policy,
    PollFailed,
    QueryNumLogins,
    RunShutdown,
    SetFsd,
    Tick,
    UserFsd,
)

U = "ups@localhost"


def primary(policy: Policy | None = None, **kw) -> Machine:
    return Machine([MonitorSpec(U, 1, primary=True)], policy or Policy(**kw), start=0)


def secondary(policy: Policy | None = None, **kw) -> Machine:
    return Machine([MonitorSpec(U, 1, primary=False)], policy or Policy(**kw), start=0)


def secondary_with(**triggers) -> Machine:
    return Machine([MonitorSpec(U, 1, primary=False, **triggers)], Policy(), start=0)


def notes(actions) -> list[str]:
    return [a.type for a in actions if isinstance(a, Notify)]


def run_until(machine: Machine, end: float, answer_logins: int | None = None) -> list[tuple]:
    """Tick the machine at each deadline up to ``end``; return (time, action) pairs."""
    out = []
    while (t := machine.next_deadline()) <= end:
        for action in machine.step(Tick(t)):
            out.append((t, action))
            if isinstance(action, QueryNumLogins) and answer_logins is not None:
                machine.step(NumLogins(action.system, answer_logins, t))
    return out


# -- event deduction -------------------------------------------------------------------------


def test_first_online_is_silent_first_onbatt_is_not():
    m = primary()
    assert notes(m.step(Observed(U, "OL", 1))) == []
    assert notes(m.step(Observed(U, "OB DISCHRG", 2))) == ["ONBATT", "DISCHRG"]
    assert notes(m.step(Observed(U, "OL CHRG", 3))) == ["ONLINE", "CHRG", "NOTDISCHRG"]
    fresh = secondary()
    assert notes(fresh.step(Observed(U, "OB", 1))) == ["ONBATT"]


@pytest.mark.parametrize(
    ("symbol", "appear", "vanish"),
    [
        ("LB", "LOWBATT", "NOTLOWBATT"),
        ("FSD", "FSD", "NOTFSD"),
        ("RB", "REPLBATT", "NOTREPLBATT"),
        ("CAL", "CAL", "NOTCAL"),
        ("OFF", "OFF", "NOTOFF"),
        ("BYPASS", "BYPASS", "NOTBYPASS"),
        ("OVER", "OVER", "NOTOVER"),
        ("TRIM", "TRIM", "NOTTRIM"),
        ("BOOST", "BOOST", "NOTBOOST"),
        ("ECO", "ECO", "NOTECO"),
        ("TEST", "TEST", "NOTTEST"),
        ("TICK", "TICK", "NOTTICK"),
        ("HB", "HB", "NOTHB"),
    ],
)
def test_every_symbol_transition_both_ways(symbol, appear, vanish):
    m = Machine([MonitorSpec(U, 0)], Policy(minsupplies=0), start=0)  # watch only
    m.step(Observed(U, "OL", 1))
    assert notes(m.step(Observed(U, f"OL {symbol}", 2))) == [appear]
    assert notes(m.step(Observed(U, f"OL {symbol}", 3))) == []
    assert notes(m.step(Observed(U, "OL", 4))) == [vanish]


def test_alarm_text_and_unclassified_tokens():
    m = primary()
    m.step(Observed(U, "OL", 1))
    acts = m.step(Observed(U, "OL ALARM", 2, {"ups.alarm": "Fan failure"}))
    assert acts == [Notify("ALARM", U, "Fan failure")]
    assert m.step(Observed(U, "OL ALARM", 3, {"ups.alarm": "Fan failure"})) == []
    assert m.step(Observed(U, "OL ALARM", 4, {"ups.alarm": "Overheat"})) == [
        Notify("ALARM", U, "Overheat")
    ]
    assert m.step(Observed(U, "OL WAIT XX", 5)) == [
        Notify("NOTALARM", U),
        Notify("OTHER", U, "WAIT XX"),
    ]
    assert m.step(Observed(U, "OL", 6)) == [Notify("NOTOTHER", U)]


def test_replbatt_repeats_every_rbwarntime():
    m = Machine([MonitorSpec(U, 0)], Policy(rbwarntime=100, minsupplies=0), start=0)
    m.step(Observed(U, "OL RB", 10))
    events = run_until(m, 350)
    assert [(t, a.type) for t, a in events] == [
        (pytest.approx(110), "REPLBATT"),
        (pytest.approx(210), "REPLBATT"),
        (pytest.approx(310), "REPLBATT"),
    ]


def test_comm_events():
    m = primary(nocommwarntime=300)
    assert notes(m.step(PollFailed(U, 1))) == ["COMMBAD"]
    assert notes(m.step(PollFailed(U, 5))) == []
    assert notes(m.step(PollFailed(U, 300))) == ["NOCOMM"]  # counted from the start
    assert notes(m.step(PollFailed(U, 305))) == []
    assert notes(m.step(PollFailed(U, 601))) == ["NOCOMM"]
    assert notes(m.step(Observed(U, "OL", 602))) == ["COMMOK"]
    assert notes(m.step(Observed(U, "OL", 603))) == []


def test_no_commok_at_the_first_connection():
    m = primary()
    assert notes(m.step(Observed(U, "OL", 1))) == []


# -- the shutdown decision -------------------------------------------------------------------


def test_primary_shuts_down_on_ob_lb_and_waits_for_secondaries():
    m = primary(hostsync=15, finaldelay=5)
    m.step(Observed(U, "OL", 0))
    assert m.step(Observed(U, "OB", 1)) == [Notify("ONBATT", U)]
    acts = m.step(Observed(U, "OB LB", 2))
    assert acts == [
        Notify("LOWBATT", U),
        SetFsd(U),
        Notify("SHUTDOWN_HOSTSYNC", None),
        QueryNumLogins(U),
    ]
    assert m.phase is Phase.HOSTSYNC
    m.step(NumLogins(U, 3, 2.0))
    assert m.next_deadline() == pytest.approx(2.25)
    assert m.step(Tick(2.25)) == [QueryNumLogins(U)]
    # Only this host left: SHUTDOWN at once, not at the next query.
    assert m.step(NumLogins(U, 1, 2.3)) == [Notify("SHUTDOWN", None)]
    assert m.next_deadline() == pytest.approx(7.3)
    assert m.step(Tick(7.3)) == [RunShutdown()]
    assert m.phase is Phase.DONE
    assert m.next_deadline() == math.inf


def test_primary_gives_up_waiting_after_hostsync_even_if_queries_fail():
    m = primary(hostsync=15, finaldelay=5)
    first = m.step(Observed(U, "OB LB", 10))
    assert first[-1] == QueryNumLogins(U)
    events = [(10, first[-1]), *run_until(m, 100, answer_logins=None)]
    shutdown = [t for t, a in events if isinstance(a, Notify) and a.type == "SHUTDOWN"]
    run = [t for t, a in events if isinstance(a, RunShutdown)]
    assert shutdown == [pytest.approx(25)]
    assert run == [pytest.approx(30)]
    queries = [t for t, a in events if isinstance(a, QueryNumLogins)]
    assert len(queries) == 60  # every 0.25 s while waiting


def test_secondary_shuts_down_on_fsd_then_logs_out():
    m = secondary(finaldelay=5)
    m.step(Observed(U, "OB", 1))
    acts = m.step(Observed(U, "FSD OB", 3))
    assert acts == [Notify("FSD", U), Notify("SHUTDOWN", None)]
    assert run_until(m, 100) == [(8, RunShutdown()), (8, Logout(U))]


def test_secondary_waits_hostsync_for_the_primary_on_ob_lb():
    m = secondary(hostsync=15, finaldelay=5)
    m.step(Observed(U, "OB", 0))
    m.step(Observed(U, "OB LB", 4))
    assert m.phase is Phase.MONITORING
    assert m.verdicts(19)[0].reason.startswith("OB LB: waiting up to HOSTSYNC")
    events = run_until(m, 100)
    assert [(round(t, 3), a) for t, a in events][:1] == [(19.0, Notify("SHUTDOWN", None))]
    assert m.shutdown_reason.startswith("fed supplies 0 < MINSUPPLIES 1")
    assert "HOSTSYNC" in m.shutdown_reason


def test_dead_while_on_battery_is_critical_dead_while_online_is_not():
    on_batt = secondary(deadtime=15)
    on_batt.step(Observed(U, "OB", 10))
    on_batt.step(PollFailed(U, 12))
    events = run_until(on_batt, 60)
    assert events[0] == (pytest.approx(25), Notify("SHUTDOWN", None))

    on_line = secondary(deadtime=15)
    on_line.step(Observed(U, "OL", 10))
    on_line.step(PollFailed(U, 12))
    assert run_until(on_line, 1000) == []
    assert on_line.phase is Phase.MONITORING


def test_oblbduration_delays_the_decision():
    m = primary(oblbduration=30)
    m.step(Observed(U, "OB LB", 100))
    assert m.phase is Phase.MONITORING
    assert m.next_deadline() == 130
    assert SetFsd(U) in m.step(Tick(130))


def test_ob_lb_during_calibration_is_not_critical():
    m = primary()
    m.step(Observed(U, "OB LB CAL", 1))
    assert m.phase is Phase.MONITORING
    assert m.verdicts(2)[0].reason.startswith("OB LB during calibration")


def test_off_for_offduration_counts_as_not_feeding():
    m = primary(offduration=30)
    m.step(Observed(U, "OFF", 0))
    assert m.phase is Phase.MONITORING
    events = run_until(m, 31)
    assert events[0][1] == SetFsd(U)
    assert events[0][0] == pytest.approx(30)


def test_fsd_seen_on_the_primary_starts_the_shutdown():
    m = primary()
    assert SetFsd(U) in m.step(Observed(U, "FSD OL", 1))


def test_user_fsd_and_at_most_once():
    m = primary(finaldelay=0)
    acts = m.step(UserFsd(1))
    assert SetFsd(U) in acts
    assert not any(isinstance(a, SetFsd) for a in m.step(UserFsd(2)))
    assert RunShutdown() in m.step(NumLogins(U, 1, 2))  # FINALDELAY 0: at once
    assert m.step(UserFsd(3)) == []
    assert run_until(m, 1000) == []


def test_power_values_against_minsupplies():
    a, b = "a@h", "b@h"
    m = Machine([MonitorSpec(a, 2), MonitorSpec(b, 2)], Policy(minsupplies=2), start=0)
    m.step(Observed(a, "OB LB FSD", 1))
    assert m.phase is Phase.MONITORING  # b still feeds 2 supplies
    assert m.fed(1) == 2
    m.step(Observed(b, "FSD OB LB", 2))
    assert m.phase is not Phase.MONITORING


def test_minsupplies_zero_never_shuts_down():
    m = primary(minsupplies=0)
    m.step(Observed(U, "FSD OB LB", 1))
    assert m.phase is Phase.MONITORING


def test_monitor_only_ups_never_matters():
    m = Machine([MonitorSpec(U, 0, primary=True), MonitorSpec("b@h", 1)], Policy(), start=0)
    m.step(Observed(U, "FSD OB LB", 1))
    assert m.phase is Phase.MONITORING


def test_too_few_power_values_are_refused():
    with pytest.raises(ValueError, match="less than MINSUPPLIES 2"):
        Machine([MonitorSpec(U, 1)], Policy(minsupplies=2), start=0)


def test_never_reached_ups_counts_as_feeding():
    m = secondary()
    m.step(PollFailed(U, 1))
    assert run_until(m, 10_000) == []


def test_nuttrio_thresholds():
    m = secondary_with(runtime_below=300)
    m.step(Observed(U, "OB", 1, {"battery.runtime": "600"}))
    assert m.phase is Phase.MONITORING
    m.step(Observed(U, "OB", 2, {"battery.runtime": "299"}))
    assert m.phase is Phase.FINAL_DELAY
    assert "NUTTRIO_RUNTIME_BELOW" in m.shutdown_reason

    m = secondary_with(charge_below=40)
    m.step(Observed(U, "OL", 1, {"battery.charge": "20"}))  # on line power: fine
    assert m.phase is Phase.MONITORING
    m.step(Observed(U, "OB", 2, {"battery.charge": "39.5"}))
    assert "NUTTRIO_CHARGE_BELOW" in m.shutdown_reason

    m = secondary_with(onbatt_after=120)
    m.step(Observed(U, "OB", 10))
    m.step(Observed(U, "OL", 100))  # back on line: the count restarts
    m.step(Observed(U, "OB", 200))
    assert run_until(m, 319) == []
    assert run_until(m, 320)[0] == (320, Notify("SHUTDOWN", None))


def test_verdicts_explain_each_ups():
    m = Machine([MonitorSpec("a@h", 1), MonitorSpec("b@h", 1)], Policy(minsupplies=1), start=0)
    m.step(Observed("a@h", "OL", 1))
    reasons = {v.system: (v.critical, v.reason) for v in m.verdicts(2)}
    assert reasons == {
        "a@h": (False, "on line power, battery not low"),
        "b@h": (False, "never read: counted as feeding"),
    }


def test_duplicate_monitor_is_refused():
    with pytest.raises(ValueError, match="twice"):
        Machine([MonitorSpec(U), MonitorSpec(U)], Policy(), start=0)


# -- invariants ------------------------------------------------------------------------------

STATUS = st.lists(
    st.sampled_from(["OL", "OB", "LB", "FSD", "CAL", "OFF", "RB", "CHRG", "ALARM", "XX"]),
    max_size=4,
).map(" ".join)
SYSTEMS = ["a@h", "b@h", "c@h"]


class MachineInvariants(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.specs = [
            MonitorSpec("a@h", 1, primary=True),
            MonitorSpec("b@h", 2),
            MonitorSpec("c@h", 0),
        ]
        self.machine = Machine(self.specs, Policy(minsupplies=2, oblbduration=3), start=0)
        self.now = 0.0
        self.runs = 0
        self.phases = [Phase.MONITORING]
        self.user_fsd = False

    def _apply(self, event):
        was_monitoring = self.machine.phase is Phase.MONITORING
        actions = self.machine.step(event)
        self.runs += sum(isinstance(a, RunShutdown) for a in actions)
        started = was_monitoring and self.machine.phase is not Phase.MONITORING
        if started and not isinstance(event, UserFsd):
            # No shutdown while enough supplies are fed.
            assert self.machine.fed(self.now) < self.machine.policy.minsupplies
        self.phases.append(self.machine.phase)

    @rule(system=st.sampled_from(SYSTEMS), status=STATUS, dt=st.floats(0, 20))
    def observe(self, system, status, dt):
        self.now += dt
        self._apply(Observed(system, status, self.now, {"battery.charge": "50"}))

    @rule(system=st.sampled_from(SYSTEMS), dt=st.floats(0, 20))
    def fail(self, system, dt):
        self.now += dt
        self._apply(PollFailed(system, self.now))

    @rule(dt=st.floats(0, 40))
    def tick(self, dt):
        self.now = min(self.now + dt, max(self.now, self.machine.next_deadline()))
        self._apply(Tick(self.now))

    @rule(count=st.one_of(st.none(), st.integers(0, 4)))
    def logins(self, count):
        self._apply(NumLogins("a@h", count, self.now))

    @precondition(lambda self: not self.user_fsd)
    @rule()
    def user_fsd_request(self):
        self.user_fsd = True
        self._apply(UserFsd(self.now))

    @invariant()
    def shutdown_at_most_once(self):
        assert self.runs <= 1

    @invariant()
    def a_started_shutdown_never_goes_back(self):
        order = [Phase.MONITORING, Phase.HOSTSYNC, Phase.FINAL_DELAY, Phase.DONE]
        ranks = [order.index(p) for p in self.phases]
        assert ranks == sorted(ranks)

    @invariant()
    def deadlines_are_not_in_the_past_when_monitoring(self):
        if self.machine.phase is Phase.MONITORING:
            assert self.machine.next_deadline() > self.now - 60


MachineInvariants.TestCase.settings = settings(max_examples=150, stateful_step_count=40)
test_machine_invariants = MachineInvariants.TestCase


def test_update_settings_keeps_what_was_observed():
    m = secondary(hostsync=15)
    m.step(Observed(U, "OB LB", 0))
    m.update_settings(Policy(hostsync=5), [MonitorSpec(U, 1, primary=False)])
    assert m.next_deadline() == pytest.approx(5, abs=1e-3)  # OB LB since 0, new HOSTSYNC 5
    with pytest.raises(ValueError, match="MONITOR"):
        m.update_settings(Policy(), [MonitorSpec(U, 2)])
    with pytest.raises(ValueError, match="MINSUPPLIES 3"):
        m.update_settings(Policy(minsupplies=3), [MonitorSpec(U, 1)])
    assert m.policy.hostsync == 5
