"""``twin export deepmimo``: a run as a DeepMIMO v4 scenario folder (docs/DEEPMIMO.md).

The folder is what the ``deepmimo`` package (4.0.x) loads as it is
(``deepmimo.config.set("scenarios_folder", PARENT); deepmimo.load(NAME)``):

* ``params.json``: DeepMIMO's ``version``, ``rt_params``, ``txrx_sets``, ``materials``,
  ``scene`` blocks, and a ``twin`` block (the run it came from, the snapshot times, and
  the channel parameters that reproduce the run's CFR);
* per BS ``b`` (TX set 0, point ``b``) and the UE (RX set 1, one point per snapshot) the
  arrays ``{key}_t000_tx{b:03}_r001.npz``: ``rx_pos``, ``tx_pos``, ``aoa_az``, ``aoa_el``,
  ``aod_az``, ``aod_el``, ``delay``, ``power``, ``phase``, ``inter``, ``inter_pos`` (what
  DeepMIMO's loader reads) and ``inter_obj`` (the object each path hit: DeepMIMO
  computes its own from the geometry; this one is the ray tracer's);
* the scene as DeepMIMO's lossless mesh: ``objects.json``, ``vertices.npz``,
  ``faces.npz``, ``materials.npz``; an object's DeepMIMO id is its run object id.

A drive is one RX set whose points are the snapshots (DeepMIMO's time-varying form, a
folder per snapshot, is for scenes that move; the twin's scene is static): the UE
position of snapshot ``t`` is ``rx_pos[t]``, its time ``params["twin"]["snapshot_time_s"]
[t]``.

Conventions (DeepMIMO's, as its own converters write them): angles in degrees, azimuth
from +x toward +y, ``*_el`` the zenith angle from +z; ``power`` the path's power gain
``20 log10 |a|`` [dB]; ``phase`` [deg]; ``delay`` [s]; ``inter`` one decimal digit per
interaction from the BS on (1 reflection, 2 diffraction, 3 scattering, 4 transmission; 0
line of sight); paths strongest first; float32; NaN padding. DeepMIMO's channel model
``h_k = sqrt(P / N) e^{j phase} a_rx a_tx e^{-j 2π τ k B / N}`` adds no carrier phase and
puts subcarrier 0 at the carrier, its arrays' reference at their first element: so
``phase`` carries the carrier phase and is the path's phase at the band's first
subcarrier, at DeepMIMO's first element of each array, and DeepMIMO's channel of the
parameters in ``params["twin"]["channel"]`` times ``sqrt(K)`` is the run's CFR (its
antennas in DeepMIMO's order, ``params["twin"]["bs_antenna_order"]``).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from estimators.arrays import SPEED_OF_LIGHT, rotation_matrix, unit_direction
from estimators.types import ArrayGeometry
from twin.errors import TwinInputError
from twin.outputs import Artifact, atomic_directory, check_output
from twin.paths import InteractionType
from twin.runfile import RunData, read_run

#: The DeepMIMO release whose format is written (``params.json``'s ``version``).
DEEPMIMO_VERSION = "4.0.5"
#: What marks a folder as this command's (``params.json``'s ``twin.exported_by``).
EXPORTED_BY = "twin export deepmimo"
#: Default paths kept per (snapshot, BS): DeepMIMO's own (``deepmimo.consts.MAX_PATHS``).
DEFAULT_MAX_PATHS = 25
#: The twin's interaction types → DeepMIMO's interaction codes (a RIS tile reradiates as
#: a reflector; its object, the tile, says it was one: ``params["twin"]["ris_objects"]``).
INTERACTION_CODES: dict[InteractionType, int] = {
    InteractionType.SPECULAR: 1,
    InteractionType.DIFFRACTION: 2,
    InteractionType.DIFFUSE: 3,
    InteractionType.REFRACTION: 4,
    InteractionType.RIS: 1,
}
#: Characters DeepMIMO refuses in a scenario name (``deepmimo.consts``).
_INVALID_NAME_CHARS = "/\\:*?\"'<>|\n"
#: Object names that make DeepMIMO's one terrain object (its converters' keywords).
_TERRAIN_WORDS = ("floor", "ground", "terrain", "plane", "road")
_FP = np.float32


def _is_export(path: Path) -> bool:
    """Whether ``path`` is a folder this command wrote (its ``params.json`` marker and
    nothing but ``.json``/``.npz`` files)."""
    try:
        params = json.loads((path / "params.json").read_text())
        marked = params.get("twin", {}).get("exported_by") == EXPORTED_BY
        return bool(marked) and all(
            p.is_file() and p.suffix in (".json", ".npz") for p in path.iterdir())
    except (OSError, ValueError, AttributeError):
        return False


#: What ``twin export deepmimo`` writes (``--overwrite`` replaces only this).
DEEPMIMO_SCENARIO = Artifact("DeepMIMO scenario folder", "twin export deepmimo", _is_export,
                             directory=True)


@dataclass(frozen=True)
class DeepMimoExport:
    """What :func:`export_deepmimo` wrote.

    Attributes
    ----------
    path : the scenario folder.
    num_bs, num_snapshots : TX points (BSs) and RX points (snapshots).
    num_paths : paths written, over every (snapshot, BS).
    max_paths : the most paths of one (snapshot, BS) written.
    dropped_paths : valid run paths left out by ``max_paths``.
    late_paths : paths written whose delay is at least ``K / B`` (DeepMIMO's OFDM channel
        drops them: the CFR of DeepMIMO then lacks them).
    factorization_error : the largest relative residual, over the paths written, of a
        path's per-antenna gains against one gain times the arrays' responses (0 for a
        synthetic array: the gains are exactly that).
    """

    path: Path
    num_bs: int
    num_snapshots: int
    num_paths: int
    max_paths: int
    dropped_paths: int
    late_paths: int
    factorization_error: float


@dataclass(frozen=True)
class DeepMimoArray:
    """How DeepMIMO's ``shape = [n_y, n_z]`` panel stands for one of the run's arrays.

    Attributes
    ----------
    shape : ``[cols, rows]`` (DeepMIMO: elements along local y, then z).
    spacing : element spacing [wavelengths].
    order : ``[ant]`` the run's antenna index of DeepMIMO's antenna ``m = iz * cols + iy``.
    reference : ``[3]`` [m], DeepMIMO's first element in the run's array frame.
    """

    shape: tuple[int, int]
    spacing: float
    order: npt.NDArray[np.int64]
    reference: npt.NDArray[np.float64]


def deepmimo_array(array: ArrayGeometry, wavelength: float, what: str) -> DeepMimoArray:
    """DeepMIMO's panel for a run's planar array (rows along local z, columns along local
    y, boresight +x; estimators.arrays), its antenna order and reference element.

    Raises
    ------
    TwinInputError
        A dual-polarized array (DeepMIMO's channel model has one port per element) or
        element positions that are not the uniform panel DeepMIMO models.
    """
    rows, cols = int(array.rows), int(array.cols)
    positions = np.asarray(array.element_positions, dtype=np.float64)
    if len(positions) != rows * cols:
        raise TwinInputError(
            f"{what}: a {array.polarization}-polarized array ({len(positions)} ports for "
            f"{rows} x {cols} elements); DeepMIMO's channel model has one port per element")
    grid_y, grid_z = np.meshgrid(np.arange(cols), np.arange(rows), indexing="xy")
    iy, iz = grid_y.ravel(), grid_z.ravel()  # DeepMIMO's m = iz * cols + iy: y fastest
    # The run's element (row i, col j) is at y ∝ j, z ∝ -i, index j * rows + i.
    order = (iy * rows + (rows - 1 - iz)).astype(np.int64)
    reference = positions[order[0]]
    relative = positions[order] - reference
    if cols > 1:
        spacing_m = float(relative[1, 1])
    elif rows > 1:
        spacing_m = float(relative[cols, 2])
    else:
        spacing_m = 0.5 * wavelength
    expected = np.stack([np.zeros(rows * cols), iy * spacing_m, iz * spacing_m], axis=-1)
    if not np.allclose(relative, expected, rtol=0.0, atol=1e-6 * wavelength):
        raise TwinInputError(f"{what}: element positions are not a uniform planar array "
                             "(DeepMIMO models one spacing along both axes)")
    return DeepMimoArray(shape=(cols, rows), spacing=spacing_m / wavelength, order=order,
                         reference=reference)


def deepmimo_rotation_deg(orientation: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """DeepMIMO's antenna ``rotation`` [deg] (about x, y, z; 3GPP TR 38.901's slant,
    downtilt, bearing) of a twin orientation ``[..., 3]`` (yaw, pitch, roll) [rad]."""
    o = np.asarray(orientation, dtype=np.float64)
    return np.rad2deg(o[..., ::-1])


def interaction_codes(types: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """DeepMIMO's interaction code of paths: ``types [..., D]`` (:class:`InteractionType`,
    vertex 0 at the BS) → ``[...]`` one decimal digit per interaction, the BS's first
    (0: line of sight)."""
    t = np.asarray(types, dtype=np.int64)
    lut = np.zeros(max(int(k) for k in InteractionType) + 1, dtype=np.int64)
    for kind, code in INTERACTION_CODES.items():
        lut[kind] = code
    digits = lut[t]
    present = t != InteractionType.NONE
    count = present.sum(axis=-1, keepdims=True)
    rank = np.cumsum(present, axis=-1)
    weights = np.where(present, 10.0 ** (count - rank), 0.0)
    return np.asarray((digits * weights).sum(axis=-1))


def _steering(positions_world: npt.NDArray[np.float64], angles: npt.NDArray[np.float64],
              wavelength: float) -> npt.NDArray[np.complex128]:
    """``exp(+j 2π/λ r · u)``: ``positions_world [..., N, 3]``, ``angles [..., P, 2]`` →
    ``[..., P, N]``."""
    u = unit_direction(angles[..., 0], angles[..., 1])
    return np.exp(2j * np.pi / wavelength * np.einsum("...pi,...ni->...pn", u, positions_world))


def reference_gains(run: RunData) -> tuple[npt.NDArray[np.complex128], npt.NDArray[np.float64]]:
    """Each path's gain at the arrays' reference points (their centres).

    Returns
    -------
    gain : ``[T, B, P]`` complex128, the least-squares fit of ``gain[..., r, s] = g a_r[r]
        a_t[s]`` (Sionna's synthetic arrays make it exact); 0 for invalid paths.
    residual : ``[T, B, P]`` the fit's relative residual (NaN for invalid paths).
    """
    p = run.paths
    wavelength = SPEED_OF_LIGHT / run.carrier_frequency
    valid = p.valid
    aod = np.where(valid[..., None], p.aod, 0.0)
    aoa = np.where(valid[..., None], p.aoa, 0.0)
    bs_world = np.einsum("bij,nj->bni", rotation_matrix(run.bs_orientation),
                         run.bs_array.element_positions)  # [B, Nt, 3]
    ue_world = np.einsum("tij,nj->tni", rotation_matrix(run.drive.orientation),
                         run.ue_array.element_positions)  # [T, Nr, 3]
    a_t = _steering(bs_world[None], aod, wavelength)  # [T, B, P, Nt]
    a_r = _steering(ue_world[:, None], aoa, wavelength)  # [T, B, P, Nr]
    gain = p.gain.astype(np.complex128)  # [T, B, P, Nr, Nt]
    size = gain.shape[-1] * gain.shape[-2]
    g = np.einsum("tbprs,tbpr,tbps->tbp", gain, a_r.conj(), a_t.conj()) / max(size, 1)
    model = g[..., None, None] * a_r[..., :, None] * a_t[..., None, :]
    norm = np.linalg.norm(gain, axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        residual = np.linalg.norm(gain - model, axis=(-2, -1)) / norm
    return np.where(valid, g, 0), np.where(valid, residual, np.nan)


@dataclass(frozen=True)
class _Scene:
    """DeepMIMO's lossless mesh of the run's scene plus its RIS tiles."""

    objects: list[dict[str, Any]]
    vertices: npt.NDArray[np.float32]
    faces: dict[str, npt.NDArray[np.int32]]
    face_materials: dict[str, npt.NDArray[np.int32]]
    materials: dict[str, dict[str, Any]]
    ris_objects: list[int]


def _float(value: Any) -> float:
    try:
        return float(np.asarray(value, dtype=np.float64).ravel()[0])
    except (TypeError, ValueError, IndexError):
        return float("nan")


def _scene(run: RunData, run_path: Path) -> _Scene:
    """The run's scene objects (ids = run object ids) and RIS tiles as DeepMIMO's mesh."""
    import yaml

    from twin.config import SceneConfig
    from twin.maps.geometry import ris_tile_corners
    from twin.scene import TwinWarning, load_twin_scene

    source = run.scene_source
    prefixed = ":" in source.split("/")[0]
    if not prefixed and not Path(source).is_file():
        raise TwinInputError(f"{run_path}: scene file {source} not found (the export "
                             "writes the scene's geometry)")
    section = (yaml.safe_load(run.config_yaml) or {}).get("scene") or {}
    try:
        scene = load_twin_scene(SceneConfig(**{**section, "file": source}), Path.cwd(),
                                run.carrier_frequency)
    except (ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TwinInputError(f"{run_path}: cannot load the scene {source} ({reason})") from None
    names = list(scene.object_names)
    if tuple(names) != run.paths.object_names[:len(names)]:
        raise TwinInputError(f"{run_path}: the scene {source} no longer has the run's "
                             "objects; export from a run of the current scene")
    if scene.sha256 != run.scene_sha256:
        warnings.warn(f"{run_path}: the scene {source} changed since the run was traced "
                      "(SHA-256); exporting the current file's geometry", TwinWarning,
                      stacklevel=3)
    terrain = [i for i, n in enumerate(names) if any(w in n.lower() for w in _TERRAIN_WORDS)]
    materials: dict[str, dict[str, Any]] = {}
    material_of: dict[str, int] = {}
    objects, faces, face_materials, vertex_blocks = [], {}, {}, []
    offset = 0

    def add(object_id: int, name: str, label: str, vertices: npt.NDArray[np.float64],
            triangles: npt.NDArray[np.int64], material: int) -> None:
        nonlocal offset
        key = str(object_id)
        objects.append({"name": name, "label": label, "id": object_id, "mesh_key": key})
        vertex_blocks.append(vertices)
        faces[key] = (triangles + offset).astype(np.int32)
        face_materials[key] = np.full(len(triangles), material, dtype=np.int32)
        offset += len(vertices)

    def material_index(name: str, permittivity: float, conductivity: float) -> int:
        if name not in material_of:
            material_of[name] = len(material_of)
            materials[f"material_{material_of[name]}"] = {
                "id": material_of[name], "name": name, "permittivity": permittivity,
                "conductivity": conductivity}
        return material_of[name]

    for i, name in enumerate(names):
        mesh = scene.object_mesh(i)
        radio = scene.sionna_scene.objects[name].radio_material
        material = material_index(str(radio.name), _float(radio.relative_permittivity),
                                  _float(radio.conductivity))
        label = "terrain" if terrain == [i] else "buildings"
        add(i, name, label, np.asarray(mesh.vertices), np.asarray(mesh.faces), material)
    ris_objects = []
    if run.ris is not None:
        corners, _ = ris_tile_corners(run.ris, SPEED_OF_LIGHT / run.carrier_frequency)
        tile_material = material_index("ris", 1.0, 0.0)
        for r, name in enumerate(run.ris.name):
            object_id = len(names) + r
            ris_objects.append(object_id)
            add(object_id, name, "objects", corners[r], np.array([[0, 1, 2], [0, 2, 3]]),
                tile_material)
    vertices = (np.concatenate(vertex_blocks) if vertex_blocks else np.zeros((0, 3)))
    return _Scene(objects=objects, vertices=vertices.astype(_FP), faces=faces,
                  face_materials=face_materials, materials=materials, ris_objects=ris_objects)


def _check_name(out: Path) -> None:
    name = out.name
    bad = sorted({c for c in name if c in _INVALID_NAME_CHARS})
    if not name or bad or name != name.lower():
        raise TwinInputError(
            f"output: {out}: DeepMIMO loads a scenario by its folder name, lower-cased, "
            "without / \\ : * ? \" ' < > |; give a folder name like that (e.g. "
            f"{name.lower().translate({ord(c): '_' for c in _INVALID_NAME_CHARS}) or 'run'})")


def _tracing(run: RunData) -> dict[str, Any]:
    import yaml

    return dict((yaml.safe_load(run.config_yaml) or {}).get("tracing") or {})


def _rt_params(run: RunData) -> dict[str, Any]:
    """DeepMIMO's ``rt_params`` block of the run's tracing settings."""
    tracing = _tracing(run)
    depth = int(tracing.get("max_depth", 3))
    specular = bool(tracing.get("specular_reflection", True))
    diffuse = bool(tracing.get("diffuse_reflection", False))
    refraction = bool(tracing.get("refraction", True))
    diffraction = bool(tracing.get("diffraction", False))
    return {
        "raytracer_name": "Sionna Ray Tracing",
        "raytracer_version": run.versions.get("sionna-rt", "unknown"),
        "frequency": float(run.carrier_frequency),
        "max_path_depth": depth,
        "max_reflections": depth if specular else 0,
        "max_diffractions": int(diffraction),
        "max_scattering": int(diffuse),
        "max_transmissions": depth if refraction else 0,
        "diffuse_reflections": depth - 1 if diffuse else 0,
        "diffuse_diffractions": 0,
        "diffuse_transmissions": 0,
        "diffuse_final_interaction_only": True,
        "diffuse_random_phases": False,
        "terrain_reflection": specular,
        "terrain_diffraction": diffraction,
        "terrain_scattering": diffuse,
        "num_rays": int(float(tracing.get("samples_per_src", 1e5))),
        "ray_casting_method": "uniform",
        "synthetic_array": True,
        "ray_casting_range_az": 360.0,
        "ray_casting_range_el": 180.0,
        "gps_bbox": [0, 0, 0, 0],
        "raw_params": {"twin_tracing": tracing},
    }


def _txrx_set(set_id: int, name: str, *, is_tx: bool, points: int, active: int,
              array: DeepMimoArray, wavelength: float,
              orientation_deg: npt.NDArray[np.float64]) -> dict[str, Any]:
    cols, rows = array.shape
    iy, iz = np.meshgrid(np.arange(cols), np.arange(rows), indexing="xy")
    rel = np.stack([np.zeros(iy.size), iy.ravel(), iz.ravel()], axis=-1)
    return {
        "name": name, "id_orig": set_id, "id": set_id, "is_tx": is_tx, "is_rx": not is_tx,
        "num_points": points, "num_active_points": active, "num_ant": rows * cols,
        "dual_pol": False,
        "ant_rel_positions": (rel * array.spacing * wavelength).tolist(),
        "array_orientation": orientation_deg.tolist(), "grid_spacing": None,
    }


def export_deepmimo(
    run_path: str | Path, out: str | Path, *, max_paths: int = DEFAULT_MAX_PATHS,
    overwrite: bool = False, on_progress: Callable[[int, int], None] | None = None,
) -> DeepMimoExport:
    """Write a run file as a DeepMIMO v4 scenario folder (module docstring).

    Parameters
    ----------
    run_path : a file of ``twin simulate``.
    out : the scenario folder (its name is DeepMIMO's scenario name: lower case).
    max_paths : paths kept per (snapshot, BS), the strongest.
    overwrite : replace an existing export.
    on_progress : ``(done, total)`` BSs written.

    Raises
    ------
    TwinInputError
        A missing or non-run input, an output DeepMIMO cannot load by name or that exists
        (without ``overwrite``, or not an export), ``max_paths < 1``, a dual-polarized or
        non-uniform array, a scene that is gone or no longer the run's.
    """
    run_path, out = Path(run_path), Path(out)
    if max_paths < 1:
        raise TwinInputError(f"--max-paths must be at least 1, got {max_paths}")
    _check_name(out)
    check_output(out, DEEPMIMO_SCENARIO, overwrite=overwrite, inputs=[run_path])
    run = read_run(run_path)
    wavelength = SPEED_OF_LIGHT / run.carrier_frequency
    bs_array = deepmimo_array(run.bs_array, wavelength, f"{run_path}: BS array")
    ue_array = deepmimo_array(run.ue_array, wavelength, f"{run_path}: UE array")
    scene = _scene(run, run_path)

    p = run.paths
    T, B = p.valid.shape[:2]
    gain, residual = reference_gains(run)
    # Phase references: DeepMIMO's first element of each array and the first subcarrier.
    bs_ref = np.einsum("bij,j->bi", rotation_matrix(run.bs_orientation), bs_array.reference)
    ue_ref = np.einsum("tij,j->ti", rotation_matrix(run.drive.orientation), ue_array.reference)
    k = 2.0 * np.pi / wavelength
    valid = p.valid
    u_t = unit_direction(np.where(valid, p.aod[..., 0], 0), np.where(valid, p.aod[..., 1], 0))
    u_r = unit_direction(np.where(valid, p.aoa[..., 0], 0), np.where(valid, p.aoa[..., 1], 0))
    tau = np.where(valid, p.tau, 0.0)
    f0 = float(run.frequencies[0]) if run.frequencies.size else 0.0
    g_dm = gain * np.exp(1j * k * np.einsum("tbpi,bi->tbp", u_t, bs_ref)) \
        * np.exp(1j * k * np.einsum("tbpi,ti->tbp", u_r, ue_ref)) \
        * np.exp(-2j * np.pi * f0 * tau)
    power = np.abs(gain) ** 2
    # Strongest first (DeepMIMO's order), ties by delay; then the first max_paths.
    key = np.where(valid & (power > 0), power, -np.inf)
    order = np.argsort(-key, axis=2, kind="stable")
    kept = np.take_along_axis(valid & (power > 0), order, axis=2)
    kept[:, :, max_paths:] = False
    num_kept = kept.sum(axis=2)  # [T, B]
    K = int(run.frequencies.size)
    late = kept & (np.take_along_axis(tau, order, axis=2) * run.bandwidth >= K)

    bs_rot = deepmimo_rotation_deg(run.bs_orientation)  # [B, 3]
    ue_rot = deepmimo_rotation_deg(run.drive.orientation)  # [T, 3]
    channel = {
        "freq_domain": 1,
        "num_paths": int(max_paths),
        "ofdm": {"subcarriers": K, "bandwidth": float(run.bandwidth),
                 "selected_subcarriers": list(range(K)), "rx_filter": 0},
        "bs_antenna": {"shape": list(bs_array.shape), "spacing": bs_array.spacing,
                       "rotation": (bs_rot[0] if B else np.zeros(3)).tolist(),  # BS 0's
                       "radiation_pattern": "isotropic"},
        "ue_antenna": {"shape": list(ue_array.shape), "spacing": ue_array.spacing,
                       "rotation": ue_rot.tolist(), "radiation_pattern": "isotropic"},
    }
    active = int(np.count_nonzero(num_kept.sum(axis=1) > 0))
    params = {
        "version": DEEPMIMO_VERSION,
        "rt_params": _rt_params(run),
        "txrx_sets": {
            "txrx_set_0": _txrx_set(0, "bs", is_tx=True, points=B, active=B, array=bs_array,
                                    wavelength=wavelength,
                                    orientation_deg=bs_rot[0] if B else np.zeros(3)),
            "txrx_set_1": _txrx_set(1, "ue", is_tx=False, points=T, active=active,
                                    array=ue_array, wavelength=wavelength,
                                    orientation_deg=ue_rot[0] if T else np.zeros(3)),
        },
        "materials": scene.materials,
        "scene": {
            "num_scenes": 1, "n_objects": len(scene.objects),
            "n_vertices": len(scene.vertices),
            "n_faces": int(sum(len(f) for f in scene.faces.values())),
            "n_triangular_faces": int(sum(len(f) for f in scene.faces.values())),
            "representation": "mesh",
        },
        "twin": {
            "exported_by": EXPORTED_BY,
            "run_file": run_path.name,
            "run_scene_sha256": run.scene_sha256,
            "run_seed": run.seed,
            "scene_source": run.scene_source,
            "bs_names": list(run.bs_name),
            "snapshot_time_s": run.drive.time.tolist(),
            "carrier_frequency_hz": float(run.carrier_frequency),
            "subcarrier_frequencies_hz": run.frequencies.tolist(),
            "max_paths": int(max_paths),
            "phase_reference": (
                "phase at the band's first subcarrier (carrier + subcarrier_frequencies_hz"
                "[0]) and at DeepMIMO's first element of each array"),
            "channel": channel,
            "channel_scale": float(np.sqrt(K)),
            "bs_antenna_order": bs_array.order.tolist(),
            "ue_antenna_order": ue_array.order.tolist(),
            "bs_rotation_deg": bs_rot.tolist(),
            "interaction_codes": {t.name: c for t, c in INTERACTION_CODES.items()},
            "ris_objects": scene.ris_objects,
            "object_names": list(p.object_names),
        },
    }

    with atomic_directory(out) as tmp:
        def save(key_: str, b: int, array: npt.NDArray[Any]) -> None:
            _savez(tmp / f"{key_}_t000_tx{b:03d}_r001.npz", {key_: array})

        for b in range(B):
            n = max(int(num_kept[:, b].max(initial=0)), 1)
            sel = order[:, b, :n]  # [T, n] run path index of each DeepMIMO path
            keep = kept[:, b, :n]

            def pick(x: npt.NDArray[Any], sel: npt.NDArray[np.int64] = sel,
                     keep: npt.NDArray[np.bool_] = keep, b: int = b) -> npt.NDArray[Any]:
                taken = np.take_along_axis(x[:, b], sel.reshape(sel.shape + (1,) * (
                    x.ndim - 3)), axis=1)
                mask = keep.reshape(keep.shape + (1,) * (x.ndim - 3))
                return np.where(mask, taken, np.nan)

            depth = np.where(keep, np.take_along_axis(p.depth[:, b], sel, axis=1), 0)
            d = int(depth.max(initial=0))
            types = np.take_along_axis(p.interaction_types[:, b], sel[..., None], axis=1)[..., :d]
            codes = np.where(keep, interaction_codes(types), np.nan)
            points = pick(p.interaction_points)[:, :, :d]
            objects = pick(np.where(p.object_ids >= 0, p.object_ids, -1).astype(np.float64))
            objects = np.where(objects >= 0, objects, np.nan)[:, :, :d]
            g = pick(g_dm)
            with np.errstate(divide="ignore", invalid="ignore"):
                power_db = 10.0 * np.log10(pick(power))
            save("rx_pos", b, run.drive.position.astype(_FP))
            save("tx_pos", b, run.bs_position[b][None].astype(_FP))
            save("aod_az", b, np.rad2deg(pick(p.aod[..., 0])).astype(_FP))
            save("aod_el", b, np.rad2deg(pick(p.aod[..., 1])).astype(_FP))
            save("aoa_az", b, np.rad2deg(pick(p.aoa[..., 0])).astype(_FP))
            save("aoa_el", b, np.rad2deg(pick(p.aoa[..., 1])).astype(_FP))
            save("delay", b, pick(p.tau).astype(_FP))
            save("power", b, power_db.astype(_FP))
            save("phase", b, np.where(keep, np.angle(g, deg=True), np.nan).astype(_FP))
            save("inter", b, codes.astype(_FP))
            save("inter_pos", b, points.astype(_FP))
            save("inter_obj", b, objects.astype(_FP))
            if on_progress is not None:
                on_progress(b + 1, B)
        _savez(tmp / "vertices.npz", {"vertices": scene.vertices})
        _savez(tmp / "faces.npz", scene.faces)
        _savez(tmp / "materials.npz", scene.face_materials)
        (tmp / "objects.json").write_text(json.dumps(scene.objects, indent=2))
        (tmp / "params.json").write_text(json.dumps(params, indent=2))

    residual_kept = np.take_along_axis(residual, order, axis=2)[kept]
    return DeepMimoExport(
        path=out, num_bs=B, num_snapshots=T, num_paths=int(kept.sum()),
        max_paths=int(num_kept.max(initial=0)),
        dropped_paths=int(valid.sum() - kept.sum()), late_paths=int(late.sum()),
        factorization_error=float(residual_kept.max(initial=0.0)))


def _savez(path: Path, arrays: dict[str, Any]) -> None:
    """Arrays to a compressed ``.npz`` (DeepMIMO's format: one key per file, its name)."""
    np.savez_compressed(path, **arrays)


__all__ = ["DEEPMIMO_SCENARIO", "DEEPMIMO_VERSION", "DeepMimoArray", "DeepMimoExport",
           "deepmimo_array", "deepmimo_rotation_deg", "export_deepmimo",
           "interaction_codes", "reference_gains"]
