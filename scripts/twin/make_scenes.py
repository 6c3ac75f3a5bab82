"""Generate the bundled scenes from trimesh primitives.

    .venv/bin/python -m scripts.twin.make_scenes

writes ``scenes/office_floor/`` (indoor) and ``scenes/street/`` (outdoor), each a
Mitsuba XML plus one PLY per named object. The output is committed; rerun this after
changing the layout. Walls are single flat surfaces (Sionna RT's thin-slab model puts
the thickness in the material); furniture and buildings are closed boxes, so a UE
placed inside one is flagged.
"""

from __future__ import annotations

import shutil

import numpy as np
import trimesh

from twin.scene import BUNDLED_DIR, write_mitsuba_scene


def quad(corner: tuple[float, float, float], u: tuple[float, float, float],
         v: tuple[float, float, float]) -> trimesh.Trimesh:
    """A flat rectangle spanned by edge vectors ``u`` and ``v`` from ``corner``."""
    c, du, dv = (np.asarray(a, dtype=np.float64) for a in (corner, u, v))
    vertices = np.array([c, c + du, c + du + dv, c + dv])
    return trimesh.Trimesh(vertices, [[0, 1, 2], [0, 2, 3]], process=False)


def wall_x(x0: float, x1: float, y: float, z0: float, z1: float) -> trimesh.Trimesh:
    """Vertical wall in the plane ``y = const`` from ``x0`` to ``x1``."""
    return quad((x0, y, z0), (x1 - x0, 0, 0), (0, 0, z1 - z0))


def wall_y(y0: float, y1: float, x: float, z0: float, z1: float) -> trimesh.Trimesh:
    """Vertical wall in the plane ``x = const`` from ``y0`` to ``y1``."""
    return quad((x, y0, z0), (0, y1 - y0, 0), (0, 0, z1 - z0))


def box(center: tuple[float, float, float], extents: tuple[float, float, float]) -> trimesh.Trimesh:
    mesh = trimesh.creation.box(extents=extents)
    mesh.apply_translation(center)
    return mesh


def office_floor() -> tuple[dict[str, trimesh.Trimesh], dict[str, str]]:
    """A 24 m x 14 m office floor, 3 m high: a corridor (y 6-8 m) between two rows of
    rooms, a glass facade on the south side, a glass meeting room, desks and cabinets."""
    H = 3.0
    m: dict[str, trimesh.Trimesh] = {}
    mat: dict[str, str] = {}

    def add(name: str, mesh: trimesh.Trimesh, material: str) -> None:
        m[name], mat[name] = mesh, material

    add("floor", quad((0, 0, 0), (24, 0, 0), (0, 14, 0)), "itu_concrete")
    add("ceiling", quad((0, 0, H), (24, 0, 0), (0, 14, 0)), "itu_ceiling_board")
    add("wall_outer_north", wall_x(0, 24, 14, 0, H), "itu_concrete")
    add("wall_outer_west", wall_y(0, 14, 0, 0, H), "itu_concrete")
    add("wall_outer_east", wall_y(0, 14, 24, 0, H), "itu_concrete")
    # South facade: concrete parapet below a glass band.
    add("wall_outer_south_parapet", wall_x(0, 24, 0, 0, 0.9), "itu_concrete")
    add("window_south", wall_x(0, 24, 0, 0.9, H), "itu_glass")
    # Corridor walls with 1 m door gaps.
    south_doors = [(3.0, 4.0), (11.0, 12.0), (19.0, 20.0)]
    north_doors = [(2.0, 3.0), (8.0, 9.0), (20.0, 21.0)]
    for side, y, doors in (("south", 6.0, south_doors), ("north", 8.0, north_doors)):
        edges = [0.0, *[e for d in doors for e in d], 24.0]
        for k in range(0, len(edges), 2):
            x0, x1 = edges[k], edges[k + 1]
            if side == "north" and x0 >= 12.0 and x1 <= 18.0:
                continue  # the meeting room's glass front replaces this stretch
            if side == "north" and x0 < 12.0 < x1:
                plaster = "itu_plasterboard"
                add(f"wall_corridor_{side}_{k // 2}a", wall_x(x0, 12.0, y, 0, H), plaster)
                add(f"wall_corridor_{side}_{k // 2}b", wall_x(18.0, x1, y, 0, H), plaster)
                continue
            add(f"wall_corridor_{side}_{k // 2}", wall_x(x0, x1, y, 0, H), "itu_plasterboard")
    add("glass_meeting_room", wall_x(12.0, 18.0, 8.0, 0, H), "itu_glass")
    # Partitions between rooms.
    for k, x in enumerate((8.0, 16.0)):
        add(f"wall_partition_south_{k}", wall_y(0, 6, x, 0, H), "itu_plasterboard")
    for k, x in enumerate((6.0, 12.0, 18.0)):
        add(f"wall_partition_north_{k}", wall_y(8, 14, x, 0, H), "itu_plasterboard")
    # Furniture: desks (wood) and cabinets (metal).
    desks = [(4.0, 2.5), (12.0, 2.5), (20.0, 3.0), (3.0, 11.0), (9.0, 11.5), (21.0, 11.0)]
    for k, (x, y) in enumerate(desks):
        add(f"desk_{k}", box((x, y, 0.375), (1.6, 0.8, 0.75)), "itu_wood")
    add("meeting_table", box((15.0, 11.0, 0.375), (3.0, 1.2, 0.75)), "itu_wood")
    cabinets = [(0.4, 4.5), (23.6, 12.5), (7.6, 9.0)]
    for k, (x, y) in enumerate(cabinets):
        add(f"cabinet_{k}", box((x, y, 1.0), (0.5, 1.2, 2.0)), "itu_metal")
    return m, mat


def street() -> tuple[dict[str, trimesh.Trimesh], dict[str, str]]:
    """An 80 m street canyon along x (20 m wide, y in [-10, 10]) with four buildings on
    each side, 8-24 m tall, and a cross street at x in [-5, 5]."""
    m: dict[str, trimesh.Trimesh] = {}
    mat: dict[str, str] = {}
    m["ground"], mat["ground"] = quad((-60, -50, 0), (120, 0, 0), (0, 100, 0)), "itu_concrete"
    materials = ("itu_concrete", "itu_glass", "itu_marble", "itu_brick")
    heights = (18.0, 12.0, 24.0, 9.0, 15.0, 21.0, 8.0, 14.0)
    spans = ((-40.0, -22.0), (-20.0, -5.0), (5.0, 22.0), (24.0, 40.0))
    k = 0
    for side, (y0, y1) in (("south", (-30.0, -10.0)), ("north", (10.0, 28.0))):
        for j, (x0, x1) in enumerate(spans):
            name = f"building_{side}_{j}"
            h = heights[k]
            m[name] = box(((x0 + x1) / 2, (y0 + y1) / 2, h / 2), (x1 - x0, y1 - y0, h))
            mat[name] = materials[k % len(materials)]
            k += 1
    return m, mat


def main() -> None:
    for name, build in (("office_floor", office_floor), ("street", street)):
        out = BUNDLED_DIR / name
        if (out / "meshes").exists():
            shutil.rmtree(out / "meshes")
        meshes, materials = build()
        xml = write_mitsuba_scene(meshes, materials, out)
        print(f"wrote {xml.relative_to(BUNDLED_DIR.parent)} ({len(meshes)} objects)")


if __name__ == "__main__":
    main()
