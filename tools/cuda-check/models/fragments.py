# Host model of the prefill kernel's tensor-core data movement (csrc/cuda/prefill.cu), runnable
# without a GPU: ldmatrix (plain and .trans) and mma.m16n8k16 are emulated per lane as the PTX ISA
# defines their fragments, the kernel's shared-memory address expressions are used as written,
# and S = Q K^T and O = P V are compared with numpy for every supported head dim. Also checks
# that each ldmatrix phase hits 32 distinct banks with the padded row stride.
#   python3 tools/cuda-check/models/fragments.py
import numpy as np
rng = np.random.default_rng(0)

def ldmatrix_x4(sm, addr, trans):
    # addr(l) -> (row, col) of the 8-element row that lane l points at
    rows = [sm[r, c:c+8] for (r, c) in (addr(l) for l in range(32))]
    regs = np.zeros((32, 4, 2))
    for L in range(32):
        g, t = L // 4, L % 4
        for mi in range(4):
            if not trans:
                regs[L, mi] = rows[mi*8 + g][2*t:2*t+2]
            else:
                regs[L, mi] = [rows[mi*8 + 2*t][g], rows[mi*8 + 2*t + 1][g]]
    return regs

def mma(c, a, b0, b1):
    # c: [32][4], a: [32][4][2], b0,b1: [32][2]
    A = np.zeros((16, 16)); B = np.zeros((16, 8)); C = np.zeros((16, 8))
    for L in range(32):
        g, t = L // 4, L % 4
        A[g, 2*t:2*t+2] = a[L, 0]; A[g+8, 2*t:2*t+2] = a[L, 1]
        A[g, 2*t+8:2*t+10] = a[L, 2]; A[g+8, 2*t+8:2*t+10] = a[L, 3]
        B[2*t:2*t+2, g] = b0[L]; B[2*t+8:2*t+10, g] = b1[L]
        C[g, 2*t:2*t+2] = c[L, 0:2]; C[g+8, 2*t:2*t+2] = c[L, 2:4]
    C = C + A @ B
    out = np.zeros((32, 4))
    for L in range(32):
        g, t = L // 4, L % 4
        out[L, 0:2] = C[g, 2*t:2*t+2]; out[L, 2:4] = C[g+8, 2*t:2*t+2]
    return out

for D, BN in [(64, 64), (80, 64), (96, 64), (128, 64), (256, 32)]:
    LD = D + 8
    wr0 = 112  # the last warp of a 128-row tile
    Qs = rng.standard_normal((128, LD)); Kb = rng.standard_normal((BN, LD)); Vb = rng.standard_normal((BN, LD))
    s = np.zeros((BN // 8, 32, 4))
    for ks in range(D // 16):
        af = ldmatrix_x4(Qs, lambda ln: (wr0 + (ln & 7) + ((ln >> 3) & 1) * 8, ks * 16 + (ln >> 4) * 8), False)
        for np_ in range(BN // 16):
            bf = ldmatrix_x4(Kb, lambda ln: (np_ * 16 + (ln & 7) + (ln >> 4) * 8, ks * 16 + ((ln >> 3) & 1) * 8), False)
            s[2*np_] = mma(s[2*np_], af, bf[:, 0], bf[:, 1])
            s[2*np_+1] = mma(s[2*np_+1], af, bf[:, 2], bf[:, 3])
    S = np.zeros((16, BN))
    for nt in range(BN // 8):
        for L in range(32):
            g, t = L // 4, L % 4
            S[g, nt*8 + 2*t: nt*8 + 2*t + 2] = s[nt, L, 0:2]; S[g+8, nt*8 + 2*t: nt*8 + 2*t + 2] = s[nt, L, 2:4]
    refS = Qs[wr0:wr0+16, :D] @ Kb[:, :D].T
    assert np.allclose(S, refS), ("S", D)
    # P V with P = S (any values) packed as the kernel does
    o = np.zeros((D // 8, 32, 4))
    for kk in range(BN // 16):
        pa = np.zeros((32, 4, 2))
        for L in range(32):
            pa[L, 0] = s[2*kk, L, 0:2]; pa[L, 1] = s[2*kk, L, 2:4]
            pa[L, 2] = s[2*kk+1, L, 0:2]; pa[L, 3] = s[2*kk+1, L, 2:4]
        for dp in range(D // 16):
            bf = ldmatrix_x4(Vb, lambda ln: (kk * 16 + (ln & 7) + ((ln >> 3) & 1) * 8, dp * 16 + (ln >> 4) * 8), True)
            o[2*dp] = mma(o[2*dp], pa, bf[:, 0], bf[:, 1])
            o[2*dp+1] = mma(o[2*dp+1], pa, bf[:, 2], bf[:, 3])
    O = np.zeros((16, D))
    for dt in range(D // 8):
        for L in range(32):
            g, t = L // 4, L % 4
            O[g, dt*8 + 2*t: dt*8+2*t+2] = o[dt, L, 0:2]; O[g+8, dt*8 + 2*t: dt*8+2*t+2] = o[dt, L, 2:4]
    assert np.allclose(O, refS @ Vb[:, :D]), ("O", D)
    # bank conflicts: ldmatrix phases of 8 rows x 16 bytes must hit distinct 4-bank groups
    for ln0 in range(0, 32, 8):
        banks = set()
        for ln in range(ln0, ln0 + 8):
            r, c = (ln & 7) + ((ln >> 3) & 1) * 8, (ln >> 4) * 8
            w = (r * LD + c) * 2 // 4
            banks.update(((w + i) % 32) for i in range(4))
        assert len(banks) == 32, ("banks", D)
    print("ok", D, BN)
