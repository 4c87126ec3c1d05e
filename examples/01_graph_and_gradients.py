"""Lesson 1: the computational graph of f(x, y) = (x + y) * x, and its gradients.

A program is a graph of primitive operations. Reverse-mode differentiation
walks that graph from the output back to the inputs, multiplying the gradient
that arrives at each node by the node's local derivative (the chain rule).
This script prints the graph tracegrad traces, differentiates it by hand,
checks the result against tg.grad, and walks the same graph as eager mode
records it on its tape (grad_fn / next_functions, as in PyTorch).

Run: .venv/bin/python examples/01_graph_and_gradients.py
"""

import tracegrad as tg


def f(x, y):
    s = x + y
    return s * x


x, y = 2.0, 3.0

print("## 1. The graph: tg.make_ir(f)(x, y)")
print(tg.make_ir(f)(x, y))
print("one line per primitive: c = a + b is s, d = c * a is f. The input a (x) feeds both lines.")

print("\n## 2. Gradients by hand, from the output back")
s = x + y
out = s * x
g_out = 1.0                    # df/df
g_s = g_out * x                # d(s*x)/ds = x
g_x = g_out * s + g_s * 1.0    # x is used twice: directly in s*x, and through s = x + y
g_y = g_s * 1.0                # ds/dy = 1
print(f"f({x}, {y}) = (x + y) * x = {out}")
print(f"df/ds = x                       = {g_s}")
print(f"df/dx = s + df/ds * ds/dx = {s} + {g_s} = {g_x}   (on paper: 2x + y)")
print(f"df/dy = df/ds * ds/dy     = {g_s} * 1 = {g_y}   (on paper: x)")

print("\n## 3. The same by tg.grad")
gx, gy = tg.grad(f, argnums=(0, 1))(x, y)
print(f"tg.grad(f, argnums=(0, 1))({x}, {y}) = ({gx}, {gy})   same as by hand: {(gx, gy) == (g_x, g_y)}")
print("the program tg.grad builds: the forward equations, then one backward equation per local derivative:")
print(tg.make_ir(tg.grad(f, argnums=(0, 1)))(x, y))
print("e = 1 * a is df/ds (and df/dy); f = c * 1 is the direct path to x; g = f + e adds the two paths: df/dx.")
print("after the optimisation passes (multiplications by 1 and the unused forward product removed):")
print(tg.jit(tg.grad(f, argnums=(0, 1))).lower(x, y).as_text("optimized"))

print("\n## 4. The same graph on the eager tape")
xt, yt = tg.tensor(x, requires_grad=True), tg.tensor(y, requires_grad=True)
z = f(xt, yt)   # runs at once, and records a node per operation
print(f"z = {z}")


def walk(node, depth=0):
    """Print the backward graph: each node, then the nodes its gradient flows into."""
    label = node.name
    if label == "AccumulateGrad":
        label += f"  -> .grad of the leaf holding {node.variable.item()}"
    print("    " * depth + label)
    for child, _ in node.next_functions:
        if child is not None:
            walk(child, depth + 1)


walk(z.grad_fn)
print("AccumulateGrad for x appears twice: two paths lead back to x, and backward adds what each brings.")
z.backward()
print(f"after z.backward(): x.grad = {xt.grad.item()}, y.grad = {yt.grad.item()}   (as tg.grad: {gx}, {gy})")
