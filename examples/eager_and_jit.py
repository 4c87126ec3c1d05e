"""One model, two ways to run it: define-by-run on eager Tensors (a tape
recorded as the operations execute, PyTorch's autograd) and trace-and-compile
under jit (JAX's way). The model is written once with tracegrad.numpy."""

import time

import numpy as np

import tracegrad as tg
import tracegrad.numpy as tnp


def loss(w1, b1, w2, b2, x, labels):
    """A two-layer classifier's mean softmax cross-entropy."""
    h = tnp.tanh(x @ w1 + b1)
    logits = h @ w2 + b2
    top = tnp.max(logits, axis=1, keepdims=True)
    log_z = tnp.log(tnp.sum(tnp.exp(logits - top), axis=1, keepdims=True)) + top
    return -tnp.mean(tnp.sum(labels * (logits - log_z), axis=1))


rng = np.random.default_rng(0)
params = [rng.standard_normal((16, 32)).astype(np.float32) * 0.3, np.zeros(32, np.float32),
          rng.standard_normal((32, 4)).astype(np.float32) * 0.3, np.zeros(4, np.float32)]
x = rng.standard_normal((64, 16)).astype(np.float32)
labels = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 64)]

# Eager: Tensors that require grad; every operation runs at once and is taped.
tensors = [tg.tensor(p, requires_grad=True) for p in params]
value = loss(*tensors, tg.tensor(x), tg.tensor(labels))
print("eager loss:", value)                          # a Tensor with its history...
print("its grad_fn:", value.grad_fn.name, "<-", [f.name for f, _ in value.grad_fn.next_functions if f])
value.backward()                                     # ...replayed backwards into the leaves' .grad
eager_grads = [t.grad.numpy() for t in tensors]

# Compiled: the same function traced once into the IR, differentiated as a graph, compiled to native code.
step = tg.jit(tg.value_and_grad(loss, argnums=(0, 1, 2, 3)))
jit_value, jit_grads = step(*params, x, labels)
print("jit loss:  ", jit_value)
worst = max(float(np.max(np.abs(e - j))) for e, j in zip(eager_grads, jit_grads))
print(f"largest gradient difference, eager against jit: {worst:.2e}")
assert worst < 1e-5

# The difference shows in what each keeps (a tape of Python objects, or one native program) and in the time.
def eager_step():
    ts = [tg.tensor(p, requires_grad=True) for p in params]
    loss(*ts, tg.tensor(x), tg.tensor(labels)).backward()


for name, run in (("eager", eager_step), ("jit", lambda: step(*params, x, labels))):
    run()
    start = time.perf_counter()
    for _ in range(50):
        run()
    print(f"{name:>5}: {(time.perf_counter() - start) / 50 * 1e3:.3f} ms per value-and-gradient")
