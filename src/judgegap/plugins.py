"""Plugins: users add datasets, backends and experiments without editing judgegap.

Three ways, all ending in an ordinary import whose module registers names with
``register_dataset`` / ``BACKENDS.register`` / ``EXPERIMENTS.register``:

- ``plugins: [my_pkg.my_module]`` in a config (imported before the config is validated,
  so the names it registers can be used in the same config);
- ``judgegap run --include path/to/file.py`` (a file that is not an installed module);
- an entry point in the ``judgegap.plugins`` group of an installed package, loaded
  whenever judgegap starts.

Every failure is one line naming the plugin: a module that does not exist, one that
raises on import, a name registered twice.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from judgegap.errors import ConfigError, JudgegapError

ENTRY_POINT_GROUP = "judgegap.plugins"
_loaded: dict[str, ModuleType] = {}
_entry_points_done = False


def _fail(where: str, what: str, exc: BaseException) -> ConfigError:
    if isinstance(exc, JudgegapError):
        return ConfigError(f"{where}: {what}: {exc}")
    first = str(exc).splitlines()[0] if str(exc) else ""
    return ConfigError(f"{where}: {what} failed: {type(exc).__name__}: {first}")


def load_module(name: str, where: str = "plugins") -> ModuleType:
    """Import an installed plugin module by dotted name (once)."""
    if name in _loaded:
        return _loaded[name]
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin and f"file:{Path(spec.origin).resolve()}" in _loaded:
        mod = _loaded[f"file:{Path(spec.origin).resolve()}"]  # already imported from its file: same module
        _loaded[name] = mod
        return mod
    try:
        mod = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise ConfigError(f"{where}: plugin module {name!r} not found (is it installed, or on PYTHONPATH?)"
                              ) from None
        raise _fail(where, f"importing plugin {name!r}", exc) from None
    except Exception as exc:  # noqa: BLE001 - any error inside a user's module
        raise _fail(where, f"importing plugin {name!r}", exc) from None
    _loaded[name] = mod
    return mod


def load_file(path: Path | str, where: str = "--include") -> ModuleType:
    """Import a plugin from a .py file (once per resolved path)."""
    p = Path(path).expanduser()
    key = f"file:{p.resolve()}"
    if key in _loaded:
        return _loaded[key]
    if not p.is_file() or p.suffix != ".py":
        raise ConfigError(f"{where}: plugin file not found or not a .py file: {p}")
    for mod in list(sys.modules.values()):  # already imported by module name: do not run it twice
        if getattr(mod, "__file__", None) and Path(mod.__file__).resolve() == p.resolve():
            _loaded[key] = mod
            return mod
    mod_name = p.stem if p.stem not in sys.modules else f"judgegap_plugin_{abs(hash(str(p.resolve())))}"
    spec = importlib.util.spec_from_file_location(mod_name, p)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = mod
    try:
        spec.loader.exec_module(mod)  # type: ignore[union-attr]
    except Exception as exc:  # noqa: BLE001
        del sys.modules[mod_name]
        raise _fail(where, f"importing plugin file {p}", exc) from None
    _loaded[key] = mod
    return mod


def load_plugins(names: list[str] | tuple[str, ...], where: str = "plugins") -> None:
    for i, n in enumerate(names):
        if not isinstance(n, str) or not n:
            raise ConfigError(f"{where}[{i}]: expected a module name, got {n!r}")
        if n.endswith(".py"):
            load_file(n, f"{where}[{i}]")
        else:
            load_module(n, f"{where}[{i}]")


def load_entry_points() -> None:
    """Import every installed package's ``judgegap.plugins`` entry point (once)."""
    global _entry_points_done
    if _entry_points_done:
        return
    _entry_points_done = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:  # noqa: BLE001
            raise _fail(f"entry point {ep.name!r} ({ep.value})", "loading plugin", exc) from None
        if callable(obj) and not isinstance(obj, ModuleType):
            try:
                obj()
            except Exception as exc:  # noqa: BLE001
                raise _fail(f"entry point {ep.name!r} ({ep.value})", "running plugin", exc) from None
