"""The one walk of an IDC tree, shared by :func:`load_idc` and ``idcclf split``.

Only ``<root>/<patient>/<class>/*.png`` is listed, never deeper, so symbolic-link
cycles cannot make a walk loop. See ``docs/loaders.md`` for what the walk costs.
"""

from __future__ import annotations

import os
from array import array
from pathlib import Path
from typing import Any

from ._base import NAME_PATTERN, NAME_RE, Patch, is_ignored, os_reason

#: A file that could not be used: (path relative to the root, reason).
Bad = tuple[str, str]


class Folder:
    """The ``*.png`` files directly in one folder, sorted by name.

    ``sizes`` and ``mtimes`` are None when the files were listed without a stat;
    ``dir_mtime`` is the folder's own mtime.
    """

    __slots__ = ("names", "sizes", "mtimes", "dir_mtime")

    def __init__(
        self,
        names: list[str],
        sizes: list[int] | None = None,
        mtimes: list[int] | None = None,
        dir_mtime: int = 0,
    ) -> None:
        order = sorted(range(len(names)), key=names.__getitem__)
        self.names = [names[i] for i in order]
        self.sizes = None if sizes is None else [sizes[i] for i in order]
        self.mtimes = None if mtimes is None else [mtimes[i] for i in order]
        self.dir_mtime = dir_mtime

    def __len__(self) -> int:
        return len(self.names)


def _is_png(name: str) -> bool:
    return name[-4:].lower() == ".png" and name[0] != "."


def _list_plain_pngs(target: int | str) -> list[str] | None:
    """Names of the ``*.png`` in a folder if all are plain files, else None."""
    # The common case, in comprehensions: a third faster than the loop of scan_pngs.
    try:
        with os.scandir(target) as it:
            pngs = [e for e in it if e.name[-4:].lower() == ".png" and e.name[0] != "."]
        names = [e.name for e in pngs if e.is_file()]
    except OSError:
        return None
    return names if len(names) == len(pngs) else None


def scan_pngs(dirpath: str, stat_files: bool, unreadable: list[Bad]) -> Folder:
    """The non-hidden ``*.png`` files directly in a folder, with size and mtime if asked.

    Entries that cannot be inspected (a symlink loop, a dangling or forbidden target)
    are appended to ``unreadable`` as ``(name, reason)``.
    """
    # Scanning through a directory fd lets each stat resolve just the file name.
    use_fd = os.scandir in os.supports_fd and hasattr(os, "O_DIRECTORY")
    fd = os.open(dirpath, os.O_RDONLY | os.O_DIRECTORY) if use_fd else None
    target = fd if fd is not None else dirpath
    names: list[str] = []
    sizes: list[int] = []
    mtimes: list[int] = []
    try:
        dir_mtime = os.stat(target).st_mtime_ns
        plain = None if stat_files else _list_plain_pngs(target)
        if plain is not None:
            return Folder(plain, dir_mtime=dir_mtime)
        with os.scandir(target) as it:
            for e in it:
                if not _is_png(e.name):
                    continue
                try:
                    if not e.is_file():
                        if e.is_symlink() and not e.is_dir():
                            unreadable.append((e.name, "broken symbolic link"))
                        continue
                    if stat_files:
                        st = e.stat()
                        sizes.append(st.st_size)
                        mtimes.append(st.st_mtime_ns)
                except OSError as exc:
                    unreadable.append((e.name, os_reason(exc)))
                    continue
                names.append(e.name)
    finally:
        if fd is not None:
            os.close(fd)
    if stat_files:
        return Folder(names, sizes, mtimes, dir_mtime)
    return Folder(names, dir_mtime=dir_mtime)


def scan_top(dirpath: str, unreadable: list[Bad]) -> tuple[list[str], Folder]:
    """Sub-folders (sorted) and ``*.png`` files of a root or patient folder."""
    dirs: list[str] = []
    names: list[str] = []
    sizes: list[int] = []
    mtimes: list[int] = []
    with os.scandir(dirpath) as it:
        for e in it:
            if is_ignored(e.name):
                continue
            try:
                if e.is_dir():
                    dirs.append(e.name)
                elif e.name[-4:].lower() == ".png" and e.is_file():
                    st = e.stat()
                    names.append(e.name)
                    sizes.append(st.st_size)
                    mtimes.append(st.st_mtime_ns)
                elif e.name[-4:].lower() == ".png" and e.is_symlink():
                    unreadable.append((e.name, "broken symbolic link"))
            except OSError as exc:
                unreadable.append((e.name, os_reason(exc)))
    dirs.sort()
    return dirs, Folder(names, sizes, mtimes)


def check_root(path: str | os.PathLike[str]) -> Path:
    """The resolved root folder; FileNotFoundError/NotADirectoryError naming it."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"IDC data folder {root}: no such directory")
    if not root.is_dir():
        raise NotADirectoryError(f"IDC data path {root}: not a directory")
    return root.resolve()


def _class_folders_only(root: Path, dirs: list[str]) -> bool:
    """Whether the root's sub-folders are class folders: 0 and/or 1, and no patient's.

    A folder named 0 or 1 that holds a 0/ or 1/ folder is a patient's (such ids do
    not occur in the public set, but a test tree may use them).
    """
    if not dirs or not set(dirs) <= {"0", "1"}:
        return False
    return not any((root / d / c).is_dir() for d in dirs for c in ("0", "1"))


class PatchTree:
    """Every ``.png`` under one root (of the selected patients), listed once.

    Two layouts: ``"patients"`` (``<root>/<patient>/<0|1>/``, the public set) and
    ``"classes"`` (``<root>/<0|1>/``, the parts ``idcclf split`` writes), taken only
    when the root's sub-folders are ``0`` and/or ``1`` and nothing else, and hold no
    class folders themselves. Created with
    the root's own listing (and, for ``"classes"``, its class folders); :meth:`select`
    then lists the class folders of the patients to load. With ``stat_files`` each
    file's size and mtime are read too (one stat per file).
    """

    def __init__(self, root: Path, stat_files: bool = True) -> None:
        self.root = root
        self.stat_files = stat_files
        #: (path relative to root, reason) of entries that could not be listed.
        self.unreadable: list[Bad] = []
        try:
            dirs, root_pngs = scan_top(str(root), self.unreadable)
        except OSError as exc:
            raise PermissionError(
                f"cannot list the IDC data folder {root}: {exc.strerror or exc}"
            ) from None
        self.layout = "classes" if _class_folders_only(root, dirs) else "patients"
        self.patients: list[str] = []
        # .png files outside any class folder, keyed by their folder relative to root
        # ("" for the root itself), and the contents of every class folder, keyed by
        # (patient folder, class folder); the patient folder is "" in "classes".
        self.misplaced: dict[str, Folder] = {"": root_pngs} if root_pngs else {}
        self.folders: dict[tuple[str, str], Folder] = {}
        if self.layout == "patients":
            self.available = dirs
        else:
            self._scan_classes("", dirs)
            names = (n for f in self.folders.values() for n in f.names)
            self.available = sorted({m["patient"] for m in map(NAME_RE.fullmatch, names) if m})

    def folder_of(self, patient: str) -> Path:
        """The folder holding a patient's patches."""
        return self.root / patient if self.layout == "patients" else self.root

    def select(self, patients: list[str] | None) -> None:
        """List the class folders of ``patients`` (None: every patient)."""
        self.patients = self.available if patients is None else sorted(set(patients))
        if self.layout == "patients":
            for p in self.patients:
                self._scan_patient(p)
        self.unreadable.sort()

    def _scan_patient(self, p: str) -> None:
        found: list[Bad] = []
        try:
            class_dirs, pngs = scan_top(os.path.join(self.root, p), found)
        except OSError as exc:
            self.unreadable.append((p, os_reason(exc, "cannot list folder")))
            return
        self.unreadable += [(f"{p}/{n}", r) for n, r in found]
        if pngs:
            self.misplaced[p] = pngs
        self._scan_classes(p, class_dirs)

    def _scan_classes(self, p: str, class_dirs: list[str]) -> None:
        """List the class folders ``class_dirs`` of patient folder ``p`` ("": the root)."""
        for c in class_dirs:
            rel = f"{p}/{c}" if p else c
            found: list[Bad] = []
            try:
                files = scan_pngs(os.path.join(self.root, rel), self.stat_files, found)
            except OSError as exc:
                self.unreadable.append((rel, os_reason(exc, "cannot list folder")))
                continue
            self.unreadable += [(f"{rel}/{n}", r) for n, r in found]
            if files or found:
                self.folders[p, c] = files

    def is_empty(self) -> bool:
        return not self.folders and not self.misplaced and not self.unreadable

    def hash_into(self, h: Any) -> None:
        """Feed what the cache depends on, in sorted order, to ``h``.

        That is every .png's relative path, plus its size and mtime when files were
        stat'ed, else the mtime of its folder, and every entry that could not be read.
        """
        groups = [(f"{d}/" if d else "", f) for d, f in sorted(self.misplaced.items())]
        groups += [(f"{p}/{c}/" if p else f"{c}/", f) for (p, c), f in sorted(self.folders.items())]
        for prefix, f in groups:
            h.update(f"\n[{prefix}]\n".encode("utf-8", "surrogateescape"))
            h.update("\n".join(f.names).encode("utf-8", "surrogateescape"))
            if f.sizes is not None and f.mtimes is not None:
                h.update(array("q", f.sizes).tobytes())
                h.update(array("q", f.mtimes).tobytes())
            else:
                h.update(array("q", [f.dir_mtime]).tobytes())
        for rel, reason in self.unreadable:
            h.update(f"\n[unreadable]{rel}\t{reason}".encode("utf-8", "surrogateescape"))

    def candidates(self) -> tuple[list[Patch], list[Bad]]:
        """Check every file name against its folders.

        Returns the good patches in row order and the bad files (full paths), sorted.
        """
        good: list[Patch] = []
        bad: list[Bad] = list(self.unreadable)
        expected = "<patient>/<0|1>/" if self.layout == "patients" else "<0|1>/"
        for d, files in self.misplaced.items():
            prefix = f"{d}/" if d else ""
            reason = f"not inside a {expected} folder"
            bad.extend((f"{prefix}{n}", reason) for n in files.names)
        check = _FolderCheck(str(self.root), good, bad)
        if self.layout == "classes" and self.patients != self.available:
            check.selected = set(self.patients)
        for (p, c), files in sorted(self.folders.items()):
            check(p, c, files)
        good = _leave_out_contradictions(self.root, good, bad)
        good.sort()
        return good, sorted((str(self.root / rel), reason) for rel, reason in bad)


def _leave_out_contradictions(root: Path, good: list[Patch], bad: list[Bad]) -> list[Patch]:
    """Move every patch whose patient and (x, y) also come with the other label to ``bad``."""
    by_place: dict[tuple[str, int, int], list[Patch]] = {}
    for c in good:
        by_place.setdefault((c.patient, c.x, c.y), []).append(c)
    contradicted = set()
    for (patient, x, y), same in by_place.items():
        if len({c.label for c in same}) < 2:
            continue
        for c in same:
            others = ", ".join(str(root / o.relpath) for o in same if o.label != c.label)
            reason = (
                f"contradictory labels: the same patch (patient {patient!r}, x={x}, y={y}) "
                f"is also in {others}"
            )
            bad.append((c.relpath, reason))
            contradicted.add(c)
    return [c for c in good if c not in contradicted] if contradicted else good


class _FolderCheck:
    """Sorts the files of class folders into ``good`` and ``bad``."""

    def __init__(self, root: str, good: list[Patch], bad: list[Bad]) -> None:
        self.root, self.good, self.bad = root, good, bad
        #: In the "classes" layout, the patients to keep (None: all).
        self.selected: set[str] | None = None

    def __call__(self, p: str, c: str, files: Folder) -> None:
        """Check class folder ``c`` of patient folder ``p`` ("": the patient is in the names)."""
        folder = f"{p}/{c}" if p else c
        if c not in ("0", "1"):
            reason = f"class folder {c!r} is not '0' or '1'"
            self.bad.extend((f"{folder}/{n}", reason) for n in files.names)
            return
        label = int(c)
        # Without a stat, empty files are caught when decoded.
        sizes = files.sizes if files.sizes is not None else [1] * len(files.names)
        for name, size in zip(files.names, sizes, strict=True):
            m = NAME_RE.fullmatch(name)
            if m is not None and self.selected is not None and m["patient"] not in self.selected:
                continue
            if m is None:
                reason = f"file name does not match {NAME_PATTERN!r}"
            elif int(m["label"]) != label:
                reason = f"file name says class{m['label']} but the file is in class folder {c!r}"
            elif p and m["patient"] != p:
                reason = (
                    f"file name says patient {m['patient']!r} but the file is in "
                    f"patient folder {p!r}"
                )
            elif size == 0:
                reason = "empty file (0 bytes)"
            else:
                x, y = int(m["x"]), int(m["y"])
                self.good.append(Patch(m["patient"], label, name, x, y, folder, self.root))
                continue
            self.bad.append((f"{folder}/{name}", reason))


def _roots(path: Any) -> list[Path]:
    """The checked, resolved root folders of ``path`` (one path or a sequence of them)."""
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    if not paths:
        raise ValueError("path is empty: pass an IDC root folder or a list of them")
    roots = [check_root(p) for p in paths]
    twice = sorted({str(r) for r in roots if roots.count(r) > 1})
    if twice:
        raise ValueError(f"the same IDC root folder is given twice: {', '.join(twice)}")
    return roots


def _select_patients(trees: list[PatchTree], patients: list[str] | None) -> list[PatchTree]:
    """Give each tree its share of ``patients``; drop the trees that have none."""
    owner: dict[str, PatchTree] = {}
    for tree in trees:
        for p in tree.available:
            if p in owner:
                raise ValueError(
                    f"patient {p} is under two roots, in {owner[p].folder_of(p)} and in "
                    f"{tree.folder_of(p)}: a patient's patches must all be under one root"
                )
            owner[p] = tree
    if patients is None:
        return trees
    unknown = sorted(set(patients) - set(owner))
    if unknown:
        available = sorted(owner)
        raise ValueError(
            f"patients not found under {', '.join(str(t.root) for t in trees)}: "
            f"{', '.join(unknown)}. Available patients ({len(available)}): {', '.join(available)}"
        )
    return [t for t in trees if set(patients) & set(t.available)]


def _check_not_empty(tree: PatchTree) -> None:
    if tree.is_empty():
        root = tree.root
        raise ValueError(
            f"no IDC patches found under {root} (expected {root}/<patient>/<0|1>/<name>.png, "
            f"or {root}/<0|1>/<name>.png)"
        )


def scan_roots(
    path: Any, patients: list[str] | None = None, *, stat_files: bool
) -> list[PatchTree]:
    """Walk one IDC root or several: the trees holding the selected patients.

    Raises a clear error for a missing root, a root given twice, a patient under two
    roots, unknown patients or a root without any patch.
    """
    trees = [PatchTree(root, stat_files) for root in _roots(path)]
    trees = _select_patients(trees, patients)
    for tree in trees:
        tree.select(None if patients is None else [p for p in patients if p in tree.available])
        _check_not_empty(tree)
    return trees


def scan_tree(
    path: str | os.PathLike[str], patients: list[str] | None = None, *, stat_files: bool
) -> PatchTree:
    """Walk one IDC root (see :func:`scan_roots`)."""
    (tree,) = scan_roots(path, patients, stat_files=stat_files)
    return tree
