"""Retargeting speed on a 50,000-vertex head: fit + correspondence, cached reload, and a 60 s take.

    python -m engine.retarget.bench [--vertices 50000] [--frames 1800] [--threads 2]

Targets: correspondence <= 5 s on 2 cores; applying 1800 frames <= 1 s. The head is the template
face subdivided to the requested density plus a closed back-of-head shell, so it has the face
features the search needs and the far-away vertices a real head has.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def _limit_threads(n: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


def subdivide(vertices, faces):
    """One midpoint subdivision: every triangle becomes four (shared edge midpoints)."""
    import numpy as np

    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    uniq, inv = np.unique(e, axis=0, return_inverse=True)
    mids = 0.5 * (vertices[uniq[:, 0]] + vertices[uniq[:, 1]])
    m = inv.reshape(3, -1).T + len(vertices)  # midpoints of edges (01, 12, 20) per face
    a, b, c = faces[:, 0], faces[:, 1], faces[:, 2]
    ab, bc, ca = m[:, 0], m[:, 1], m[:, 2]
    new_faces = np.concatenate(
        [np.stack(t, axis=1) for t in ((a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca))]
    )
    return np.vstack([vertices, mids]), new_faces


def synthetic_head(n_vertices: int = 50_000):
    """(vertices, faces) of a head of about ``n_vertices``: dense template face + back shell."""
    import numpy as np

    from engine.face.template import load_template

    tpl = load_template()
    v, f = tpl.vertices.astype(np.float64), tpl.faces.astype(np.int64)
    while 4 * len(v) <= 0.8 * n_vertices:
        v, f = subdivide(v, f)
    remaining = max(n_vertices - len(v), 100)
    # Back of the head: an ellipsoid cap behind the face, as a separate closed piece.
    rings = int(np.sqrt(remaining / 2))
    segments = max(remaining // rings, 8)
    theta = np.linspace(0.15, np.pi - 0.15, rings)
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    th, ph = np.meshgrid(theta, phi, indexing="ij")
    shell = np.stack(
        [0.075 * np.sin(th) * np.cos(ph), 0.02 + 0.09 * np.sin(th) * np.sin(ph), 0.10 * np.cos(th)],
        axis=-1,
    ).reshape(-1, 3)
    shell[:, 1] = np.maximum(shell[:, 1], 0.0)  # stays behind the face mask
    idx = np.arange(rings * segments).reshape(rings, segments)
    a, b = idx[:-1], np.roll(idx[:-1], -1, axis=1)
    c, d = idx[1:], np.roll(idx[1:], -1, axis=1)
    quads = np.stack([a, b, d, c], axis=-1).reshape(-1, 4)
    shell_faces = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]]) + len(v)
    return np.vstack([v, shell]), np.vstack([f, shell_faces])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vertices", type=int, default=50_000)
    parser.add_argument("--frames", type=int, default=1800)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    _limit_threads(args.threads)

    import numpy as np

    from engine.arkit.basis import apply_arkit
    from engine.retarget import fit_head

    vertices, faces = synthetic_head(args.vertices)
    rng = np.random.default_rng(0)
    weights = np.clip(rng.uniform(-0.5, 1.0, size=(args.frames, 52)), 0, 1).astype(np.float32)
    offsets = apply_arkit(weights).astype(np.float32)
    with tempfile.TemporaryDirectory() as cache:
        t0, c0 = time.perf_counter(), time.process_time()
        corr = fit_head(vertices, faces, cache_dir=cache)
        t_fit, c_fit = time.perf_counter() - t0, time.process_time() - c0
        t0 = time.perf_counter()
        fit_head(vertices, faces, cache_dir=cache)
        t_cached = time.perf_counter() - t0
    corr.transfer(offsets[:10])  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    moved = corr.transfer(offsets)
    t_apply, c_apply = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    corr.arkit_shapes()
    t_shapes = time.perf_counter() - t0
    print(f"head: {len(vertices)} vertices, {len(faces)} triangles; threads={args.threads}")
    print(f"correspondence (landmarks + fit + dense): {t_fit:.2f} s wall, {c_fit:.2f} s CPU  (target <= 5 s)")
    print(f"cached correspondence reload:             {t_cached:.3f} s")
    print(
        f"apply {args.frames} frames -> {moved.shape}: {t_apply:.2f} s wall, {c_apply:.2f} s CPU  (target <= 1 s)"
    )
    print(f"machine load average (1 min): {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"52 ARKit shapes for the mesh:             {t_shapes:.3f} s")
    _bench_solver(offsets)


def _bench_solver(offsets) -> None:
    """ARKit weights back from template motion: batched projected Newton vs scipy per frame."""
    import numpy as np
    from scipy.optimize import lsq_linear

    from engine.arkit.basis import arkit_basis
    from engine.arkit.solve import ArkitSolver

    t0 = time.perf_counter()
    solver = ArkitSolver(arkit_basis())
    weights = solver.solve(offsets)
    t_batched = time.perf_counter() - t0
    sample = min(20, len(offsets))
    design = np.vstack(
        [
            solver._design,
            np.sqrt(solver.gram[0, 0] - solver._design[:, 0] @ solver._design[:, 0]) * np.eye(52),
        ]
    )
    t0 = time.perf_counter()
    for frame in offsets[:sample]:
        lsq_linear(design, np.r_[frame.ravel(), np.zeros(52)], bounds=(0, 1))
    t_scipy = (time.perf_counter() - t0) / sample * len(offsets)
    print(
        f"ARKit solve {len(offsets)} frames: {t_batched:.2f} s batched (scipy lsq_linear per frame: ~{t_scipy:.0f} s); "
        f"weights in [{weights.min():.2f}, {weights.max():.2f}]"
    )


if __name__ == "__main__":
    main()
