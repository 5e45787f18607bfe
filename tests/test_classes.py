import json

import pytest

from magnipath._errors import AnnotationError
from magnipath.classes import ClassMap, ClassSpec


def test_parse_forms(tmp_path):
    a = ClassMap.parse("Stroma=1, Carcinoma=2")
    assert a.names == ["Stroma", "Carcinoma"] and a.index_of("Carcinoma") == 2
    assert a.n_classes == 3
    b = ClassMap.parse("Background,Stroma,TLS")
    assert [c.index for c in b.classes] == [0, 1, 2]
    p = tmp_path / "classes.json"
    p.write_text(json.dumps(b.to_dict()))
    assert ClassMap.parse(str(p)) == b
    p.write_text(json.dumps({"TLS": 1, "Other": 0}))
    assert ClassMap.parse(str(p)).names == ["Other", "TLS"]


def test_lookup_lists_every_missing_name():
    cm = ClassMap.parse("Stroma=0,TLS=1")
    assert cm.lookup(["TLS", "Stroma", "TLS"]) == [1, 0, 1]
    with pytest.raises(AnnotationError, match=r"\['Necrosis', 'Tumor'\]"):
        cm.lookup(["Tumor", "TLS", "Necrosis"])


@pytest.mark.parametrize("specs", [
    (ClassSpec("A", 0, (0, 0, 0)), ClassSpec("A", 1, (0, 0, 0))),
    (ClassSpec("A", 0, (0, 0, 0)), ClassSpec("B", 0, (0, 0, 0))),
    (ClassSpec("A", 255, (0, 0, 0)),),
])
def test_invalid_maps_are_refused(specs):
    with pytest.raises(AnnotationError):
        ClassMap(specs)


def test_bad_index_and_unreadable_file(tmp_path):
    with pytest.raises(AnnotationError, match="integer"):
        ClassMap.parse("Stroma=one")
    bad = tmp_path / "c.json"
    bad.write_text("{not json")
    with pytest.raises(AnnotationError, match=r"c\.json"):
        ClassMap.parse(str(bad))
