"""Task/role/group naming and the stable group-id order."""

import pytest

from azr_jax.azr.tasks import (
    ALL_GROUPS,
    NUM_GROUPS,
    Group,
    Role,
    TaskType,
    group_from_id,
    group_from_name,
    group_id,
)


def test_six_groups_with_ids_in_documented_order():
    expected = [
        ("deduction", "propose"),
        ("deduction", "solve"),
        ("abduction", "propose"),
        ("abduction", "solve"),
        ("induction", "propose"),
        ("induction", "solve"),
    ]
    assert NUM_GROUPS == 6
    assert [(g.task.value, g.role.value) for g in ALL_GROUPS] == expected
    assert [g.id for g in ALL_GROUPS] == list(range(6))
    for i, (t, r) in enumerate(expected):
        assert group_id(t, r) == i
        assert group_from_id(i) == Group(TaskType(t), Role(r))


@pytest.mark.parametrize(
    "alias, task",
    [
        ("code_o", TaskType.DEDUCTION),
        ("code_i", TaskType.ABDUCTION),
        ("code_f", TaskType.INDUCTION),
        ("ded", TaskType.DEDUCTION),
        ("Abduction", TaskType.ABDUCTION),
        (" induction ", TaskType.INDUCTION),
    ],
)
def test_task_aliases(alias, task):
    assert TaskType.parse(alias) is task


def test_code_names_round_trip():
    names = {g.code_name: g for g in ALL_GROUPS}
    assert set(names) == {
        "gen_code_o",
        "pred_code_o",
        "gen_code_i",
        "pred_code_i",
        "gen_code_f",
        "pred_code_f",
    }
    for code_name, g in names.items():
        assert group_from_name(code_name) == g
        assert group_from_name(g.name) == g
    assert group_from_name("propose_induction").id == 4
    assert Role.parse("pred") is Role.SOLVE and Role.parse("gen") is Role.PROPOSE


@pytest.mark.parametrize("bad", [-1, 6, 2.0, True, "0"])
def test_bad_group_ids_raise(bad):
    with pytest.raises(ValueError):
        group_from_id(bad)


def test_bad_names_raise():
    with pytest.raises(ValueError, match="unknown task"):
        TaskType.parse("code_e")
    with pytest.raises(ValueError, match="unknown role"):
        Role.parse("judge")
    with pytest.raises(ValueError, match="unknown group"):
        group_from_name("gen_code_e")
