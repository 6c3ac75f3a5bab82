"""Trace a drive with Sionna RT and extract the per-path ground truth.

All snapshot positions are traced in batches, as the receivers of one ``PathSolver``
call each (one call for 64 positions costs far less than 64 calls). The BSs are the
transmitters, so paths run BS → UE and the sampling cost scales with the number of
BSs, not of snapshots.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from estimators.arrays import SPEED_OF_LIGHT
from twin.backend import mitsuba, sionna_rt
from twin.config import ArrayConfig, TracingConfig
from twin.drive import Drive
from twin.errors import TwinInputError
from twin.paths import InteractionType, PathSet, mirror_through_planes
from twin.scene import TwinScene, TwinWarning

# Sionna RT's interaction bit flags -> InteractionType.
_SIONNA_INTERACTION = {
    0: InteractionType.NONE,
    1: InteractionType.SPECULAR,
    2: InteractionType.DIFFUSE,
    4: InteractionType.REFRACTION,
    8: InteractionType.DIFFRACTION,
}
_INVALID_U32 = 0xFFFFFFFF


@dataclass(frozen=True)
class BaseStation:
    """A BS pose: ``position [3]`` [m], ``orientation [3]`` (yaw, pitch, roll) [rad]."""

    name: str
    position: npt.NDArray[np.float64]
    orientation: npt.NDArray[np.float64]


def planar_array(array: ArrayConfig) -> Any:
    """The Sionna ``PlanarArray`` of an array config (spacing in wavelengths)."""
    rt = sionna_rt()
    return rt.PlanarArray(
        num_rows=array.rows,
        num_cols=array.cols,
        vertical_spacing=array.spacing_wavelengths,
        horizontal_spacing=array.spacing_wavelengths,
        pattern=array.pattern,
        polarization=array.polarization,
    )


#: Sionna RT traces in float32: where the spacing of float32 numbers at the positions'
#: largest coordinate exceeds this share of a wavelength, the run warns (0.01: phase
#: rounding of ~0.06 rad, a channel error ~24 dB below the channel; at 28 GHz from
#: 1 024 m off the origin) ...
PRECISION_WARN_WAVELENGTHS = 0.01
#: ... and past this share it refuses (0.1: ~0.6 rad, the phases no longer the geometry's;
#: at 28 GHz from 16 384 m, a survey frame's offsets).
PRECISION_REFUSE_WAVELENGTHS = 0.1


def check_float32_precision(positions: npt.ArrayLike, wavelength: float,
                            inputs: str = "base_stations, ue") -> None:
    """Warn, or refuse in one line naming the config's ``inputs`` that hold them, where
    positions ``[..., 3]`` [m] lie so far from the scene's origin that float32 rounds
    them by a noticeable share of the ``wavelength`` [m]
    (:data:`PRECISION_WARN_WAVELENGTHS`, :data:`PRECISION_REFUSE_WAVELENGTHS`): the
    traced phases would carry that rounding. A mesh in a survey frame (UTM: hundreds of
    km) must be translated near its origin first.

    Measured (``scripts/twin/shifted_ground.py``): 35 m up, where float32's spacing is
    3.8 µm, the street's traced CFRs differ from those of the street at 0 m by 5e-4-9e-4
    of their peak.
    """
    p = np.asarray(positions, dtype=np.float64)
    if not p.size:
        return
    reach = float(np.max(np.abs(p)))
    spacing = float(np.spacing(np.float32(reach)))
    share = spacing / wavelength
    if share <= PRECISION_WARN_WAVELENGTHS:
        return
    what = (f"positions ({inputs}) reach {reach:.0f} m from the scene's origin, "
            f"where Sionna RT's float32 coordinates are {spacing * 1e3:.2g} mm apart "
            f"({share:.2g} wavelengths)")
    if share > PRECISION_REFUSE_WAVELENGTHS:
        raise TwinInputError(f"{what}: the traced phases would be rounding noise; translate "
                             "the scene and the positions near the origin")
    warnings.warn(f"{what}: the traced channels carry phase rounding of "
                  f"{2 * np.pi * share:.2g} rad; translate the scene and the positions "
                  "near the origin to avoid it", TwinWarning, stacklevel=3)


def _point(values: Sequence[float] | npt.NDArray[np.float64]) -> Any:
    # Sionna needs Python floats, not numpy scalars.
    mi = mitsuba()
    return mi.Point3f(*(float(v) for v in values))


class DriveTracer:
    """Traces UE positions against fixed BSs in a scene.

    Parameters
    ----------
    scene : the loaded scene (its Sionna scene is configured in place).
    base_stations : BS poses (all share ``bs_array``).
    frequency_hz : carrier [Hz].
    bs_array, ue_array : array configs.
    tracing : solver settings.
    seed : solver seed (with ``tracing.deterministic``, same seed ⇒ identical arrays).
    """

    def __init__(
        self,
        scene: TwinScene,
        base_stations: Sequence[BaseStation],
        *,
        frequency_hz: float,
        bs_array: ArrayConfig,
        ue_array: ArrayConfig,
        tracing: TracingConfig,
        seed: int,
    ) -> None:
        rt = sionna_rt()
        self.scene = scene
        self.base_stations = list(base_stations)
        self.tracing = tracing
        self.seed = int(seed)
        self.frequency_hz = float(frequency_hz)
        self.wavelength = SPEED_OF_LIGHT / frequency_hz
        sc = scene.sionna_scene
        sc.frequency = float(frequency_hz)
        sc.tx_array = planar_array(bs_array)
        sc.rx_array = planar_array(ue_array)
        for name in list(sc.transmitters) + list(sc.receivers):
            sc.remove(name)
        for bs in self.base_stations:
            sc.add(
                rt.Transmitter(
                    name=bs.name, position=_point(bs.position), orientation=_point(bs.orientation)
                )
            )
        self._receivers: list[Any] = []
        self._solver = rt.PathSolver(deterministic=tracing.deterministic)

    def solve(
        self,
        position: npt.NDArray[np.float64],
        velocity: npt.NDArray[np.float64],
        orientation: npt.NDArray[np.float64],
    ) -> Any:
        """Raw Sionna ``Paths`` for one batch of UE states ``[N, 3]`` each."""
        rt = sionna_rt()
        sc = self.scene.sionna_scene
        n = len(position)
        while len(self._receivers) > n:
            sc.remove(self._receivers.pop().name)
        while len(self._receivers) < n:
            rx = rt.Receiver(name=f"ue-{len(self._receivers)}", position=_point([0, 0, 0]))
            sc.add(rx)
            self._receivers.append(rx)
        mi = mitsuba()
        for rx, p, v, o in zip(self._receivers, position, velocity, orientation, strict=True):
            rx.position = _point(p)
            rx.orientation = _point(o)
            rx.velocity = mi.Vector3f(*(float(c) for c in v))
        t = self.tracing
        return self._solver(
            sc,
            max_depth=t.max_depth,
            max_num_paths_per_src=t.max_num_paths_per_src,
            samples_per_src=t.samples_per_src,
            synthetic_array=True,
            los=t.los,
            specular_reflection=t.specular_reflection,
            diffuse_reflection=t.diffuse_reflection,
            refraction=t.refraction,
            diffraction=t.diffraction,
            seed=self.seed,
        )

    def trace(
        self, drive: Drive, on_batch: Callable[[int], None] | None = None
    ) -> PathSet:
        """Trace every snapshot of a drive and return the ground truth.

        ``on_batch(num_snapshots_done)`` is called after each batch (progress bars).
        """
        return concat_snapshots([b for _, b in self.batches(drive, on_batch)])

    def batches(
        self, drive: Drive, on_batch: Callable[[int], None] | None = None
    ) -> Iterator[tuple[slice, PathSet]]:
        """Trace a drive ``tracing.batch_size`` snapshots at a time: each batch's
        snapshots and their ground truth (its path axis as long as the batch needs;
        :func:`concat_snapshots` pads them to a common length).

        ``on_batch(num_snapshots_done)`` is called after each batch (progress bars).
        """
        step = self.tracing.batch_size
        for start in range(0, drive.num_snapshots, step):
            sl = slice(start, min(start + step, drive.num_snapshots))
            count = sl.stop - start
            # A shorter last batch would cost a second receiver count in the scene and
            # its solver (+0.33 GB peak measured on builtin:munich, the same arrays
            # either way): it is traced full, its last state repeated, the repeats
            # dropped. A drive of one batch is traced as it is.
            rows = np.minimum(np.arange(start, start + (step if start else count)),
                              sl.stop - 1)
            paths = self.solve(drive.position[rows], drive.velocity[rows],
                               drive.orientation[rows])
            truth = PathSet(**{k: v[:count] for k, v in self.extract(paths).items()},
                            object_names=tuple(self.scene.object_names))
            if on_batch is not None:
                on_batch(sl.stop)
            yield sl, truth

    def extract(self, paths: Any) -> dict[str, np.ndarray]:
        """Numpy truth arrays ``[N, B, P, ...]`` of one batch of Sionna ``Paths``."""
        valid = np.asarray(paths.valid, dtype=bool)
        a_re, a_im = (np.asarray(c, dtype=np.float64) for c in paths.a)
        # Sionna RT 2.x, with several transmitters and large synthetic arrays, sometimes
        # repeats a valid path with NaN coefficients (seen: the LOS 30 times, 29 NaN);
        # the repeats are dropped, the path stays once.
        valid &= np.all(np.isfinite(a_re) & np.isfinite(a_im), axis=(1, 3))  # [rx, tx, P]
        nan = np.float64(np.nan)

        def per_path(x: Any) -> np.ndarray:
            return np.where(valid, np.asarray(x, dtype=np.float64), nan)

        tau = per_path(paths.tau)
        # Sionna's `a` is the passband coefficient; the baseband-equivalent gain carries
        # the carrier phase exp(-j 2π f_c τ) (Sionna applies it only inside cir()/cfr()).
        carrier = np.exp(-2j * np.pi * self.frequency_hz * np.where(valid, tau, 0.0))
        # [rx, Nr, tx, Nt, P] -> [rx, tx, P, Nr, Nt]
        gain = (a_re + 1j * a_im).transpose(0, 2, 4, 1, 3) * carrier[..., None, None]
        aod = np.stack([per_path(paths.phi_t), per_path(paths.theta_t)], axis=-1)
        aoa = np.stack([per_path(paths.phi_r), per_path(paths.theta_r)], axis=-1)
        doppler = per_path(paths.doppler)
        # Vertex tensors are [D, rx, tx, P(, 3)] -> [rx, tx, P, D(, 3)].
        raw_types = np.moveaxis(np.asarray(paths.interactions, dtype=np.int64), 0, -1)
        raw_objects = np.moveaxis(np.asarray(paths.objects, dtype=np.int64), 0, -1)
        raw_prims = np.moveaxis(np.asarray(paths.primitives, dtype=np.int64), 0, -1)
        vertices = np.moveaxis(np.asarray(paths.vertices, dtype=np.float64), 0, -2)
        types = np.zeros(raw_types.shape, dtype=np.uint8)
        for flag, kind in _SIONNA_INTERACTION.items():
            types[raw_types == flag] = kind
        present = (types != InteractionType.NONE) & valid[..., None]
        types[~present] = InteractionType.NONE
        depth = np.where(valid, present.sum(axis=-1), -1).astype(np.int16)
        known = present & (raw_objects != _INVALID_U32)
        canonical = self.scene.canonical_object_ids(np.where(known, raw_objects, 0))
        object_ids = np.where(known, canonical, -1)
        primitive_ids = np.where(present & (raw_prims != _INVALID_U32), raw_prims, -1)
        points = np.where(present[..., None], vertices, nan)
        anchor = self._virtual_anchors(types, points, object_ids, primitive_ids, valid)
        truth = {
            "valid": valid,
            "tau": tau,
            "gain": np.where(valid[..., None, None], gain, 0).astype(np.complex64),
            "aod": aod,
            "aoa": aoa,
            "doppler": doppler,
            "depth": depth,
            "interaction_types": types,
            "interaction_points": points,
            "object_ids": object_ids.astype(np.int32),
            "primitive_ids": primitive_ids,
            "virtual_anchor": anchor,
        }
        return _in_canonical_order(truth)

    def _virtual_anchors(
        self,
        types: np.ndarray,
        points: np.ndarray,
        object_ids: np.ndarray,
        primitive_ids: np.ndarray,
        valid: np.ndarray,
    ) -> np.ndarray:
        specular = types == InteractionType.SPECULAR
        through = types == InteractionType.REFRACTION
        unused = types == InteractionType.NONE
        representable = valid & np.all(specular | through | unused, axis=-1)
        normals = np.zeros(points.shape, dtype=np.float64)
        for oid in np.unique(object_ids[specular]):
            sel = specular & (object_ids == oid)
            normals[sel] = self.scene.face_normals(int(oid))[primitive_ids[sel]]
        bs = np.stack([b.position for b in self.base_stations])  # [B, 3]
        anchor_source = np.broadcast_to(bs[None, :, None, :], (*points.shape[:3], 3))
        anchor = mirror_through_planes(anchor_source, points, normals, specular)
        return np.where(representable[..., None], anchor, np.nan)


def _in_canonical_order(truth: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Sort the paths of every (snapshot, BS): valid first, by delay, ties by vertices.

    Sionna's path order depends on the solver's internals; a canonical order makes
    runs comparable and puts the earliest arrival (the LOS when there is one) first.
    """
    valid = truth["valid"]
    depth_dim = truth["interaction_types"].shape[-1]
    tie_breaks = [
        truth[key][..., d]
        for key in ("primitive_ids", "object_ids", "interaction_types")
        for d in reversed(range(depth_dim))
    ]
    order = np.lexsort(
        (*tie_breaks, np.where(valid, truth["tau"], np.inf), ~valid), axis=-1
    )
    return {
        key: np.take_along_axis(arr, order.reshape(order.shape + (1,) * (arr.ndim - 3)), axis=2)
        for key, arr in truth.items()
    }


#: Padding of each truth field (invalid paths, unused vertices).
PAD = {
    "valid": False,
    "tau": np.nan,
    "gain": 0,
    "aod": np.nan,
    "aoa": np.nan,
    "doppler": np.nan,
    "depth": -1,
    "interaction_types": 0,
    "interaction_points": np.nan,
    "object_ids": -1,
    "primitive_ids": -1,
    "virtual_anchor": np.nan,
}
_VERTEX_FIELDS = ("interaction_types", "interaction_points", "object_ids", "primitive_ids")


def _padded(truth: dict[str, np.ndarray], num_paths: int, depth: int) -> dict[str, np.ndarray]:
    """Truth arrays padded along the path axis to ``num_paths`` and the vertex axis to
    ``depth``."""
    out = {}
    for key, value in PAD.items():
        arr = truth[key]
        pad = [(0, 0)] * arr.ndim
        pad[2] = (0, num_paths - arr.shape[2])
        if key in _VERTEX_FIELDS:
            pad[3] = (0, depth - arr.shape[3])
        out[key] = np.pad(arr, pad, constant_values=value)
    return out


def concat_snapshots(batches: Sequence[PathSet]) -> PathSet:
    """Path sets of consecutive snapshots (the same BSs) as one, the path axis padded to
    the longest."""
    num_paths = max(b.num_paths for b in batches)
    depth = batches[0].max_depth
    padded = [_padded({k: getattr(b, k) for k in PAD}, num_paths, depth) for b in batches]
    return PathSet(**{key: np.concatenate([b[key] for b in padded], axis=0) for key in PAD},
                   object_names=batches[0].object_names)


def concat_base_stations(pathsets: Sequence[PathSet]) -> PathSet:
    """Path sets of the same snapshots for different BSs as one set, the BSs in order
    (the path axis padded to the largest)."""
    num_paths = max(p.num_paths for p in pathsets)
    depth = max(p.max_depth for p in pathsets)
    parts = [_padded({k: getattr(p, k) for k in PAD}, num_paths, depth) for p in pathsets]
    return PathSet(**{k: np.concatenate([p[k] for p in parts], axis=1) for k in PAD},
                   object_names=pathsets[0].object_names)


def merge_paths(pathsets: Sequence[PathSet], object_names: Sequence[str]) -> PathSet:
    """The paths of several sets of the same snapshots and BSs as one set, in canonical
    order (valid first, by delay), the vertex axis padded to the deepest set's and the
    path axis to the most valid paths of any (snapshot, BS). Object ids must already
    index ``object_names``."""
    depth = max(p.max_depth for p in pathsets)
    num_paths = sum(p.num_paths for p in pathsets)
    parts = [_padded({k: getattr(p, k) for k in PAD}, p.num_paths, depth) for p in pathsets]
    merged = _in_canonical_order({k: np.concatenate([p[k] for p in parts], axis=2)
                                  for k in PAD})
    keep = int(merged["valid"].sum(axis=2).max(initial=0)) if num_paths else 0
    return PathSet(**{k: v[:, :, :keep] for k, v in merged.items()},
                   object_names=tuple(object_names))
