"""Compares the loss curves of training runs (metrics.jsonl of each run folder): the first run is
the reference, the second the one under test, the third the reference's twin from another seed
(the noise). Prints a markdown table; --svg writes the three smoothed curves.
Usage: python3 compare_curves.py REF TEST NOISE [--svg FILE]
"""
import argparse
import json
import os

ap = argparse.ArgumentParser()
ap.add_argument("runs", nargs=3)
ap.add_argument("--svg")
ap.add_argument("--window", type=int, default=20, help="steps in the moving average")
a = ap.parse_args()


def load(run):
    train, val = {}, {}
    with open(os.path.join(run, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if "loss" in r:
                train[r["step"]] = r["loss"]
            if "val_loss" in r:
                val[r["step"]] = r["val_loss"]
    return train, val


def smooth(train, w):
    steps = sorted(train)
    return {s: sum(train[t] for t in steps[max(0, i - w + 1):i + 1]) / len(steps[max(0, i - w + 1):i + 1])
            for i, s in enumerate(steps)}


runs = [load(r) for r in a.runs]
names = [os.path.basename(r.rstrip("/")) for r in a.runs]
sm = [smooth(t, a.window) for t, _ in runs]
steps = sorted(set(sm[0]) & set(sm[1]) & set(sm[2]))
late = [s for s in steps if s > steps[-1] // 2]  # the second half, past the steep start


def mean_gap(x, y):
    return sum(abs(x[s] - y[s]) for s in late) / len(late)


print(f"| step | {' | '.join(names)} |")
print("|---:|" + "---:|" * 3)
for s in [s for s in steps if s % 40 == 0 or s == steps[-1]]:
    print(f"| {s} | " + " | ".join(f"{m[s]:.3f}" for m in sm) + " |")
vsteps = sorted(set(runs[0][1]) & set(runs[1][1]) & set(runs[2][1]))
for s in vsteps:
    print(f"| val {s} | " + " | ".join(f"{r[1][s]:.3f}" for r in runs) + " |")
print()
print(f"train loss ({a.window}-step average), mean |difference| over steps {late[0]}-{late[-1]}:")
print(f"  {names[1]} vs {names[0]}: {mean_gap(sm[1], sm[0]):.4f}")
print(f"  {names[2]} vs {names[0]} (seed noise): {mean_gap(sm[2], sm[0]):.4f}")

if a.svg:
    W, H, pad = 640, 360, 40
    lo = min(min(m[s] for s in steps) for m in sm)
    hi = max(max(m[s] for s in steps) for m in sm)
    def xy(s, v):
        return pad + (W - 2 * pad) * (s - steps[0]) / max(1, steps[-1] - steps[0]), \
            H - pad - (H - 2 * pad) * (v - lo) / max(1e-9, hi - lo)
    colors = ["#1f77b4", "#d62728", "#7f7f7f"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
             f'<rect width="{W}" height="{H}" fill="white"/>',
             f'<text x="{pad}" y="20">train loss, {a.window}-step average ({lo:.2f} to {hi:.2f})</text>']
    for k, m in enumerate(sm):
        pts = " ".join("%.1f,%.1f" % xy(s, m[s]) for s in steps)
        parts.append(f'<polyline fill="none" stroke="{colors[k]}" stroke-width="1.5" points="{pts}"/>')
        parts.append(f'<text x="{W - pad - 150}" y="{40 + 16 * k}" fill="{colors[k]}">{names[k]}</text>')
    parts.append("</svg>")
    with open(a.svg, "w") as f:
        f.write("\n".join(parts) + "\n")
    print(f"curves: {a.svg}")
