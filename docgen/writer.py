"""Writing the generated folder so that incremental Sphinx builds stay incremental."""

from __future__ import annotations

from pathlib import Path


class PageWriter:
    """Writes files under the generated folder, touching only those whose content changed,
    and removes the files a generation did not write."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.written: set[Path] = set()

    def write(self, rel: str, text: str) -> Path:
        """Write ``text`` to ``rel`` (under the root) unless it is already there."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        self.written.add(path)
        return path

    def keep(self, paths: set[Path] | list[Path]) -> None:
        """Count files written by other means (copied plots) as written."""
        self.written.update(paths)

    def prune(self) -> None:
        """Remove every file not written since the writer was made, and empty folders."""
        for path in sorted(self.root.rglob("*"), reverse=True):
            if path.is_file() and path not in self.written:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
