"""Cost of MagniPath's kill-safe QuPath write steps that run in Python (issue 17).

Measures, on data files of a given number of objects:

* the full structural check of a ``.qpdata`` (qupath_bridge._integrity.check_data_file),
  which runs before every QuPath reader and on every staged file;
* the quick check made for every image when a project is opened (header + end marker);
* a validated backup of the image folder, and the staged-file commit (fsync + rename).

Data files: tests/qupath_bridge/_jstream.py (QuPath's layout, each object a JSON string
plus a double[] block), and, with ``--java`` where a JDK is installed, a stream written
by ``java.io.ObjectOutputStream`` with Externalizable objects (UUID, metadata map,
double[] and a child each), closer to what QuPath writes.

Usage: python benchmarks/bench_qupath_integrity.py --objects 2000 20000 [--java] [--repeat 3]
Prints one JSON line per case.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "qupath_bridge")]

from _jstream import make_objects, write_qpdata  # noqa: E402

from qupath_bridge import _atomic, _backups  # noqa: E402
from qupath_bridge._integrity import DATA_FILE, check_data_file  # noqa: E402

JAVA = r"""
package qupath.lib.objects.hierarchy;
import java.io.*; import java.util.*;
public class PathObjectHierarchy implements Serializable {
  public static class Obj implements Externalizable {
    String name; double[] xy = new double[10]; List<Obj> ch = new ArrayList<>();
    Map<String,String> meta = new LinkedHashMap<>();
    public Obj() {} Obj(String n) { name = n; }
    public void writeExternal(ObjectOutput o) throws IOException { o.writeInt(2);
      o.writeObject(name); o.writeObject(xy); o.writeObject(UUID.randomUUID());
      o.writeObject(meta); o.writeInt(ch.size()); for (Obj c : ch) o.writeObject(c); }
    public void readExternal(ObjectInput i) {}
  }
  Obj root = new Obj("root");
  public static void main(String[] a) throws Exception {
    int n = Integer.parseInt(a[1]);
    try (ObjectOutputStream out = new ObjectOutputStream(new BufferedOutputStream(
        new FileOutputStream(a[0])))) {
      out.writeUTF("Data file version 3"); out.writeObject("{}");
      out.writeObject(Locale.getDefault(Locale.Category.FORMAT));
      PathObjectHierarchy h = new PathObjectHierarchy();
      for (int i = 0; i < n; i++) { Obj o = new Obj("o" + i); o.meta.put("magnipath", "p");
        h.root.ch.add(o); }
      out.writeObject(h); out.writeObject(new HashMap<String,Object>()); out.writeObject("EOF");
    }
  }
}
"""


def _java_file(folder: Path, n: int) -> Path | None:
    if shutil.which("javac") is None:
        return None
    src = folder / "qupath" / "lib" / "objects" / "hierarchy" / "PathObjectHierarchy.java"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_text(JAVA)
    subprocess.run(["javac", "-d", str(folder / "cls"), str(src)], check=True)
    out = folder / f"java-{n}.qpdata"
    subprocess.run(["java", "-cp", str(folder / "cls"),
                    "qupath.lib.objects.hierarchy.PathObjectHierarchy", str(out), str(n)],
                   check=True)
    return out


def _best(f, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def _measure(kind: str, n: int, f: Path, tmp: Path, repeat: int) -> dict:
    d = tmp / f"{kind}-{n}" / "data" / "1"
    d.mkdir(parents=True)
    shutil.copy(f, d / DATA_FILE)
    size = (d / DATA_FILE).stat().st_size
    assert check_data_file(d / DATA_FILE).ok
    full = _best(lambda: check_data_file(d / DATA_FILE), repeat)
    quick = _best(lambda: check_data_file(d / DATA_FILE, full=False), repeat)
    backup = _best(lambda: _backups.make_backup(d, tmp / f"proj-{kind}-{n}", "1",
                                                reason="bench"), repeat)
    data = (d / DATA_FILE).read_bytes()

    def commit() -> None:
        staged = _atomic.staged_path(d / DATA_FILE)
        staged.write_bytes(data)
        _atomic.commit(staged, d / DATA_FILE)

    return {"file": kind, "objects": n, "bytes": size, "full_check_s": round(full, 4),
            "full_check_MB_per_s": round(size / full / 1e6, 1), "quick_check_s": round(quick, 6),
            "validated_backup_s": round(backup, 4),
            "write_fsync_rename_s": round(_best(commit, repeat), 4),
            "python": platform.python_version()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--java", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=ROOT / "benchmarks") as tmp:
        tmp = Path(tmp)
        for n in args.objects:
            files = {"jstream": write_qpdata(tmp / f"js-{n}.qpdata", make_objects(n))}
            if args.java and (jf := _java_file(tmp, n)) is not None:
                files["java"] = jf
            for kind, f in files.items():
                print(json.dumps(_measure(kind, n, f, tmp, args.repeat)), flush=True)

if __name__ == "__main__":
    main()
