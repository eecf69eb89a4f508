"""Lazy access to the modules componentize-py generates (`wit_world`,
`componentize_py_types`).

They exist only while `componentize-py componentize` builds the component (or
when `wasmon_sdk.testing` installs stand-ins), so nothing here imports them at
module load: pure helpers stay usable in native unit tests.
"""

import importlib


def imports(name):
    """`wit_world.imports.<name>`: `types`, `host`, `http`, `redis`, `sql`, `storage`, `rabbitmq`."""
    return importlib.import_module("wit_world.imports." + name)


def types():
    return imports("types")


def host():
    return imports("host")


def world():
    return importlib.import_module("wit_world")


def err_class():
    """componentize-py's `Err` exception (the error case of a WIT `result`)."""
    return importlib.import_module("componentize_py_types").Err
