"""Lesson 5: the eager tape's bookkeeping: gradient accumulation and zeroing,
retain_graph, no_grad and detach (PyTorch's semantics).

- backward() *adds* into .grad, so gradients from several backward calls
  accumulate, which is useful for micro-batches and a bug when you forget
  to zero them between steps.
- backward() frees the values the graph saved for it; a second backward
  through the same graph needs retain_graph=True the first time.
- tg.no_grad() records nothing: use it for parameter updates and evaluation.
- .detach() gives the same numbers cut off from the graph: a constant.

Run: .venv/bin/python examples/05_accumulation_retain_graph_no_grad.py
"""

import tracegrad as tg
import tracegrad.numpy as tnp

w = tg.tensor([1.0, -2.0], requires_grad=True)


def loss(w):
    return tnp.sum(w * w)        # d/dw = 2w = [2, -4]


print("## 1. Gradients accumulate across backward calls")
for step in range(3):
    loss(w).backward()
    print(f"after backward #{step + 1}: w.grad = {w.grad.numpy()}")
print("three backward calls, three times 2w: .grad is a running sum, not the latest gradient.")

print("\n## 2. Zeroing between steps")
w.grad.zero_()
print(f"w.grad.zero_()  -> {w.grad.numpy()}")
w.grad = None
print(f"w.grad = None   -> {w.grad}   (what optimizer.zero_grad(set_to_none=True) does)")
loss(w).backward()
print(f"one fresh backward -> {w.grad.numpy()}")

print("\n## 3. retain_graph: backward frees the saved values")
w.grad = None
y = loss(w)
y.backward(retain_graph=True)
print(f"first backward with retain_graph=True: w.grad = {w.grad.numpy()}")
y.backward()
print(f"second backward through the same graph: w.grad = {w.grad.numpy()} (accumulated), graph now freed")
try:
    y.backward()
except RuntimeError as error:
    print(f"a third backward raises RuntimeError:\n    {error}")

print("\n## 4. no_grad: nothing is recorded")
with tg.no_grad():
    z = w * 3
print(f"under no_grad: z.requires_grad = {z.requires_grad}, z.grad_fn = {z.grad_fn}")
z = w * 3
print(f"outside:       z.requires_grad = {z.requires_grad}, z.grad_fn = {z.grad_fn.name}")
w.grad = None
loss(w).backward()
with tg.no_grad():
    w -= 0.1 * w.grad          # an SGD step on the leaf itself; no_grad keeps it off the tape
print(f"SGD step under no_grad: w = {w.data}, still a leaf: {w.is_leaf}, requires_grad: {w.requires_grad}")

print("\n## 5. detach: the same numbers, treated as a constant")
w.grad = None
c = w.detach()
print(f"c = w.detach(): c.requires_grad = {c.requires_grad}; c shares w's values: {c.numpy()}")
tnp.sum(w * c).backward()
print(f"d/dw sum(w * w.detach()) = {w.grad.numpy()}   (= c: only the first factor carries a gradient)")
w.grad = None
tnp.sum(w * w).backward()
print(f"d/dw sum(w * w)          = {w.grad.numpy()}   (= 2w: both factors do)")
