import pytest

from fewshot_ner.registry import Registry


def test_register_get_and_list():
    reg: Registry[int] = Registry("thing")
    reg.add("alpha", 1)

    @reg.register("beta")
    def beta() -> int:
        return 2

    assert reg.get("alpha") == 1 and reg.get("beta")() == 2
    assert list(reg) == ["alpha", "beta"] and "alpha" in reg


def test_collision_is_an_error():
    reg: Registry[int] = Registry("thing")
    reg.add("alpha", 1)
    with pytest.raises(ValueError, match="'alpha' is already registered"):
        reg.add("alpha", 2)


def test_unknown_name_suggests_close_matches():
    reg: Registry[int] = Registry("method")
    reg.add("protonet", 1)
    reg.add("mfner", 2)
    with pytest.raises(KeyError, match=r"Did you mean 'protonet'.*Known: mfner, protonet"):
        reg.get("protnet")
