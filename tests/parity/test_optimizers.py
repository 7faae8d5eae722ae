"""Parity of rnnbook.optimizers with Keras 3 (torch backend).

Each test starts Keras and rnnbook from the same variables (float32, three shapes), feeds both the same random
gradients for 5 steps and compares the variables after every step and the slot variables at the end
(``rtol=1e-6``). Covered: SGD (plain, momentum, Nesterov), Adam (and AMSGrad), RMSprop (plain, momentum,
centered), Adagrad; clipnorm / clipvalue / global_clipnorm, weight decay, loss-scale factor, constraints applied
after the update, None gradients (skipped with Keras' warning), learning-rate schedules and reassignment,
configs, lookup by name / config dict, and error texts.
"""

import os
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import rnnbook as rb  # noqa: E402
from rnnbook import optimizers as O  # noqa: E402
from rnnbook.layer import Variable  # noqa: E402

torch.set_num_threads(1)
RTOL, ATOL = 1e-6, 1e-7
SHAPES = [(3, 4), (4,), (2, 2, 3)]
STEPS = 5


def close(a, b, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=rtol, atol=atol)


def init_values(seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def grad_steps(seed=1, scale=1.0, dtype="float32"):
    rng = np.random.default_rng(seed)
    return [[(rng.standard_normal(s) * scale).astype(dtype) for s in SHAPES] for _ in range(STEPS)]


def pair(vals, names=("w", "b", "k"), k_constraints=(None,) * 3, r_constraints=(None,) * 3):
    kv = [keras.Variable(v, name=n) for v, n in zip(vals, names)]
    for v, c in zip(kv, k_constraints):
        v.constraint = c                    # keras.Variable ignores a `constraint=` argument
    rv = [Variable(v, name=n, constraint=c) for v, n, c in zip(vals, names, r_constraints)]
    return kv, rv


def run_both(kopt, ropt, vals=None, grads=None, none_at=None, kc=(None,) * 3, rc=(None,) * 3):
    """Apply the same gradient steps with both optimizers; compare after every step. `none_at`: (step, var) with
    a None gradient."""
    vals = init_values() if vals is None else vals
    grads = grad_steps() if grads is None else grads
    kv, rv = pair(vals, k_constraints=kc, r_constraints=rc)
    for step, gs in enumerate(grads):
        kg = [torch.tensor(g) for g in gs]
        rg = list(gs)
        if none_at is not None and none_at[0] == step:
            kg[none_at[1]] = rg[none_at[1]] = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kopt.apply_gradients(zip(kg, kv))
            ropt.apply_gradients(zip(rg, rv))
        for k, r in zip(kv, rv):
            close(r.numpy(), k.numpy())
    assert int(ropt.iterations.numpy()) == int(kopt.iterations.numpy()) == len(grads)
    return kv, rv


CONFIGS = [
    ("SGD", {"learning_rate": 0.1}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}),
    ("Adam", {}),
    ("Adam", {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-5}),
    ("Adam", {"learning_rate": 0.01, "amsgrad": True}),
    ("RMSprop", {}),
    ("RMSprop", {"learning_rate": 0.01, "rho": 0.8, "momentum": 0.5}),
    ("RMSprop", {"learning_rate": 0.01, "centered": True}),
    ("RMSprop", {"learning_rate": 0.01, "momentum": 0.3, "centered": True}),
    ("Adagrad", {}),
    ("Adagrad", {"learning_rate": 0.1, "initial_accumulator_value": 0.5, "epsilon": 1e-4}),
]
IDS = [f"{c}-{kw}" for c, kw in CONFIGS]


@pytest.mark.parametrize("cls,kw", CONFIGS, ids=IDS)
def test_updates_match_keras(cls, kw):
    kopt, ropt = getattr(keras.optimizers, cls)(**kw), getattr(O, cls)(**kw)
    run_both(kopt, ropt)
    # the slot variables, in Keras' order and with Keras' names
    kslots, rslots = kopt.variables[2:], ropt.variables[2:]
    assert [v.name for v in rslots] == [v.name for v in kslots]
    for k, r in zip(kslots, rslots):
        close(r.numpy(), k.numpy())
    assert [v.path.split("/")[-1] for v in ropt.variables[:2]] == ["iteration", "learning_rate"]


CLIPS = [{"clipnorm": 1.0}, {"clipnorm": 100.0}, {"clipvalue": 0.5}, {"global_clipnorm": 2.0},
         {"global_clipnorm": 1e3}, {"weight_decay": 0.1}, {"weight_decay": 0.05, "clipnorm": 0.7},
         {"loss_scale_factor": 8.0}]


@pytest.mark.parametrize("clip", CLIPS, ids=[str(c) for c in CLIPS])
@pytest.mark.parametrize("cls,kw", [CONFIGS[1], CONFIGS[3], CONFIGS[9], CONFIGS[10]],
                         ids=[IDS[1], IDS[3], IDS[9], IDS[10]])
def test_clipping_decay_and_scaling_match_keras(cls, kw, clip):
    kw = {**kw, **clip}
    run_both(getattr(keras.optimizers, cls)(**kw), getattr(O, cls)(**kw), grads=grad_steps(scale=3.0))


@pytest.mark.parametrize("cls,kw", CONFIGS, ids=IDS)
def test_none_gradient_skips_variable_like_keras(cls, kw):
    kopt, ropt = getattr(keras.optimizers, cls)(**kw), getattr(O, cls)(**kw)
    run_both(kopt, ropt, none_at=(2, 1))


def test_none_gradient_warns_and_all_none_raises():
    w, b = Variable(np.ones(2, "float32"), name="w"), Variable(np.ones(1, "float32"), name="b")
    opt = O.Adam()
    with pytest.warns(UserWarning, match=r"Gradients do not exist for variables \['b'\]"):
        opt.apply_gradients([(np.ones(2, "float32"), w), (None, b)])
    np.testing.assert_array_equal(b.numpy(), [1.0])
    with pytest.raises(ValueError, match="No gradients provided for any variable."):
        opt.apply_gradients([(None, w), (None, b)])
    opt.apply_gradients([])                           # nothing to do: no error, no step
    assert int(opt.iterations.numpy()) == 1


@pytest.mark.parametrize("cls,kw", [CONFIGS[0], CONFIGS[3], CONFIGS[7]], ids=[IDS[0], IDS[3], IDS[7]])
def test_constraints_after_update_match_keras(cls, kw):
    kc = (keras.constraints.NonNeg(), keras.constraints.MaxNorm(1.0), None)
    rc = (rb.constraints.NonNeg(), rb.constraints.MaxNorm(1.0), None)
    kv, rv = run_both(getattr(keras.optimizers, cls)(**kw), getattr(O, cls)(**kw), kc=kc, rc=rc)
    assert (rv[0].numpy() >= 0).all()


def test_constraint_sees_the_updated_value():
    seen = []
    w = Variable(np.array([1.0], "float32"), name="w", constraint=lambda v: seen.append(v.numpy().copy()) or v.numpy())
    O.SGD(0.5).apply_gradients([(np.array([1.0], "float32"), w)])
    np.testing.assert_allclose(seen[0], [0.5])


def test_learning_rate_schedule_matches_keras():
    sched = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    kopt = keras.optimizers.SGD(sched, momentum=0.5)
    ropt = O.SGD(lambda step: float(sched(step)), momentum=0.5)
    run_both(kopt, ropt)
    assert ropt.learning_rate == pytest.approx(float(sched(STEPS)))
    # Keras' zero-argument callables work too
    run_both(keras.optimizers.Adam(lambda: 0.01), O.Adam(lambda: 0.01))


def test_learning_rate_variable_and_reassignment():
    kopt, ropt = keras.optimizers.Adam(0.01), O.Adam(0.01)
    kv, rv = pair(init_values())
    g = grad_steps()
    for step in range(STEPS):
        if step == 2:
            kopt.learning_rate = 0.003
            ropt.learning_rate = 0.003
        kopt.apply_gradients(zip([torch.tensor(x) for x in g[step]], kv))
        ropt.apply_gradients(zip(g[step], rv))
    for k, r in zip(kv, rv):
        close(r.numpy(), k.numpy())
    assert isinstance(ropt.learning_rate, Variable)
    close(ropt.learning_rate.numpy(), kopt.learning_rate.numpy())
    ropt.learning_rate.assign(0.5)
    assert ropt._get_current_learning_rate() == 0.5


def test_build_then_apply_without_variables():
    vals, gs = init_values(), grad_steps()
    kv, rv = pair(vals)
    kopt, ropt = keras.optimizers.RMSprop(0.01, momentum=0.5), O.RMSprop(0.01, momentum=0.5)
    kopt.build(kv)
    ropt.build(rv)
    assert [v.name for v in ropt.variables[2:]] == [v.name for v in kopt.variables[2:]]
    for g in gs:
        kopt.apply([torch.tensor(x) for x in g])
        ropt.apply(g)
    for k, r in zip(kv, rv):
        close(r.numpy(), k.numpy())
    with pytest.raises(ValueError, match="must already be built"):
        O.SGD().apply(gs[0])
    with pytest.raises(ValueError, match="one gradient per variable"):
        ropt.apply(gs[0][:2])


def test_new_variables_get_slots_lazily():
    opt = O.Adam(0.1)
    a, b = Variable(np.ones(2, "float32"), name="a"), Variable(np.ones(3, "float32"), name="b")
    opt.apply_gradients([(np.ones(2, "float32"), a)])
    opt.apply_gradients([(np.ones(3, "float32"), b), (np.ones(2, "float32"), a)])
    assert [v.name for v in opt.variables[2:]] == ["a_momentum", "a_velocity", "b_momentum", "b_velocity"]


def test_dtype_device_and_gradient_conversion():
    w = Variable(np.ones(3, "float64"), name="w", dtype="float64")
    opt = O.Adam(0.1)
    opt.apply_gradients([(np.array([1.0, -1.0, 0.5], "float32"), w)])       # float32 gradient, float64 variable
    assert w.dtype == np.float64 and opt.variables[2].dtype == np.float64
    w32 = Variable(np.ones(3, "float32"), name="w32")
    O.SGD(0.1).apply_gradients([(Variable(np.ones(3), name="g"), w32)])     # a Variable as gradient, float64 -> float32
    assert w32.dtype == np.float32
    close(w32.numpy(), [0.9] * 3)
    with pytest.raises(ValueError, match=r"expected shape \(3,\).*received shape \(2,\)"):
        O.SGD().apply_gradients([(np.ones(2), w32)])


def test_trainable_false_is_updated_like_keras():
    kv = keras.Variable(np.ones(2, "float32"), trainable=False)
    rv = Variable(np.ones(2, "float32"), trainable=False)
    keras.optimizers.SGD(0.1).apply_gradients([(torch.ones(2), kv)])
    O.SGD(0.1).apply_gradients([(np.ones(2, "float32"), rv)])
    close(rv.numpy(), kv.numpy())


def test_exclude_from_weight_decay():
    kv, rv = pair(init_values())
    kopt, ropt = keras.optimizers.SGD(0.1, weight_decay=0.2), O.SGD(0.1, weight_decay=0.2)
    kopt.exclude_from_weight_decay(var_names=["b"])
    ropt.exclude_from_weight_decay(var_names=["b"])
    for g in grad_steps():
        kopt.apply_gradients(zip([torch.tensor(x) for x in g], kv))
        ropt.apply_gradients(zip(g, rv))
    for k, r in zip(kv, rv):
        close(r.numpy(), k.numpy())


@pytest.mark.parametrize("cls,kw", CONFIGS, ids=IDS)
def test_config_matches_keras_and_round_trips(cls, kw):
    kw = {**kw, "clipnorm": 2.0, "name": "opt"}
    kc, rc = getattr(keras.optimizers, cls)(**kw).get_config(), getattr(O, cls)(**kw).get_config()
    assert set(rc) == set(kc)
    for k in kc:
        assert rc[k] == pytest.approx(kc[k]) if isinstance(kc[k], float) else rc[k] == kc[k], k
    assert getattr(O, cls).from_config(rc).get_config() == rc
    assert O.get(O.serialize(getattr(O, cls)(**kw))).get_config() == rc
    assert O.get(keras.optimizers.serialize(getattr(keras.optimizers, cls)(**kw))).get_config() == rc   # Keras' dicts


def test_get():
    for name in ["adam", "Adam", "sgd", "SGD", "rmsprop", "RMSprop", "adagrad"]:
        assert type(O.get(name)).__name__.lower() == name.lower()
    assert O.get(None) is None
    opt = O.SGD()
    assert O.get(opt) is opt
    assert isinstance(O.get(O.Adam), O.Adam)
    o = O.get({"class_name": "adam", "config": {"learning_rate": 0.5}})
    close(o.learning_rate.numpy(), 0.5)
    with pytest.raises(ValueError, match="received 'adamw'"):
        O.get("adamw")
    with pytest.raises(ValueError, match="Could not interpret optimizer identifier"):
        O.get(3)


def test_default_names_are_unique_snake_case():
    a, b = O.RMSprop(), O.RMSprop()
    assert a.name.startswith("rm_sprop") and a.name != b.name          # Keras' snake case of 'RMSprop'
    assert keras.optimizers.RMSprop().name.startswith("rm_sprop")
    assert O.Adam(name="mine").name == "mine"


def test_errors():
    with pytest.raises(ValueError) as e:
        O.SGD(clipnorm=1.0, clipvalue=1.0)
    assert str(e.value) == ("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
                            "clipnorm=1.0, clipvalue=1.0, global_clipnorm=None")
    with pytest.raises(ValueError, match="momentum"):
        O.SGD(momentum=-0.1)
    with pytest.raises(ValueError, match="Argument `learning_rate` should be float"):
        O.Adam(learning_rate="fast")
    with pytest.raises(ValueError, match=r"Argument\(s\) not recognized"):
        O.Adam(beta_3=0.5)
    with pytest.raises(ValueError, match="use_ema"):
        O.Adam(use_ema=True)
    with pytest.raises(ValueError, match="clipnorm"):
        O.Adam(clipnorm=-1.0)
    with pytest.warns(UserWarning, match="`decay` is no longer supported"):
        O.SGD(decay=0.1)


def test_global_norm_with_inf_gives_nan_like_keras():
    kv, rv = pair(init_values())
    g = grad_steps()[0]
    g[0][0, 0] = np.inf
    keras.optimizers.SGD(0.1, global_clipnorm=1.0).apply_gradients(zip([torch.tensor(x) for x in g], kv))
    O.SGD(0.1, global_clipnorm=1.0).apply_gradients(zip(g, rv))
    for k, r in zip(kv, rv):
        np.testing.assert_array_equal(np.isnan(r.numpy()), np.isnan(k.numpy()))


def test_training_loop_with_tape_decreases_loss():
    if not hasattr(rb, "GradientTape"):
        pytest.skip("rnnbook has no GradientTape yet")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 6, 3)).astype("float32")
    y = (x.sum(axis=(1, 2)) > 0).astype("float32")[:, None]
    lstm, dense = rb.layers.LSTM(4), rb.layers.Dense(1)
    dense(lstm(x))
    weights = lstm.trainable_weights + dense.trainable_weights
    from rnnbook import losses as L
    opt, loss_fn = O.Adam(0.05), L.BinaryCrossentropy(from_logits=True)
    first = None
    for _ in range(30):
        with rb.GradientTape() as tape:
            loss = loss_fn(y, dense(lstm(x)))
        opt.apply_gradients(zip(tape.gradient(loss, weights), weights))
        first = float(loss) if first is None else first
    assert float(loss) < 0.7 * first
