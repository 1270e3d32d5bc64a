import pytest
from pg_ha.daemon import postgres_version_to_int


@pytest.mark.parametrize("text, value", [("9.5.2", 90502), ("9.6", 90600), ("15.4", 150004), ("15", 150000),
                                         ("10.23", 100023), ("x", None), ("1.2.3.4", None), ("", None)])
def test_postgres_version_to_int(text: str, value: int | None) -> None:
    assert postgres_version_to_int(text) == value
