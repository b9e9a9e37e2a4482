# Host model of decodeKernel + decodeReduceKernel (csrc/cuda/decode.cuh) control flow for one
# (row, head): key groups walking every S-th key KPT at a time with their own online softmax
# (log2 domain), the merge across key groups, and the log-sum-exp merge across partitions,
# including empty partitions and contextLen 0. Compared with a direct softmax in float64.
#   python3 tools/cuda-check/models/decode.py
import numpy as np
rng = np.random.default_rng(1)
LOG2E = 1.4426950408889634

def kernel_part(q, K, V, scale, kBegin, kEnd, S, KPT):
    D = q.shape[0]
    qs = q * scale * LOG2E
    m = np.full(S, -np.inf); l = np.zeros(S); acc = np.zeros((S, D))
    base = kBegin
    while base < kEnd:
        for slot in range(S):
            s = np.full(KPT, -np.inf); vs = np.zeros((KPT, D))
            for k in range(KPT):
                key = base + k * S + slot
                if key < kEnd:
                    s[k] = qs @ K[key]; vs[k] = V[key]
            mx = max(m[slot], s.max())
            ref = 0.0 if mx == -np.inf else mx
            alpha = np.exp2(m[slot] - ref)
            m[slot] = mx
            p = np.exp2(s - ref)
            l[slot] = l[slot] * alpha + p.sum()
            acc[slot] = acc[slot] * alpha + p @ vs
        base += S * KPT
    mx = m.max(); ref = 0.0 if mx == -np.inf else mx
    L = (l * np.exp2(m - ref)).sum()
    O = (acc * np.exp2(m - ref)[:, None]).sum(0)
    return (O / L if L > 0 else np.zeros(D)), (mx + np.log2(L) if L > 0 else -np.inf)

def decode(q, K, V, ctx, scale, S, KPT, parts, partKeys):
    Os, lses = [], []
    for p in range(parts):
        kBegin = p * partKeys; kEnd = min(ctx, kBegin + partKeys)
        O, lse = kernel_part(q, K, V, scale, kBegin, kEnd, S, KPT)
        Os.append(O); lses.append(lse)
    if parts == 1:
        return Os[0]
    lses = np.array(lses); mx = lses.max(); ref = 0.0 if mx == -np.inf else mx
    w = np.exp2(lses - ref); tot = w.sum()
    return (w[:, None] * np.array(Os)).sum(0) / tot if tot > 0 else np.zeros_like(q)

for ctx, S, KPT, parts, partKeys in [(0, 8, 4, 1, 1), (1, 8, 4, 1, 1), (77, 16, 4, 1, 77), (1000, 8, 4, 4, 256),
                                     (1000, 4, 2, 3, 384), (130, 8, 4, 4, 64), (5000, 4, 4, 5, 1024)]:
    D = 16
    K = rng.standard_normal((max(ctx, 1), D)) * 3; V = rng.standard_normal((max(ctx, 1), D)); q = rng.standard_normal(D)
    got = decode(q, K, V, ctx, 0.25, S, KPT, parts, partKeys)
    if ctx == 0:
        ref = np.zeros(D)
    else:
        s = (K[:ctx] @ q) * 0.25; p = np.exp(s - s.max()); ref = p @ V[:ctx] / p.sum()
    assert np.allclose(got, ref), (ctx, S, KPT, parts)
    print("ok", ctx, S, KPT, parts, partKeys)
