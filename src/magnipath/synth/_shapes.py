"""Smooth random blobs and placement helpers for the synthetic layout (level-0 pixels)."""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import Polygon

GRID = 0.125
"""Every layout coordinate lies on this grid (level-0 pixels), so that rasterising
shared edges is exact whatever a ring's orientation."""


def snap(poly: Polygon) -> Polygon:
    """``poly`` with coordinates on the :data:`GRID`, still valid."""
    out = shapely.set_precision(poly, GRID)
    if out.geom_type != "Polygon":  # snapping split or collapsed it: keep the largest part
        parts = [p for p in shapely.get_parts(out) if p.geom_type == "Polygon"]
        out = max(parts, key=lambda p: p.area) if parts else Polygon()
    return out


def blob(rng: np.random.Generator, cx: float, cy: float, rx: float, ry: float, *,
         roughness: float, angle: float | None = None, n_harmonics: int = 7,
         min_vertices: int = 48, max_vertices: int = 720) -> tuple[Polygon, float]:
    """A smooth star-shaped random polygon around ``(cx, cy)``.

    Parameters
    ----------
    rng : numpy Generator
    cx, cy : float
        Centre in level-0 pixels.
    rx, ry : float
        Mean radii along the blob's own axes, level-0 pixels.
    roughness : float
        Total relative amplitude of the radial harmonics (0 = ellipse).
    angle : float, optional
        Rotation in radians (random if ``None``).

    Returns
    -------
    (Polygon, float)
        The snapped polygon and the radius of a circle around ``(cx, cy)``
        that contains it, level-0 pixels.
    """
    if angle is None:
        angle = rng.uniform(0, np.pi)
    ks = np.arange(2, 2 + n_harmonics)
    amps = rng.uniform(0.2, 1.0, n_harmonics) / (ks - 1.0) ** 0.9
    amps *= roughness / amps.sum()
    phases = rng.uniform(0, 2 * np.pi, n_harmonics)
    perim = 2 * np.pi * max(rx, ry)
    n = int(np.clip(perim / 12.0, min_vertices, max_vertices))
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = 1.0 + (amps[:, None] * np.cos(ks[:, None] * t[None, :] + phases[:, None])).sum(0)
    x = rx * r * np.cos(t)
    y = ry * r * np.sin(t)
    ca, sa = np.cos(angle), np.sin(angle)
    px = cx + x * ca - y * sa
    py = cy + x * sa + y * ca
    poly = snap(Polygon(np.column_stack([px, py])))
    if not poly.is_valid:
        poly = snap(shapely.make_valid(poly).buffer(0))
    reach = float(np.max(np.hypot(px - cx, py - cy))) + 1.0
    return poly, reach


def sample_points_in(rng: np.random.Generator, geom, n: int) -> np.ndarray:
    """Up to ``n`` points uniform in ``geom`` (prepared), as an ``(k, 2)`` array."""
    x0, y0, x1, y1 = geom.bounds
    out = []
    need = n
    for _ in range(50):
        m = 4 * need + 8
        pts = np.column_stack([rng.uniform(x0, x1, m), rng.uniform(y0, y1, m)])
        ok = shapely.contains_xy(geom, pts[:, 0], pts[:, 1])
        out.append(pts[ok][:need])
        need -= int(min(ok.sum(), need))
        if need <= 0:
            break
    return np.concatenate(out) if out else np.zeros((0, 2))


class Circles:
    """Bounding circles of placed features, for quick non-overlap checks."""

    def __init__(self) -> None:
        self.xy = np.zeros((0, 2))
        self.r = np.zeros(0)

    def free(self, x: np.ndarray, y: np.ndarray, r: float, gap: float) -> np.ndarray:
        """Boolean per candidate centre: a circle of radius ``r`` keeps ``gap`` from all."""
        if len(self.r) == 0:
            return np.ones(len(x), dtype=bool)
        d = np.hypot(x[:, None] - self.xy[None, :, 0], y[:, None] - self.xy[None, :, 1])
        return (d >= (self.r[None, :] + r + gap)).all(axis=1)

    def add(self, x: float, y: float, r: float) -> None:
        self.xy = np.vstack([self.xy, [[x, y]]])
        self.r = np.append(self.r, r)
