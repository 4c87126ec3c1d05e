"""Lesson 12: training loops: linear regression, XOR and an MLP, gradient
clipping by value and by global norm, and gradient accumulation over micro-batches.

A training loop is: loss, gradient, update, repeat. Linear regression (a
convex problem) checks the loop against the closed-form answer; XOR needs a
hidden layer and trains eagerly, PyTorch-style; an MLP on two spirals trains
compiled, with Adam and the gradient clipped by its global norm. Clipping by
value changes the gradient's direction, by global norm only its length.
Gradients of a mean loss over micro-batches, weighted by their sizes and
added, are the full batch's gradient: that is how large batches fit in memory.

Run: .venv/bin/python examples/12_training_loops.py
"""

import numpy as np

import tracegrad as tg
import tracegrad.numpy as tnp
from tracegrad import nn, optim

rng = np.random.default_rng(0)

print("## 1. Linear regression, compiled, against the closed-form least-squares answer")
X = rng.standard_normal((200, 3))
w_true, b_true = np.array([2.0, -1.0, 0.5]), 0.3
y = X @ w_true + b_true + 0.1 * rng.standard_normal(200)


def mse_loss(params, X, y):
    w, b = params
    return nn.mse(X @ w + b, y)


opt = optim.sgd(0.1)


@tg.jit
def step(params, state, X, y):
    loss, grads = tg.value_and_grad(mse_loss)(params, X, y)
    params, state = opt.update(grads, state, params)
    return params, state, loss


params, state = (np.zeros(3), np.zeros(())), opt.init((np.zeros(3), np.zeros(())))
for i in range(201):
    params, state, loss = step(params, state, X, y)
    if i % 50 == 0:
        print(f"    step {i:3d}  loss {float(loss):.5f}")
exact = np.linalg.lstsq(np.c_[X, np.ones(200)], y, rcond=None)[0]
print(f"learned w {params[0]}, b {float(params[1]):.4f}")
print(f"lstsq   w {exact[:3]}, b {exact[3]:.4f}   (true w {w_true}, b {b_true})")

print("\n## 2. XOR in eager mode: backward, an SGD step under no_grad, zero the grads")
xor_x = tg.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
xor_y = np.array([0, 1, 1, 0])
w1 = tg.tensor(nn.glorot_normal(rng, (2, 8)), requires_grad=True)
b1 = tg.tensor(np.zeros(8, np.float32), requires_grad=True)
w2 = tg.tensor(nn.glorot_normal(rng, (8, 2)), requires_grad=True)
b2 = tg.tensor(np.zeros(2, np.float32), requires_grad=True)
xor_params = [w1, b1, w2, b2]
for i in range(301):
    logits = tnp.tanh(xor_x @ w1 + b1) @ w2 + b2
    loss = nn.cross_entropy(logits, xor_y)
    loss.backward()
    with tg.no_grad():
        for p in xor_params:
            p -= 0.5 * p.grad
            p.grad = None
    if i % 100 == 0:
        print(f"    step {i:3d}  loss {loss.item():.4f}")
print(f"predictions {np.argmax(logits.data, axis=1)} for targets {xor_y}: "
      f"no line separates XOR's classes, a hidden layer of 8 units does")

print("\n## 3. Clipping: by value changes the direction, by global norm keeps it")
grads = {"w": np.array([3.0, -0.5]), "b": np.array([4.0])}
by_value = optim.clip_by_value(grads, -1.0, 1.0)
by_norm, norm = optim.clip_by_global_norm(grads, 1.0)
flat = lambda g: np.concatenate([g["w"], g["b"]])
cosine = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
print(f"gradient               {flat(grads)}, global norm {float(norm):.3f}")
print(f"clip_by_value(-1, 1)   {flat(by_value)}, norm {np.linalg.norm(flat(by_value)):.3f}, "
      f"cosine with the original {cosine(flat(by_value), flat(grads)):.3f}")
print(f"clip_by_global_norm(1) {flat(by_norm)}, norm {np.linalg.norm(flat(by_norm)):.3f}, "
      f"cosine with the original {cosine(flat(by_norm), flat(grads)):.3f}")

print("\n## 4. An MLP on two spirals, compiled: Adam, gradients clipped to global norm 0.5")


def spirals(n):
    """Two interleaved spirals of 2.5 turns, with noise: points (n, 2) and labels 0 or 1."""
    t = np.sqrt(rng.uniform(0.05, 1.0, n)) * 5 * np.pi
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (5 * np.pi)
    labels = rng.integers(0, 2, n)
    return (np.where(labels[:, None] == 0, arm, -arm) + 0.05 * rng.standard_normal((n, 2))).astype(np.float32), labels


(x_train, y_train), (x_test, y_test) = spirals(256), spirals(256)
mlp = {"w1": nn.he_normal(rng, (2, 64)), "b1": nn.zeros(rng, (64,)), "w2": nn.he_normal(rng, (64, 64)),
       "b2": nn.zeros(rng, (64,)), "w3": nn.glorot_normal(rng, (64, 2)), "b3": nn.zeros(rng, (2,))}


def logits_of(p, x):
    h = nn.relu(x @ p["w1"] + p["b1"])
    h = nn.relu(h @ p["w2"] + p["b2"])
    return h @ p["w3"] + p["b3"]


def ce_loss(p, x, y):
    return nn.cross_entropy(logits_of(p, x), y)


adam = optim.adam(1e-2)
MAX_NORM = 0.5
accuracy = lambda p, x, y: np.mean(np.argmax(tg.jit(logits_of)(p, x), axis=1) == y)


@tg.jit
def train_step(p, state, x, y):
    loss, grads = tg.value_and_grad(ce_loss)(p, x, y)
    grads, norm = optim.clip_by_global_norm(grads, MAX_NORM)
    p, state = adam.update(grads, state, p)
    return p, state, loss, norm


state = adam.init(mlp)
clipped = 0
for i in range(401):
    mlp, state, loss, norm = train_step(mlp, state, x_train, y_train)
    clipped += float(norm) > MAX_NORM
    if i % 100 == 0:
        print(f"    step {i:3d}  loss {float(loss):.4f}  train accuracy {accuracy(mlp, x_train, y_train):.3f}  "
              f"gradient norm before clipping {float(norm):.3f}")
print(f"accuracy on 256 new points: {accuracy(mlp, x_test, y_test):.3f}; "
      f"{clipped} of 401 steps had a gradient longer than {MAX_NORM} and were scaled down to it")

print("\n## 5. Gradient accumulation over micro-batches equals the full-batch gradient")
full = tg.grad(ce_loss)(mlp, x_train, y_train)
accumulated = {k: np.zeros_like(v) for k, v in mlp.items()}
for lo, hi in ((0, 100), (100, 200), (200, 256)):           # unequal sizes: weight each mean by its share
    micro = tg.grad(ce_loss)(mlp, x_train[lo:hi], y_train[lo:hi])
    for k in accumulated:
        accumulated[k] += micro[k] * (hi - lo) / len(x_train)
diff = max(float(np.max(np.abs(full[k] - accumulated[k]))) for k in full)
print(f"traced: 3 micro-batches (100, 100, 56), weighted and summed; largest difference from the full batch {diff:.1e}")

eager_params = {k: tg.tensor(v, requires_grad=True) for k, v in mlp.items()}
for lo, hi in ((0, 100), (100, 200), (200, 256)):
    micro_loss = ce_loss(eager_params, tg.tensor(x_train[lo:hi]), y_train[lo:hi]) * ((hi - lo) / len(x_train))
    micro_loss.backward()                                  # .grad accumulates across the three calls
diff = max(float(np.max(np.abs(full[k] - eager_params[k].grad.numpy()))) for k in full)
print(f"eager: three backward calls into the same .grad, no zeroing in between; largest difference {diff:.1e}")
