"""wasmon_sdk.testing's stand-ins must match what componentize-py generates
for wit/0.2.0 (class names, record fields in order, enum members, function
names), or an app that passes its native test could fail in the component.

Needs componentize-py: `$WASMON_TEST_PY_TOOLS/componentize-py` (the CI
venv's bin dir, set by scripts/test.sh), else `componentize-py` on PATH.
Without either the test is skipped, saying so.
"""

import ast
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
WIT = os.path.normpath(os.path.join(HERE, "..", "..", "..", "wit", "0.2.0"))

from wasmon_sdk import testing  # noqa: E402


def componentize_py():
    tools = os.environ.get("WASMON_TEST_PY_TOOLS")
    if tools:
        path = os.path.join(tools, "componentize-py")
        if not os.path.exists(path):
            raise AssertionError(f"WASMON_TEST_PY_TOOLS={tools} has no componentize-py")
        return path
    return shutil.which("componentize-py")


def shape(source):
    """{class: fields or members, function: None} of a generated module."""
    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef):
            if any(ast.unparse(b) == "Protocol" for b in node.bases):
                continue
            out[node.name] = [s.target.id if isinstance(s, ast.AnnAssign) else s.targets[0].id
                              for s in node.body if isinstance(s, (ast.AnnAssign, ast.Assign))]
        elif isinstance(node, ast.FunctionDef):
            out[node.name] = None
    return out


def stub_shape(module):
    import dataclasses
    import enum
    out = {}
    for name, value in vars(module).items():
        if name.startswith("_") or getattr(value, "__module__", None) != module.__name__:
            continue
        if isinstance(value, type) and issubclass(value, enum.Enum):
            out[name] = [m.name for m in value]
        elif dataclasses.is_dataclass(value):
            out[name] = [f.name for f in dataclasses.fields(value)]
        elif callable(value) and not isinstance(value, type):
            out[name] = None
    return out


@unittest.skipUnless(componentize_py(), "componentize-py not found (set WASMON_TEST_PY_TOOLS or put it on PATH)")
class BindingsMatchTest(unittest.TestCase):
    def test_stand_ins_match_generated_bindings(self):
        testing.install()
        with tempfile.TemporaryDirectory() as tmp:
            for world in ("collector", "rule", "sink"):
                out = os.path.join(tmp, world)
                subprocess.run([componentize_py(), "-d", WIT, "-w", world, "bindings", out],
                               check=True, capture_output=True)
                with open(os.path.join(out, "wit_world", "__init__.py")) as f:
                    world_src = f.read()
                methods = [n.name for c in ast.parse(world_src).body if isinstance(c, ast.ClassDef)
                           for n in c.body if isinstance(n, ast.FunctionDef)]
                export = {"collector": export_names("collect", "on_message"),
                          "rule": export_names("evaluate"), "sink": export_names("deliver")}[world]
                self.assertEqual(sorted(methods), sorted(export), world)
                for name in ("types", "host", "http", "redis", "sql", "storage", "rabbitmq"):
                    with open(os.path.join(out, "wit_world", "imports", name + ".py")) as f:
                        generated = shape(f.read())
                    stub = stub_shape(sys.modules["wit_world.imports." + name])
                    self.assertEqual(stub, generated, f"wit_world.imports.{name} ({world})")


def export_names(*names):
    return ["init", *names]


if __name__ == "__main__":
    unittest.main()
