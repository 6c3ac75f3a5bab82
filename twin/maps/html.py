"""HTML maps (:mod:`twin.maps.data`): one self-contained plotly page.

plotly.js is embedded (nothing is fetched when the page is viewed; ``file://`` works
offline). The scene is a ``Mesh3d`` (the hidden ceiling a legend entry, off at first),
each RIS tile an opaque ``Mesh3d`` named in the legend,
every layer toggles in the legend, a true point's hover says its object, snapshot and
what each algorithm made of it, the objects holding true points are named at them, and
a table beside the view says which walls were mapped. A slider (▶ plays it) steps
through "all" (the whole drive) and every snapshot: that snapshot's true points,
estimated scatterers, matches, names and table, and the UE positions up to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from estimators.typing import FloatArray
from twin.maps.data import (
    Layers,
    MapData,
    drawn_statuses,
    layers,
    ris_quads,
    title,
)
from twin.maps.geometry import (
    Camera,
    Triangles,
    auto_camera,
)
from twin.maps.style import (
    BS_RGB,
    EDGE_RGB,
    MESH_RGBA,
    RIS_RGB,
    STATUS_STYLE,
    TRUE_UE_RGB,
    PointStatus,
    algorithm_rgb,
    wall_cell,
)

VIEW_DOMAIN_X = (0.0, 0.74)
"""Share of the page's width [0, 1] the 3D view and the table take; the legend sits right."""
VIEW_DOMAIN_Y = (0.36, 1.0)
"""Share of the page's height the 3D view takes; the slider and then the table lie below."""
TABLE_TOP = 0.2
"""Top of the walls table [0, 1 of the page's height] (it scrolls when long)."""


def _hex(rgb: Sequence[float]) -> str:
    return "#" + "".join(f"{round(255 * c):02x}" for c in rgb[:3])


def _xyz(points: FloatArray) -> dict[str, Any]:
    """Plotly coordinates; an empty layer gets one NaN point, so that its legend entry
    stays put while the slider moves."""
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 3)  # float32: half the page size
    if len(pts) == 0:
        pts = np.full((1, 3), np.nan, dtype=np.float32)
    return {"x": pts[:, 0], "y": pts[:, 1], "z": pts[:, 2]}


def _segments_xyz(segments: FloatArray) -> dict[str, Any]:
    """Segments ``[M, 2, 3]`` as one polyline with gaps (NaN rows) between them."""
    gap = np.full((segments.shape[0], 1, 3), np.nan)
    return _xyz(np.concatenate([segments, gap], axis=1).reshape(-1, 3))


def _table(data: MapData, view: Layers) -> Any:
    import plotly.graph_objects as go

    rows = view.table
    columns: list[list[str]] = [[r.name for r in rows], [str(r.points) for r in rows]]
    fills: list[list[str]] = [["white"] * len(rows), ["white"] * len(rows)]
    for name in data.algorithms:
        column, fill = [], []
        for r in rows:
            text, tint = wall_cell(*r.counts[name])
            column.append(text)
            fill.append(_hex(tint))
        columns.append(column)
        fills.append(fill)
    header = ["object", "points", *data.algorithms]
    header_colours = ["#333333", "#333333", *(_hex(algorithm_rgb(i))
                                              for i in range(len(data.algorithms)))]
    return go.Table(
        name="which walls were mapped", domain={"x": list(VIEW_DOMAIN_X),
                                                "y": [0.0, TABLE_TOP]},
        columnwidth=[3] + [1] * (len(header) - 1),
        header={"values": [f"<b>{h}</b>" for h in header], "align": "left",
                "font": {"size": 11, "color": header_colours}, "fill": {"color": "#f2f2f2"}},
        cells={"values": columns, "align": "left", "font": {"size": 11},
               "fill": {"color": fills}, "height": 20},
    )


def _dynamic_traces(data: MapData, view: Layers, statuses: Sequence[PointStatus]) -> list[Any]:
    import plotly.graph_objects as go

    xyz = "(%{x:.2f}, %{y:.2f}, %{z:.2f}) m"
    traces: list[Any] = [
        go.Scatter3d(
            name="true UE track", legendgroup="truth-ue", mode="lines+markers",
            line={"color": _hex(TRUE_UE_RGB), "width": 4},
            marker={"size": 2.5, "color": _hex(TRUE_UE_RGB)}, **_xyz(view.ue_track),
            hovertemplate=f"true UE<br>{xyz}<extra></extra>",
        ),
        go.Scatter3d(
            name="true UE (snapshot)", legendgroup="truth-ue", showlegend=False,
            mode="markers", marker={"size": 7, "color": _hex(TRUE_UE_RGB), "symbol": "circle"},
            **_xyz(view.ue_now), hovertemplate="true UE<extra></extra>",
        ),
    ]
    text = np.array(view.truth_text, dtype=object)
    for status in statuses:
        label, rgb = STATUS_STYLE[status]
        sel = view.truth_status == status
        traces.append(go.Scatter3d(
            name=label, legendgroup="truth", mode="markers",
            marker={"size": 2.5 if status == PointStatus.UNMODELLED else 3.5,
                    "color": _hex(rgb)},
            **_xyz(view.truth[sel]), text=list(text[sel]) or [""],
            hovertemplate=f"%{{text}}<br>{xyz}<extra></extra>",
        ))
    names = list(view.walls)
    traces.append(go.Scatter3d(
        name="object names", mode="text", **_xyz(np.array([view.walls[n] for n in names])),
        text=names or [""], textposition="top center",
        textfont={"size": 11, "color": "#333333"}, hoverinfo="skip",
    ))
    for i, name in enumerate(data.algorithms):
        color = _hex(algorithm_rgb(i))
        traces += [
            go.Scatter3d(
                name=f"{name}: UE track", legendgroup=f"{name}-ue", mode="lines+markers",
                line={"color": color, "width": 3, "dash": "dash"},
                marker={"size": 2.5, "color": color}, **_xyz(view.est_track[name]),
                hovertemplate=f"{name} UE<br>{xyz}<extra></extra>",
            ),
            go.Scatter3d(
                name=f"{name}: UE (snapshot)", legendgroup=f"{name}-ue", showlegend=False,
                mode="markers", marker={"size": 7, "color": color, "symbol": "diamond"},
                **_xyz(view.est_now[name]), hovertemplate=f"{name} UE<extra></extra>",
            ),
            go.Scatter3d(
                name=f"{name}: scatterers", mode="markers",
                marker={"size": 3, "color": color, "symbol": "square"},
                **_xyz(view.est_points[name]),
                hovertemplate=f"{name} scatterer<br>{xyz}<extra></extra>",
            ),
            go.Scatter3d(
                name=f"{name}: matched (< {data.cutoff:g} m)", mode="lines",
                line={"color": color, "width": 3}, **_segments_xyz(view.segments[name]),
                hoverinfo="skip",
            ),
        ]
    traces.append(_table(data, view))
    return traces


def _mesh_trace(tri: Triangles, name: str, *, visible: bool | str) -> Any:
    import plotly.graph_objects as go

    v, f = tri.vertices, tri.faces
    return go.Mesh3d(
        name=name, legendgroup=name, x=v[:, 0], y=v[:, 1], z=v[:, 2],
        i=f[:, 0], j=f[:, 1], k=f[:, 2],
        color=_hex(MESH_RGBA), opacity=0.25, flatshading=True, showlegend=True,
        visible=visible, hoverinfo="skip", lighting={"ambient": 0.7, "diffuse": 0.5},
    )


def write_html(
    data: MapData, path: Path, *, snapshot: int | None = None, camera: Camera | None = None
) -> None:
    """Write the map as one self-contained HTML page (plotly.js embedded).

    Legend entries toggle the layers; the slider steps through "all" and every snapshot
    (plotly frames of the snapshot-dependent traces); it starts at ``snapshot``.
    """
    import plotly.graph_objects as go

    static: list[Any] = []
    if data.scene is not None:
        static.append(_mesh_trace(data.scene, "scene", visible=True))
        static.append(go.Scatter3d(
            name="scene edges", legendgroup="scene", showlegend=False, mode="lines",
            line={"color": _hex(EDGE_RGB), "width": 1.5}, hoverinfo="skip",
            **_segments_xyz(data.scene_edges),
        ))
    if data.ceiling is not None:
        static.append(_mesh_trace(data.ceiling, "ceiling (hidden)", visible="legendonly"))
    for name, quad in ris_quads(data):
        v, f = quad.vertices, quad.faces
        static.append(go.Mesh3d(
            name=f"RIS tile {name}", x=v[:, 0], y=v[:, 1], z=v[:, 2], i=f[:, 0], j=f[:, 1],
            k=f[:, 2], color=_hex(RIS_RGB), flatshading=True, showlegend=True,
            hovertemplate=f"RIS tile {name}<extra></extra>",
            lighting={"ambient": 0.8, "diffuse": 0.4},
        ))
    static.append(go.Scatter3d(
        name="base stations", mode="markers+text", **_xyz(data.bs_position),
        marker={"size": 8, "color": _hex(BS_RGB), "symbol": "diamond"},
        text=list(data.bs_name), textposition="top center",
        hovertemplate="%{text}<br>(%{x:.2f}, %{y:.2f}, %{z:.2f}) m<extra></extra>",
    ))
    views: list[tuple[str, int | None]] = [("all", None)]
    views += [(str(t), t) for t in range(data.num_snapshots)]
    first = 0 if snapshot is None else snapshot + 1
    statuses = drawn_statuses(data)
    dynamic = [_dynamic_traces(data, layers(data, t), statuses) for _, t in views]
    index = list(range(len(static), len(static) + len(dynamic[0])))
    frames = [
        go.Frame(name=label, data=traces, traces=index,
                 layout={"title": {"text": title(data, t)}})
        for (label, t), traces in zip(views, dynamic, strict=True)
    ]
    fig = go.Figure(data=static + list(frames[first].data), frames=frames)
    animate = {"mode": "immediate", "frame": {"duration": 0, "redraw": True},
               "transition": {"duration": 0}}
    steps = [{"method": "animate", "label": label, "args": [[label], animate]}
             for label, _ in views]
    cam = camera or auto_camera(data.box)
    direction = cam.position - cam.target
    eye = 2.2 * direction / np.linalg.norm(direction)
    fig.update_layout(
        title={"text": title(data, snapshot)},
        scene={
            "aspectmode": "data", "domain": {"x": list(VIEW_DOMAIN_X), "y": list(VIEW_DOMAIN_Y)},
            "xaxis": {"title": {"text": "x [m]"}}, "yaxis": {"title": {"text": "y [m]"}},
            "zaxis": {"title": {"text": "z [m]"}},
            "camera": {"eye": dict(zip("xyz", map(float, eye), strict=True)),
                       "up": {"x": 0, "y": 0, "z": 1}},
        },
        legend={"itemsizing": "constant", "groupclick": "togglegroup",
                "x": VIEW_DOMAIN_X[1] + 0.01, "xanchor": "left", "y": 1.0, "yanchor": "top",
                "font": {"size": 11}},
        margin={"l": 0, "r": 0, "t": 40, "b": 0},
        annotations=[{
            "text": "<b>which walls were mapped</b> (matched / modelled true points)",
            "x": VIEW_DOMAIN_X[0], "y": TABLE_TOP + 0.005, "xref": "paper", "yref": "paper",
            "xanchor": "left", "yanchor": "bottom", "showarrow": False, "font": {"size": 12},
        }],
        sliders=[{
            "active": first, "steps": steps, "x": 0.05, "len": VIEW_DOMAIN_X[1] - 0.05,
            "y": VIEW_DOMAIN_Y[0], "yanchor": "top", "currentvalue": {"prefix": "snapshot: "},
            "pad": {"t": 10},
        }],
        updatemenus=[{
            "type": "buttons", "direction": "left", "x": 0.0, "y": VIEW_DOMAIN_Y[0],
            "xanchor": "left",
            "yanchor": "top", "pad": {"t": 10},
            "buttons": [
                {"label": "▶", "method": "animate",
                 "args": [[label for label, _ in views[1:]],
                          {**animate, "frame": {"duration": 400, "redraw": True},
                           "fromcurrent": True}]},
                {"label": "❚❚", "method": "animate", "args": [[None], animate]},
            ],
        }],
    )
    fig.write_html(str(path), include_plotlyjs=True, full_html=True, auto_play=False,
                   default_width="100%", default_height="96vh",
                   config={"responsive": True, "displaylogo": False})


__all__ = ["write_html"]
