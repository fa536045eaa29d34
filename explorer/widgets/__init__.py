"""The live explorer's widgets (ipywidgets + Bokeh through jupyter_bokeh): `Explorer` composes them."""

from explorer.widgets.app import Explorer

__all__ = ["Explorer"]
