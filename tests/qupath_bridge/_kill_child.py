"""Child process of the kill tests (test_kill.py): one MagniPath write, to be killed at any instant.

``python _kill_child.py atomic DATA_DIR N``: replace ``DATA_DIR/data.qpdata`` by a file of
``N`` objects through :func:`qupath_bridge._atomic.replace_data_file`, written slowly.

``python _kill_child.py bridge PROJECT FLAVOUR PRED.geojson``: ``Project.write_predictions``
(image 0, as annotations: on 0.5 detections need the new marker of issue 13) against the
QuPath test double, as ``magnipath qupath import`` does.

Prints ``ready`` just before the write starts and ``done`` after it; the exit status of
``bridge`` follows the CLI (130 after Ctrl-C, 143 after SIGTERM).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]


def atomic(data_dir: str, n: int) -> None:
    from _jstream import make_objects, write_qpdata

    from qupath_bridge._atomic import replace_data_file

    print("ready", flush=True)
    replace_data_file(Path(data_dir), lambda p: write_qpdata(
        p, make_objects(n, prefix="new"), chunk=512, pause=0.002))
    print("done", flush=True)


def bridge(project: str, flavour: str, preds: str, signal_self: int | None = None) -> int:
    from _qupath_double import installed

    from qupath_bridge.geojson import read_geojson
    from qupath_bridge.project import Project

    objs = read_geojson(preds)
    try:
        with installed(flavour) as ns, Project(project, "r+") as p:
            if signal_self is not None:  # the signal arrives as QuPath starts writing the data
                write = ns.PathIO.writeImageData

                def write_after_signal(file, image_data) -> None:
                    os.kill(os.getpid(), signal_self)
                    write(file, image_data)

                ns.PathIO.writeImageData = write_after_signal
            print("ready", flush=True)
            p.write_predictions(0, objs, as_type="annotation")
            print("done", flush=True)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "atomic":
        atomic(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(bridge(sys.argv[2], sys.argv[3], sys.argv[4],
                        int(sys.argv[5]) if len(sys.argv) > 5 else None))
