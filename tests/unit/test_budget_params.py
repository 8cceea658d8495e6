"""Parameters of the budget's PostgreSQL statements, built without a database."""

from __future__ import annotations

import pytest

from yinfin_flow.db.raw import id_array


def test_ids_go_as_an_array_literal():
    assert id_array([]) == "{}"
    assert id_array([7]) == "{7}"
    assert id_array(range(1, 2001)) == "{" + ",".join(str(i) for i in range(1, 2001)) + "}"


@pytest.mark.parametrize("bad", ["1}", 1.5, None, "1"])
def test_only_integers_reach_the_literal(bad):
    with pytest.raises(TypeError):
        id_array([1, bad])
