"""The Python templates (host/templates/python) render as `wasmon plugin new`
renders them (placeholders in contents and names, plus the vendored SDK),
and each generated project's own unit test passes natively.

The full path (`plugin new`, `plugin build`, `plugin check`, install into a
host) is tests/it/authoring.rs; this one needs only python3.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
TEMPLATES = os.path.join(ROOT, "host", "templates", "python")
SDK = os.path.join(ROOT, "plugins", "sdk-python", "wasmon_sdk")
KINDS = ("collector", "rule", "sink")


def render(kind, name, dest):
    values = {"name": name, "project": os.path.basename(dest), "world": kind, "wit_version": "0.2.0",
              "sdk_path": ""}

    def substitute(text):
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        return text

    for src in (os.path.join(TEMPLATES, "_shared"), os.path.join(TEMPLATES, kind)):
        for folder, _, files in os.walk(src):
            for file in files:
                path = os.path.join(folder, file)
                out = os.path.join(dest, substitute(os.path.relpath(path, src)))
                os.makedirs(os.path.dirname(out), exist_ok=True)
                with open(path, encoding="utf-8") as f:
                    text = substitute(f.read())
                left = re.search(r"\{\{[a-z_]+\}\}", text)
                if left:
                    raise AssertionError(f"{path}: unknown placeholder {left.group(0)}")
                with open(out, "w", encoding="utf-8") as f:
                    f.write(text)
    os.makedirs(os.path.join(dest, "wit"))
    shutil.copy(os.path.join(ROOT, "wit", "0.2.0", "plugin.wit"), os.path.join(dest, "wit", "plugin.wit"))
    shutil.copytree(SDK, os.path.join(dest, "wasmon_sdk"), ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


class TemplatesTest(unittest.TestCase):
    def test_every_kind_renders_and_its_unit_test_passes(self):
        for kind in KINDS:
            with self.subTest(kind=kind), tempfile.TemporaryDirectory() as tmp:
                dest = os.path.join(tmp, f"my-{kind}")
                render(kind, f"my_{kind}", dest)
                files = sorted(os.listdir(dest))
                for expected in ("app.py", f"my_{kind}.toml", "pyproject.toml", "requirements.txt",
                                 "test_app.py", "README.md", ".gitignore", "wit", "wasmon_sdk"):
                    self.assertIn(expected, files)
                with open(os.path.join(dest, "pyproject.toml")) as f:
                    pyproject = f.read()
                self.assertIn(f'[tool.wasmon]\nname = "my_{kind}"\nworld = "{kind}"', pyproject)
                with open(os.path.join(dest, f"my_{kind}.toml")) as f:
                    manifest = f.read()
                self.assertIn(f'kind = "{kind}"', manifest)
                memory = re.search(r'^memory_limit = "(\d+)MiB"', manifest, re.M)
                self.assertTrue(memory and int(memory.group(1)) >= 16, "Python needs memory_limit >= 16MiB")
                with open(os.path.join(dest, "requirements.txt")) as f:
                    self.assertIn("componentize-py==0.25.1", f.read())
                run = subprocess.run([sys.executable, "-m", "unittest", "-v"], cwd=dest,
                                     capture_output=True, text=True, timeout=120)
                self.assertEqual(run.returncode, 0, f"{kind}:\n{run.stdout}{run.stderr}")
                self.assertRegex(run.stderr, r"Ran [1-9]\d* tests?")


if __name__ == "__main__":
    unittest.main()
