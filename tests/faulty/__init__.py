"""Deliberately faulty connectors, and fair ones: the kit must fail the first kind on
exactly the requirement each breaks, and pass the second.

Each factory has the kit's factory signature ``(options, codec) -> Connector`` and
wraps or adjusts the reference connector; tests may use adapter internals here, the
kit may not. One module per requirement; each factory is registered where it is
defined (``registry.breaks``, ``registry.refused`` and ``registry.fair``), and ``registry.load_all()``
gathers them.
"""
