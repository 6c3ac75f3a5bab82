"""3D maps of a run and its estimates (``twin render``, and ``twin evaluate``'s
``map.png``/``map.html``).

Rooms, each importing only those below it (and never ``twin.evaluate``):

* :mod:`twin.maps.style`: constants, colours, :class:`~twin.maps.style.PointStatus`;
* :mod:`twin.maps.geometry`: triangles, cameras, scene cropping and outlines, RIS tile
  rectangles;
* :mod:`twin.maps.data`: :class:`~twin.maps.data.MapData` (everything a map draws) built
  from a run, its estimates and their matchings (:mod:`twin.scoring`), and the layers of
  one view;
* :mod:`twin.maps.png` (Open3D, matplotlib) and :mod:`twin.maps.html` (plotly): drawing;
* :mod:`twin.maps.render`: ``twin render`` itself (:func:`~twin.maps.render.render_map`,
  :func:`~twin.maps.render.load_map`).
"""
