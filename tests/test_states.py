import pytest

from clusterctl.states import TERMINAL, TRANSITIONS, IllegalTransition, JobState, check_transition


def test_terminal_states_have_no_way_out() -> None:
    for state in TERMINAL:
        assert TRANSITIONS[state] == frozenset()
        with pytest.raises(IllegalTransition):
            check_transition(state, JobState.PENDING)


def test_lifecycle_paths() -> None:
    check_transition(JobState.PENDING, JobState.STARTING)
    check_transition(JobState.STARTING, JobState.RUNNING)
    check_transition(JobState.RUNNING, JobState.SUCCEEDED)
    check_transition(JobState.RUNNING, JobState.LOST)
    check_transition(JobState.LOST, JobState.PENDING)
    with pytest.raises(IllegalTransition):
        check_transition(JobState.PENDING, JobState.RUNNING)
    with pytest.raises(IllegalTransition):
        check_transition(JobState.PENDING, JobState.SUCCEEDED)


def test_every_state_is_either_live_or_ended() -> None:
    from clusterctl.states import ENDED, LISTED, LIVE

    assert LIVE.isdisjoint(ENDED) and set(JobState) == LIVE | ENDED
    assert LIVE <= LISTED and not LISTED & TERMINAL  # `jobs` hides only what is over for good
