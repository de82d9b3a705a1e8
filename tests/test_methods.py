"""Each method's object (sqsp/methods.py): what syn_ratio means for it, a synthetic batch drawn
outside the step, and the registry the config reads."""
import typing

import pytest
import torch

from sqsp.config import METHODS, TrainConfig, ignored_settings
from sqsp.methods import METHODS as OBJECTS
from sqsp.train import build_run, compute_loss, train_step
from test_train import gen, tiny  # noqa: F401 (gen: the module's untrained generator, a fixture)


def test_the_registry_is_the_configs_list_of_methods():
    assert tuple(OBJECTS) == METHODS == typing.get_args(typing.get_type_hints(TrainConfig)["method"])
    assert all(m.name == name for name, m in OBJECTS.items())
    assert [n for n, m in OBJECTS.items() if not m.trains] == ["discriminator"]


@pytest.mark.parametrize("method", ["distill", "vicreg", "simsiam"])
def test_syn_ratio_is_a_batch_share_for_all_and_a_loss_weight_for_distill_only(gen, method):  # noqa: F811
    run = build_run(tiny(method=method, syn_ratio=0.25, epochs=0, steps=1), generator=gen)
    assert (run.config.syn_batch, run.config.real_batch) == (32, 96)
    out = compute_loss(run)
    if OBJECTS[method].syn_ratio_weights_loss:  # α·L_syn + (1−α)·L_real (span, Sec. 4.2)
        assert method == "distill"
        want = 0.25 * out["loss_syn"] + 0.75 * out["loss_real"]
        assert torch.allclose(out["loss"], want) and not torch.allclose(out["loss"], out["loss_syn"])
    else:  # one loss over the mixed batch: no parts to weight
        assert "loss_syn" not in out and "loss_real" not in out
    assert list(out)[-1] == "loss"


@pytest.mark.parametrize("method", ["distill", "vicreg"])
def test_a_synthetic_batch_drawn_outside_the_step_is_the_one_the_step_would_draw(gen, method):  # noqa: F811
    cfg = tiny(method=method, epochs=0, steps=2)

    def steps(draw):  # build_run seeds the process's RNG: one run at a time
        run = build_run(cfg, generator=gen)
        return [train_step(run, draw(run)) for _ in range(2)]

    own, given = steps(lambda run: None), steps(lambda run: run.synthetic(cfg.syn_batch))
    for a, b in zip(own, given):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    other = steps(lambda run: run.synthetic(2 * cfg.syn_batch))  # twice as many images: another batch
    assert not torch.equal(other[0]["loss"], own[0]["loss"])


def test_each_method_refuses_the_fields_it_never_reads():
    cfg = tiny(method="simsiam")
    why = ignored_settings(cfg.replace(sim_weight=5.0), ["sim_weight"])
    assert "method='simsiam' ignores it" in why["sim_weight"] and "no weights" in why["sim_weight"]
    assert not ignored_settings(tiny(sim_weight=5.0), ["sim_weight"])  # distill reads it
    assert "disc_features" in OBJECTS["distill"].ignores and "disc_features" not in OBJECTS["discriminator"].ignores
