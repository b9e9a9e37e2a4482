# Host model of prefillKernel's causal tiling (csrc/cuda/prefill.cu) for one (sequence, head):
# 128-row query tiles, per-warp tile skipping, the mask condition, zero-filled keys past kvEnd,
# and the online softmax; compared with a direct causal softmax for chunked prefill shapes.
#   python3 tools/cuda-check/models/prefill.py
import numpy as np
rng = np.random.default_rng(2)
LOG2E = 1.4426950408889634
BM = 128

def prefill_seq(Q, K, V, ctx, scale, BN):
    qLen, D = Q.shape
    p0 = ctx - qLen
    out = np.zeros((qLen, D))
    for m0 in range(0, qLen, BM):
        rowsHere = min(BM, qLen - m0)
        kvEnd = p0 + m0 + rowsHere
        nTiles = (kvEnd + BN - 1) // BN
        Qt = np.zeros((BM, D)); Qt[:rowsHere] = Q[m0:m0 + rowsHere]
        for warp in range(BM // 16):
            wr0 = warp * 16
            warpMin = p0 + m0 + wr0; warpMax = warpMin + 15
            m = np.full(16, -np.inf); l = np.zeros(16); o = np.zeros((16, D))
            for j in range(nTiles):
                n0 = j * BN
                if not (n0 <= warpMax):
                    continue
                Kt = np.zeros((BN, D)); Vt = np.zeros((BN, D))
                valid = min(BN, kvEnd - n0)
                Kt[:valid] = K[n0:n0 + valid]; Vt[:valid] = V[n0:n0 + valid]
                s = (Qt[wr0:wr0 + 16] @ Kt.T) * scale * LOG2E
                if n0 + BN - 1 > warpMin:
                    pos = warpMin + np.arange(16)[:, None]
                    key = n0 + np.arange(BN)[None, :]
                    s = np.where(key > pos, -np.inf, s)
                mx = np.maximum(m, s.max(1))
                ref = np.where(mx == -np.inf, 0, mx)
                alpha = np.exp2(m - ref)
                m = mx
                p = np.exp2(s - ref[:, None])
                l = l * alpha + p.sum(1)
                o = o * alpha[:, None] + p @ Vt
            for r in range(16):
                row = m0 + wr0 + r
                if row < qLen:
                    out[row] = o[r] / l[r] if l[r] > 0 else 0
    return out

for qLen, ctx, BN in [(70, 70, 64), (1, 40, 64), (130, 200, 64), (200, 1000, 64), (3, 500, 32), (129, 129, 32), (65, 300, 64)]:
    D = 16
    K = rng.standard_normal((ctx, D)); V = rng.standard_normal((ctx, D)); Q = rng.standard_normal((qLen, D))
    got = prefill_seq(Q, K, V, ctx, 0.3, BN)
    p0 = ctx - qLen
    for i in range(qLen):
        n = p0 + i + 1
        s = K[:n] @ Q[i] * 0.3; p = np.exp(s - s.max())
        assert np.allclose(got[i], p @ V[:n] / p.sum()), (qLen, ctx, BN, i)
    print("ok", qLen, ctx, BN)
