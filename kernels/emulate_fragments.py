# Index-level emulation of gemm_mma.cu and of attention_fused in attention.cu, written by hand
# after the CUDA code: cp.async stores with the swizzles, ldmatrix (plain and .trans) and
# mma.m16n8k16 by the fragment layouts of the PTX ISA, the online softmax. float64, no bf16
# rounding: it checks indexing, not precision. Run: python3 kernels/emulate_fragments.py (numpy).
import numpy as np
rng = np.random.default_rng(1)
LANES = np.arange(32)

class Smem:
    def __init__(self, nbytes): self.m = np.full(nbytes // 2, np.nan)
    def store16(self, addr, vals8):
        assert addr % 16 == 0; self.m[addr // 2: addr // 2 + 8] = vals8
    def row8(self, addr):
        assert addr % 16 == 0; return self.m[addr // 2: addr // 2 + 8]

def ldmatrix_x4(sm, addrs, trans=False):
    # addrs[lane]: row address provided by lane; matrix i rows from lanes 8i..8i+7
    regs = np.zeros((4, 32, 2))
    for i in range(4):
        mat = np.stack([sm.row8(addrs[8 * i + r]) for r in range(8)])  # [row][col]
        for t in range(32):
            if not trans:
                regs[i, t] = mat[t // 4, 2 * (t % 4): 2 * (t % 4) + 2]
            else:
                regs[i, t] = [mat[2 * (t % 4), t // 4], mat[2 * (t % 4) + 1, t // 4]]
    return regs

def mma(d, a, b0, b1):
    # d[32][4], a[4][32][2], b0/b1[32][2]
    A = np.zeros((16, 16)); B = np.zeros((16, 8)); C = np.zeros((16, 8))
    for t in range(32):
        g, q = t // 4, t % 4
        for e in range(2):
            A[g, 2*q+e] = a[0][t][e]; A[g+8, 2*q+e] = a[1][t][e]
            A[g, 2*q+8+e] = a[2][t][e]; A[g+8, 2*q+8+e] = a[3][t][e]
            B[2*q+e, g] = b0[t][e]; B[2*q+8+e, g] = b1[t][e]
            C[g, 2*q+e] = d[t][e]; C[g+8, 2*q+e] = d[t][2+e]
    D = A @ B + C
    for t in range(32):
        g, q = t // 4, t % 4
        d[t] = [D[g, 2*q], D[g, 2*q+1], D[g+8, 2*q], D[g+8, 2*q+1]]

# ---------------- GEMM (gemm_mma.cu) ----------------
def swz64(row, chunk): return row * 64 + ((chunk ^ ((row >> 1) & 3)) << 4)

def gemm(A, Bm, M, N, K):
    BM = BN = 128; BK = 32
    C = np.full((M, N), np.nan)
    for by in range((M + BM - 1) // BM):
        for bx in range((N + BN - 1) // BN):
            m0, n0 = by * BM, bx * BN
            acc = {(w, i, j): np.zeros((32, 4)) for w in range(8) for i in range(4) for j in range(4)}
            for kt in range((K + BK - 1) // BK):
                sA, sB = Smem(BM * BK * 2), Smem(BN * BK * 2)
                k0 = kt * BK
                for tid in range(256):
                    for it in range(2):
                        idx = tid + it * 256; row, chunk = idx >> 2, idx & 3
                        k = k0 + chunk * 8; kv = k < K
                        gm, gn = m0 + row, n0 + row
                        sA.store16(swz64(row, chunk), A[gm, k:k+8] if (kv and gm < M) else np.zeros(8))
                        sB.store16(swz64(row, chunk), Bm[gn, k:k+8] if (kv and gn < N) else np.zeros(8))
                for w in range(8):
                    wm, wn = (w // 4) * 64, (w % 4) * 32
                    for kk in range(BK // 16):
                        a = [ldmatrix_x4(sA, [swz64(wm + i*16 + (l % 8) + ((l // 8) % 2) * 8, kk*2 + l // 16) for l in LANES]) for i in range(4)]
                        b = [None] * 4
                        for j in range(2):
                            r = ldmatrix_x4(sB, [swz64(wn + j*16 + (l % 8) + (l // 16) * 8, kk*2 + (l // 8) % 2) for l in LANES])
                            b[2*j] = (r[0], r[1]); b[2*j+1] = (r[2], r[3])
                        for i in range(4):
                            for j in range(4):
                                mma(acc[(w, i, j)], a[i], b[j][0], b[j][1])
            for w in range(8):
                wm, wn = (w // 4) * 64, (w % 4) * 32
                for t in range(32):
                    g, q = t // 4, t % 4
                    for i in range(4):
                        for j in range(4):
                            col = n0 + wn + j*8 + q*2
                            for h in range(2):
                                row = m0 + wm + i*16 + g + h*8
                                if row < M and col < N:
                                    C[row, col] = acc[(w, i, j)][t][2*h]; C[row, col+1] = acc[(w, i, j)][t][2*h+1]
    return C

M, N, K = 136, 144, 48
A = rng.uniform(-1, 1, (M, K)); Bm = rng.uniform(-1, 1, (N, K))
C = gemm(A, Bm, M, N, K)
ref = A @ Bm.T
print("gemm_mma_sync: nan", np.isnan(C).sum(), "rel err", np.linalg.norm(C - ref) / np.linalg.norm(ref))

# ---------------- fused attention (attention.cu) ----------------
def swz128(row, chunk): return row * 128 + ((chunk ^ (row & 7)) << 4)

def attention(Q, Kt, V, S, scale_log2):
    HD = 64; O = np.full((S, HD), np.nan)
    for bx in range(S // 64):
        q0 = bx * 64
        sQ = Smem(64 * HD * 2)
        for tid in range(128):
            for it in range(4):
                idx = tid + it * 128; row, chunk = idx >> 3, idx & 7
                sQ.store16(swz128(row, chunk), Q[q0 + row, chunk*8: chunk*8+8])
        for warp in range(4):
            qf = [ldmatrix_x4(sQ, [swz128(warp*16 + (l % 8) + ((l // 8) % 2) * 8, kk*2 + l // 16) for l in LANES]) for kk in range(4)]
            o = [np.zeros((32, 4)) for _ in range(8)]
            m = np.full((32, 2), -np.inf); lsum = np.zeros((32, 2))
            for t in range(S // 64):
                sK, sV = Smem(64 * HD * 2), Smem(64 * HD * 2)
                for tid in range(128):
                    for it in range(4):
                        idx = tid + it * 128; row, chunk = idx >> 3, idx & 7
                        sK.store16(swz128(row, chunk), Kt[t*64 + row, chunk*8: chunk*8+8])
                        sV.store16(swz128(row, chunk), V[t*64 + row, chunk*8: chunk*8+8])
                s = [np.zeros((32, 4)) for _ in range(8)]
                for kk in range(4):
                    for jp in range(4):
                        r = ldmatrix_x4(sK, [swz128(jp*16 + (l % 8) + (l // 16) * 8, kk*2 + (l // 8) % 2) for l in LANES])
                        mma(s[2*jp], qf[kk], r[0], r[1]); mma(s[2*jp+1], qf[kk], r[2], r[3])
                for h in range(2):
                    mx = np.max([np.maximum(s[n][:, 2*h], s[n][:, 2*h+1]) for n in range(8)], axis=0)
                    mx = np.maximum(mx, mx[LANES ^ 1]); mx = np.maximum(mx, mx[LANES ^ 2])
                    m_new = np.maximum(m[:, h], mx * scale_log2)
                    alpha = np.exp2(m[:, h] - m_new)
                    ssum = np.zeros(32)
                    for n in range(8):
                        s[n][:, 2*h] = np.exp2(s[n][:, 2*h] * scale_log2 - m_new)
                        s[n][:, 2*h+1] = np.exp2(s[n][:, 2*h+1] * scale_log2 - m_new)
                        ssum += s[n][:, 2*h] + s[n][:, 2*h+1]
                        o[n][:, 2*h] *= alpha; o[n][:, 2*h+1] *= alpha
                    lsum[:, h] = lsum[:, h] * alpha + ssum; m[:, h] = m_new
                for kk in range(4):
                    pa = np.stack([s[2*kk][:, 0:2], s[2*kk][:, 2:4], s[2*kk+1][:, 0:2], s[2*kk+1][:, 2:4]])
                    for dp in range(4):
                        r = ldmatrix_x4(sV, [swz128(kk*16 + (l % 8) + ((l // 8) % 2) * 8, dp*2 + l // 16) for l in LANES], trans=True)
                        mma(o[2*dp], pa, r[0], r[1]); mma(o[2*dp+1], pa, r[2], r[3])
            for h in range(2):
                tot = lsum[:, h].copy(); tot = tot + tot[LANES ^ 1]; tot = tot + tot[LANES ^ 2]
                for lane in range(32):
                    g, qd = lane // 4, lane % 4
                    row = q0 + warp*16 + g + h*8
                    for n in range(8):
                        O[row, n*8 + qd*2] = o[n][lane][2*h] / tot[lane]
                        O[row, n*8 + qd*2 + 1] = o[n][lane][2*h+1] / tot[lane]
    return O

S = 128
Q = rng.uniform(-2, 2, (S, 64)); Kt = rng.uniform(-2, 2, (S, 64)); V = rng.uniform(-1, 1, (S, 64))
scale = 1 / 8
O = attention(Q, Kt, V, S, scale * np.log2(np.e))
sc = scale * Q @ Kt.T; P = np.exp(sc - sc.max(1, keepdims=True)); P /= P.sum(1, keepdims=True)
ref = P @ V
print("attention_fused: nan", np.isnan(O).sum(), "rel err", np.linalg.norm(O - ref) / np.linalg.norm(ref))

# ---------------- gemm_wgmma.cu shared-memory addressing ----------------
# wgmma reads a K-major operand with the 128-byte swizzle as: pre = start + (r / 8) * SBO +
# (r % 8) * 128 + k * 2 (SBO = 1024), then XORs address bits [4:6] with bits [7:9]. The kernel
# writes element (row, k) of a 1024-byte-aligned tile at swz128(row, k / 8) + (k % 8) * 2 and
# starts warpgroup wg's k-step kk at wg * 64 * 128 + kk * 32.
bad = 0
for wg in range(2):
    for kk in range(4):
        start = wg * 64 * 128 + kk * 32
        for rr in range(64):
            for kq in range(16):
                pre = start + (rr // 8) * 1024 + (rr % 8) * 128 + kq * 2
                hw = pre ^ (((pre >> 7) & 7) << 4)
                row, k = wg * 64 + rr, kk * 16 + kq
                bad += hw != swz128(row, k // 8) + (k % 8) * 2
print("gemm_wgmma addressing mismatches:", bad)

# ---------------- gemm_wgmma_v2.cu ----------------
# (1) The TMA's 128-byte swizzle (16-byte chunk c of 128-byte row r at chunk c ^ (r % 8), from a
# 1024-byte-aligned box) against what wgmma reads through the descriptors: consumer half h's A
# (64 rows at h * 64 * 128) and the whole 256-row B tile, k16 step kk at +32 bytes.
bad = 0
for name, start0, nrows in [("A half 0", 0, 64), ("A half 1", 64 * 128, 64), ("B", 0, 256)]:
    for kk in range(4):
        start = start0 + kk * 32
        for rr in range(nrows):
            for kq in range(16):
                pre = start + (rr // 8) * 1024 + (rr % 8) * 128 + kq * 2
                hw = pre ^ (((pre >> 7) & 7) << 4)
                row, k = start0 // 128 + rr, kk * 16 + kq
                bad += hw != swz128(row, k // 8) + (k % 8) * 2
print("gemm_wgmma_v2 descriptor/TMA-swizzle mismatches:", bad)

# (2) The grouped persistent tile order is a bijection onto the tiles.
def v2_tile_coords(t, tiles_m, tiles_n, G=16):
    per_group = G * tiles_n
    first = (t // per_group) * G
    rows = min(tiles_m - first, G)
    r = t % per_group
    return first + r % rows, r // rows
bad = 0
for tiles_m, tiles_n in [(64, 32), (1, 18), (256, 9), (17, 5), (33, 1), (16, 16), (3, 7)]:
    seen = {v2_tile_coords(t, tiles_m, tiles_n) for t in range(tiles_m * tiles_n)}
    bad += seen != {(i, j) for i in range(tiles_m) for j in range(tiles_n)}
print("gemm_wgmma_v2 tile order: shapes that are not a bijection:", bad)

# (3) The mbarrier pipeline under random interleavings: one producer thread (wait empty with
# the opposite parity, arrive.expect_tx, two TMA loads that land later), two consumer
# warpgroups (wait full, issue a wgmma group that retires later, wait_group 1, lane 0 of each
# of 4 warps releases the previous stage; wait_group 0 and release at the end of each tile).
# Checks: every group reads the stage holding its own (tile, k-tile), no TMA lands in a stage
# that an unretired group still reads, no deadlock.
class Mbar:
    def __init__(self, count): self.count, self.pending, self.tx, self.phase = count, count, 0, 0
    def _check(self):
        if self.pending == 0 and self.tx == 0: self.phase += 1; self.pending = self.count
    def arrive(self, tx=0): self.tx += tx; self.pending -= 1; assert self.pending >= 0; self._check()
    def complete_tx(self, b): self.tx -= b; self._check()
    def done(self, parity): return (self.phase & 1) != parity

def simulate_pipeline(n_tiles, k_tiles, stages, seed):
    rnd = np.random.default_rng(seed)
    full = [Mbar(1) for _ in range(stages)]; empty = [Mbar(8) for _ in range(stages)]
    stage_data = [None] * stages; tma = []; errors = 0
    order = [(t, kt) for t in range(n_tiles) for kt in range(k_tiles)]
    prod = {"it": 0, "state": "wait"}
    cons = [{"it": 0, "groups": [], "state": "wait"} for _ in range(2)]
    while True:
        actions = []
        if prod["it"] < len(order):
            s, par = prod["it"] % stages, (prod["it"] // stages) & 1
            if empty[s].done(par ^ 1): actions.append("prod")
        if tma: actions.append("tma")
        for w, c in enumerate(cons):
            if c["groups"]: actions.append(("retire", w))
            if c["it"] < len(order) or c["state"] != "wait":
                if c["state"] == "wait":
                    if c["it"] < len(order):
                        s, par = c["it"] % stages, (c["it"] // stages) & 1
                        if full[s].done(par): actions.append(("cons", w))
                elif c["state"] == "wait1" and len(c["groups"]) <= 1: actions.append(("cons", w))
                elif c["state"] == "wait0" and not c["groups"]: actions.append(("cons", w))
        if not actions:
            done = prod["it"] == len(order) and all(c["it"] == len(order) and c["state"] == "wait" for c in cons)
            return errors + (0 if done else 1000)
        a = actions[rnd.integers(len(actions))]
        if a == "prod":
            it = prod["it"]; s = it % stages
            full[s].arrive(tx=2)
            tma.append((s, order[it], 1)); tma.append((s, order[it], 1)); prod["it"] += 1
        elif a == "tma":
            s, label, b = tma.pop(rnd.integers(len(tma)))
            if any(g[0] == s for c in cons for g in c["groups"]): errors += 1
            stage_data[s] = label; full[s].complete_tx(b)
        elif a[0] == "retire":
            cons[a[1]]["groups"].pop(0)
        else:
            c = cons[a[1]]; it = c["it"]
            if c["state"] == "wait":
                s = it % stages
                errors += stage_data[s] != order[it]
                c["groups"].append((s, it)); c["state"] = "wait1"
            elif c["state"] == "wait1":
                kt = order[it][1]
                if kt > 0:
                    for _ in range(4): empty[(it - 1) % stages].arrive()
                c["it"] += 1
                c["state"] = "wait0" if kt == k_tiles - 1 else "wait"
            else:  # end of tile: wait_group 0, release the last stage
                for _ in range(4): empty[(c["it"] - 1) % stages].arrive()
                c["state"] = "wait"

bad = sum(simulate_pipeline(n, k, 4, seed) for seed in range(60) for n, k in [(3, 5), (2, 1), (1, 4), (4, 2), (2, 9)])
print("gemm_wgmma_v2 pipeline: errors or deadlocks over 300 random interleavings:", bad)
