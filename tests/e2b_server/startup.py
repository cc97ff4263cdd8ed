"""Start-up code of every kernel of the local E2B server: what E2B's template adds to IPython.

The code-interpreter template copies start-up scripts into IPython's profile
(``template/startup_scripts`` of e2b-dev/code-interpreter), and the SDK's
``Result`` fields depend on them: ``data`` (``e2b/data``, a pandas DataFrame
as lists of column values), ``chart`` (``e2b/chart``, a matplotlib figure
described by E2B's own ``e2b_charts`` package, when it is installed), ``json``
(lists and dicts shown as ``application/json`` too, numpy values included),
and an image saved to a path with PIL is displayed as well (PIL's external
viewers are switched off: there is no display). This file gives a kernel the
same behaviour, run through ``IPKernelApp.exec_files``; it leaves no name in
the user's namespace.
"""


def _e2b_local_startup() -> None:
    import sys
    from typing import Any

    from IPython import get_ipython
    from IPython.core.formatters import BaseFormatter, JSONFormatter
    from traitlets import ObjectName, Unicode

    shell = get_ipython()
    if shell is None:
        return
    formatter = shell.display_formatter

    class DataFrameColumns(BaseFormatter):  # type: ignore[misc]
        format_type = Unicode("e2b/data")
        print_method = ObjectName("_repr_e2b_data_")
        _return_type = (dict, str)

        def __call__(self, obj: Any) -> Any:
            pandas = sys.modules.get("pandas")  # no DataFrame exists before pandas is imported
            if pandas is None or not isinstance(obj, pandas.DataFrame):
                return super().__call__(obj)
            stamp = pandas.Timestamp
            return {
                name: [v.isoformat() if isinstance(v, stamp) else v for v in values]
                for name, values in obj.to_dict(orient="list").items()
            }

    class FigureChart(BaseFormatter):  # type: ignore[misc]
        format_type = Unicode("e2b/chart")
        print_method = ObjectName("_repr_e2b_chart_")
        _return_type = (dict, str)

        def __call__(self, obj: Any) -> Any:
            if "matplotlib" not in sys.modules:
                return super().__call__(obj)
            from matplotlib.figure import Figure

            if not isinstance(obj, Figure):
                return super().__call__(obj)
            try:
                from e2b_charts import chart_figure_to_dict
            except ImportError:
                return None
            try:
                return chart_figure_to_dict(obj)
            except Exception:  # noqa: BLE001 - a figure it cannot describe is an empty chart
                return {}

    def plain(obj: Any) -> Any:
        """``obj`` as JSON values (numpy ones included); TypeError when it has none."""
        try:
            import orjson
        except ImportError:
            import json

            def numpy(value: Any) -> Any:
                if hasattr(value, "tolist"):
                    return value.tolist()
                raise TypeError(f"{type(value).__name__} is not JSON")

            return json.loads(json.dumps(obj, default=numpy))
        option = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
        return orjson.loads(orjson.dumps(obj, option=option))

    class PlainJSON(JSONFormatter):  # type: ignore[misc]
        def __call__(self, obj: Any) -> Any:
            if isinstance(obj, (list, dict)):
                try:
                    return plain(obj), {"expanded": True}
                except (TypeError, ValueError):
                    pass
            return super().__call__(obj)

    formatter.formatters["e2b/data"] = DataFrameColumns(parent=formatter)
    formatter.formatters["e2b/chart"] = FigureChart(parent=formatter)
    formatter.formatters["application/json"] = PlainJSON(parent=formatter)

    try:
        from PIL import Image, ImageShow
    except ImportError:
        return
    from IPython.display import display

    ImageShow.UnixViewer.show_file = lambda self, path, **options: 0
    save = Image.Image.save

    def save_and_show(image: Any, fp: Any, format: Any = None, **params: Any) -> None:  # noqa: A002
        if isinstance(fp, str):
            display(image)
        save(image, fp, format, **params)

    Image.Image.save = save_and_show


_e2b_local_startup()
del _e2b_local_startup
