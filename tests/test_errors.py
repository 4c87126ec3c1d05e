"""Errors users meet: each has the right type (a subclass of the built-in a
Python user would catch) and a message that says where and what to do."""

import inspect
import re

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy as tnp

f32 = np.float32


def line_of(fn, marker: str = "# <-") -> int:
    """The line number in this file of the line of ``fn`` marked with ``marker``."""
    lines, start = inspect.getsourcelines(fn)
    (offset,) = [i for i, text in enumerate(lines) if marker in text]
    return start + offset


def where(fn) -> str:
    return f"{__file__}:{line_of(fn)}"


# ---------------------------------------------------------- concretization
def branch_on_value(x):
    if tnp.sum(x) > 0:  # <-
        return x
    return -x


def call_bool(x):
    return x * bool(tnp.sum(x))  # <-


def call_float(x):
    return x * float(tnp.sum(x))  # <-


def call_int(x):
    return x * int(tnp.sum(x))  # <-


def call_item(x):
    return x * tnp.sum(x).item()  # <-


def call_asarray(x):
    return tnp.sum(np.asarray(x))  # <-


def loop_on_value(x):
    while tnp.max(x) < 100:  # <-
        x = x * 2
    return x


def index_a_list(x):
    table = [10.0, 20.0, 30.0]
    i = tnp.argmax(x)
    return x * table[i]  # <-


CONCRETIZATIONS = [
    (branch_on_value, "Python control flow"),
    (call_bool, "bool()"),
    (call_float, "float()"),
    (call_int, "int()"),
    (call_item, ".item()"),
    (call_asarray, "np.asarray"),
    (loop_on_value, "Python control flow"),
    (index_a_list, "Python index"),
]


@pytest.mark.parametrize("fn, what", CONCRETIZATIONS, ids=[f.__name__ for f, _ in CONCRETIZATIONS])
def test_python_needing_a_value_under_jit_raises_concretization_error_at_the_users_line(fn, what):
    with pytest.raises(tg.ConcretizationError) as info:
        tg.jit(fn)(np.array([1.0, 2.0, 3.0], f32))
    msg = str(info.value)
    assert isinstance(info.value, TypeError)
    assert what in msg
    assert where(fn) in msg
    assert f"(in {fn.__name__})" in msg
    for hint in ("lax.cond", "lax.while_loop", "static_argnums"):
        assert hint in msg


@pytest.mark.parametrize("fn, what", CONCRETIZATIONS, ids=[f.__name__ for f, _ in CONCRETIZATIONS])
def test_the_same_functions_run_outside_jit_on_numpy_arrays(fn, what):
    x = np.array([1.0, 2.0, 3.0], f32)
    out = fn(x)
    assert isinstance(out, (np.ndarray, np.generic))
    assert np.all(np.isfinite(out))


def test_the_concretization_message_quotes_the_offending_code():
    with pytest.raises(tg.ConcretizationError, match=r"if tnp\.sum\(x\) > 0:"):
        tg.jit(branch_on_value)(np.ones(3))


@pytest.mark.parametrize("fn, what", CONCRETIZATIONS, ids=[f.__name__ for f, _ in CONCRETIZATIONS])
def test_the_quoted_line_leaves_out_its_comment(fn, what):
    with pytest.raises(tg.ConcretizationError) as info:
        tg.jit(fn)(np.array([1.0, 2.0, 3.0], f32))
    first = str(info.value).splitlines()[0]
    assert "#" not in first, first  # each line above ends in the marker comment "# <-"
    code = inspect.getsource(fn).splitlines()[line_of(fn) - inspect.getsourcelines(fn)[1]].split("#")[0].strip()
    assert first.endswith(f": {code}."), first


def test_a_comment_sign_inside_a_string_is_kept_in_the_quoted_line():
    from tracegrad.source import _without_comment

    assert _without_comment('s = "a # b" + t  # note') == 's = "a # b" + t'
    assert _without_comment("y = f(x,  # an open bracket") == "y = f(x,"


def test_an_in_place_error_under_detect_anomaly_says_where_not_how_to_find_out():
    def run():
        x = tg.tensor([1.0, 2.0], requires_grad=True)
        y = tnp.exp(x)  # <-
        y += 1
        y.sum().backward()

    with pytest.raises(RuntimeError) as info:
        run()
    assert "tg.detect_anomaly() shows where exp was called" in str(info.value)  # the hint, where it helps
    with tg.detect_anomaly(), pytest.raises(RuntimeError) as info:
        run()
    message = str(info.value)
    assert "detect_anomaly" not in message
    assert f"{where(run)} (in run): y = tnp.exp(x)" in message and message.endswith("y = tnp.exp(x)")


def test_a_static_argument_makes_python_control_flow_work():
    def f(x, flag):
        if flag > 0:
            return x
        return -x

    jf = tg.jit(f, static_argnums=1)
    np.testing.assert_allclose(jf(np.ones(2), 1), 1.0)
    np.testing.assert_allclose(jf(np.ones(2), -1), -1.0)


# --------------------------------------------------------------- bad input
def add_mismatched(x, y):
    return x + y  # <-


def test_a_broadcasting_mismatch_names_both_shapes_and_the_users_line():
    with pytest.raises(tg.ShapeError) as info:
        tg.jit(add_mismatched)(np.ones((2, 3)), np.ones((4,)))
    msg = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "(2, 3)" in msg and "(4,)" in msg
    assert "broadcast" in msg
    assert where(add_mismatched) in msg


def test_a_broadcasting_mismatch_under_make_ir_is_the_same_error():
    with pytest.raises(tg.ShapeError, match=r"\(2, 3\) \(4,\)"):
        tg.make_ir(add_mismatched)(np.ones((2, 3)), np.ones((4,)))


@pytest.mark.parametrize("value, dtype", [
    (np.ones(3, np.complex64), "complex64"),
    (np.ones(3, np.float16), "float16"),
    (np.ones(3, np.int8), "int8"),
    (np.ones(3, np.uint32), "uint32"),
    (1 + 2j, "complex"),
])
def test_an_unsupported_dtype_argument_says_what_to_convert_to(value, dtype):
    with pytest.raises(tg.DTypeError) as info:
        tg.jit(lambda x: x * 2)(value)
    msg = str(info.value)
    assert isinstance(info.value, TypeError)
    assert "argument 'x'" in msg
    assert dtype in msg
    assert "float32" in msg and "float64" in msg  # what is supported / what to convert to


def test_an_unsupported_dtype_inside_a_pytree_names_the_leaf():
    with pytest.raises(tg.DTypeError, match=r"argument 'p\['b'\]' .* float16.*astype\(np\.float32\)"):
        tg.jit(lambda p: p["w"])({"w": np.ones(2), "b": np.ones(2, np.float16)})


@pytest.mark.parametrize("args, kwargs, words", [
    ((), {}, "missing a required argument: 'x'"),
    ((np.ones(2),), {}, "missing a required argument: 'y'"),
    ((np.ones(2), np.ones(2), np.ones(2)), {}, "too many positional arguments"),
    ((np.ones(2), np.ones(2)), {"z": np.ones(2)}, "unexpected keyword argument 'z'"),
])
def test_a_wrong_number_of_arguments_is_an_argument_error(args, kwargs, words):
    def f(x, y):
        return x + y

    with pytest.raises(tg.ArgumentError) as info:
        tg.jit(f)(*args, **kwargs)
    assert isinstance(info.value, TypeError)
    assert "f() called with the wrong arguments" in str(info.value)
    assert words in str(info.value)


def power_loss(x, n):
    return tnp.sum(x ** n)


@pytest.mark.parametrize("transform", [tg.grad, tg.value_and_grad, tg.jacrev, tg.hessian],
                         ids=["grad", "value_and_grad", "jacrev", "hessian"])
def test_a_missing_static_argument_through_a_transformation_names_the_missing_parameter(transform):
    """The transformed function takes power_loss's parameters, so a call that
    leaves out the static one says so, as it does for power_loss itself."""
    jf = tg.jit(transform(power_loss), static_argnums=(1,))
    for call in (lambda: jf(np.ones(3)), lambda: jf.lower(np.ones(3)).compile()):
        with pytest.raises(tg.ArgumentError, match=r"power_loss\(\) called with the wrong arguments: missing a "
                                                   r"required argument: 'n'"):
            call()
    jf(np.ones(3), 2)  # given, it runs
    with pytest.raises(tg.ArgumentError, match="missing a required argument: 'n'"):
        tg.jit(power_loss, static_argnums=(1,))(np.ones(3))


def test_static_argnums_beyond_a_call_of_a_varargs_function_says_what_the_call_passed():
    with pytest.raises(tg.ArgumentError, match=r"static_argnums contains 1, but <lambda>\(\) was called with 1 "
                                               r"positional argument \(it takes \*args\)"):
        tg.jit(lambda *a: a[0], static_argnums=(1,))(np.ones(3))
    with pytest.raises(tg.ArgumentError, match=r"takes 2 positional arguments: static_argnums counts its parameters"):
        tg.jit(power_loss, static_argnums=(2,))(np.ones(3), 2)


@pytest.mark.parametrize("leaf, kind", [("relu", "str"), (object(), "object"), (np.ones, "function")])
def test_a_non_array_leaf_names_its_path_in_the_pytree(leaf, kind):
    def f(params, x):
        return params["w"][0] @ x

    with pytest.raises(tg.ArgumentError) as info:
        tg.jit(f)({"w": [np.ones((2, 2)), leaf]}, np.ones(2))
    msg = str(info.value)
    assert f"argument 'params['w'][1]' of f() is a {kind}, not an array" in msg
    assert "static_argnums" in msg


def test_an_unhashable_static_argument_is_an_argument_error():
    jf = tg.jit(lambda x, sizes: x * len(sizes), static_argnums=1)
    with pytest.raises(tg.ArgumentError, match=r"static argument 'sizes' must be hashable, got a list.*tuple"):
        jf(np.ones(2), [1, 2])
    np.testing.assert_allclose(jf(np.ones(2), (1, 2)), 2.0)  # the advice works


def sum_bad_axis(x):
    return tnp.sum(x, axis=2)  # <-


def test_an_axis_out_of_range_is_an_axis_error_naming_the_line():
    with pytest.raises(tg.AxisError) as info:
        tg.jit(sum_bad_axis)(np.ones((2, 3)))
    assert isinstance(info.value, IndexError)
    msg = str(info.value)
    assert "axis 2 is out of bounds for array of dimension 2" in msg
    assert where(sum_bad_axis) in msg


def test_an_axis_error_outside_jit_is_the_same_type():
    with pytest.raises(tg.AxisError, match="out of bounds"):
        tnp.sum(np.ones((2, 3)), axis=-3)


# ---------------------------------------------------------- escaped tracers
def test_a_tracer_stored_during_a_jit_trace_cannot_be_used_afterwards():
    leaked = []

    @tg.jit
    def f(x):
        y = x * 2
        leaked.append(y)
        return y

    f(np.ones(3))
    (tracer,) = leaked
    assert isinstance(tracer, tg.Tracer)
    for use in (lambda: tracer + 1, lambda: tnp.exp(tracer), lambda: np.sin(tracer),
                lambda: tg.jit(lambda x: x * 2)(tracer), lambda: tg.jit(lambda x: tracer)(np.ones(3))):
        with pytest.raises(tg.EscapedTracerError) as info:
            use()
        assert isinstance(info.value, RuntimeError)
        msg = str(info.value)
        assert "finished trace of 'f'" in msg
        assert "global" in msg


def test_an_inner_trace_captures_an_enclosing_value_as_an_extra_input():
    graphs = []

    def outer(x):
        graphs.append(tg.make_ir(lambda y: x * tnp.sum(y))(np.ones(2)))  # the inner trace closes over x
        return x

    tg.jit(outer)(np.ones(3))
    (inner,) = graphs
    assert [str(v.type) for v in inner.inputs] == ["f64[2]", "f64[3]"]
    assert str(inner).splitlines()[2] == "    d: f64[3] = mul b c"


def test_every_error_is_a_tracegrad_error():
    for cls in (tg.ShapeError, tg.DTypeError, tg.AxisError, tg.ConcretizationError, tg.ArgumentError,
                tg.EscapedTracerError, tg.VerificationError):
        assert issubclass(cls, tg.TracegradError)


# ---------------------------------------------------------------- debug_nans
def sqrt_of_numpy(x):
    return tnp.sqrt(x)  # <-


def sum_of_sqrt(x):
    return tnp.sum(tnp.sqrt(x))  # <-


def logs_in_a_loop(x):
    def body(i, c):
        return c + tnp.log(x - 1.0 * i)  # <-

    return tnp.sum(tg.lax.fori_loop(0, 3, body, tnp.zeros_like(x)))


def test_debug_nans_on_numpy_arrays_names_the_equation_and_the_users_line():
    with tg.debug_nans(), pytest.raises(FloatingPointError) as info:
        sqrt_of_numpy(np.array([-1.0]))
    message = str(info.value)
    assert message.startswith("debug_nans: 'sqrt' produced nan in f64[1] (equation `f64[1] = sqrt f64[1]`), at ")
    assert f"{where(sqrt_of_numpy)} (in sqrt_of_numpy): return tnp.sqrt(x)" in message
    assert message == message.strip()


def test_debug_nans_says_the_same_of_a_derivative_outside_and_inside_jit():
    """Outside jit the derivative is computed at once, with no program to name
    its variable: the types stand in for the names, in the same sentence."""
    x = np.array([1.0, 0.0, 4.0])
    messages = {}
    for how, run in (("eager", tg.grad(sum_of_sqrt)), ("jit", tg.jit(tg.grad(sum_of_sqrt))),
                     ("interpret", tg.jit(tg.grad(sum_of_sqrt), backend="interpret"))):
        with tg.debug_nans(), pytest.raises(FloatingPointError) as info:
            run(x)
        messages[how] = str(info.value)
    assert messages["eager"].startswith("debug_nans: 'div' produced inf in f64[3] (equation `f64[3] = div f64[3] "
                                        "f64[3]`, in the derivative of sqrt), at " + where(sum_of_sqrt))
    assert messages["jit"] == messages["interpret"]
    named = re.sub(r"= div [a-z]+ [a-z]+", "= div f64[3] f64[3]", re.sub(r"\b[a-z]+: f64", "f64", messages["jit"]))
    assert named == messages["eager"], (messages["jit"], messages["eager"])


def test_debug_nans_inside_a_loop_body_names_variables_as_the_programs_dump():
    """The checked native build and the interpreter say the same (test_runtime checks that); both name
    a variable of the loop body as the whole program's dump names it, not as the body alone would."""
    x = np.array([1.5, 2.5])
    with tg.debug_nans(), pytest.raises(FloatingPointError) as info:
        tg.jit(logs_in_a_loop)(x)
    message = str(info.value)
    assert where(logs_in_a_loop) in message
    name = message.split("produced nan in ")[1].split(":")[0]
    dump = tg.jit(logs_in_a_loop).lower(x).as_text("optimized")
    assert f"{name}: f64[2] = log" in dump


# ------------------------------------------------------------ eager Tensors given to traced transformations
def sum_of_squares(x):
    return tnp.sum(x * x)


@pytest.mark.parametrize("call", [
    lambda t: tg.jit(sum_of_squares)(t),
    lambda t: tg.grad(sum_of_squares)(t),
    lambda t: tg.value_and_grad(sum_of_squares)(t),
    lambda t: tg.jacfwd(sum_of_squares)(t),
    lambda t: tg.vjp(sum_of_squares, t),
    lambda t: tg.jvp(sum_of_squares, (t,), (np.ones(2, f32),)),
], ids=["jit", "grad", "value_and_grad", "jacfwd", "vjp", "jvp"])
def test_a_tensor_given_to_a_traced_transformation_says_to_pass_an_array_or_run_eager(call):
    t = tg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(tg.ArgumentError, match=r"is an eager tg.Tensor: .*Pass t.detach\(\).numpy\(\), or call the "
                                               r"function directly on Tensors"):
        call(t)
