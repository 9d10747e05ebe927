"""CDT expansion checked cell by cell against the table of SPEC section 4.5."""

import pytest
import torch

from fewshot_ner.cdt import CDT, FROM, TO, abstract_cell
from fewshot_ner.labels import bio_labels

# SPEC 4.5, verbatim: concrete transition -> abstract [from, to] cell.
SPEC_TABLE = {
    ("O", "O"): ("O", "O"),
    ("O", "B-x"): ("O", "sB"),
    ("O", "I-x"): ("O", "sI"),
    ("B-x", "B-x"): ("B", "sB"),
    ("B-x", "I-x"): ("B", "sI"),
    ("I-x", "B-x"): ("I", "sB"),
    ("I-x", "I-x"): ("I", "sI"),
    ("B-x", "B-y"): ("B", "dB"),
    ("B-x", "I-y"): ("B", "dI"),
    ("I-x", "B-y"): ("I", "dB"),
    ("I-x", "I-y"): ("I", "dI"),
    ("B-x", "O"): ("B", "O"),
    ("I-x", "O"): ("I", "O"),
}


@pytest.mark.parametrize(("pair", "cell"), SPEC_TABLE.items())
def test_abstract_cell_matches_spec(pair, cell):
    assert abstract_cell(*pair) == cell


def test_expansion_cell_by_cell():
    cdt = CDT()
    with torch.no_grad():
        cdt.abstract.copy_(torch.arange(15.0).view(3, 5))  # every abstract cell its own value
        cdt.start.copy_(torch.tensor([100.0, 101.0, 102.0]))
        cdt.end.copy_(torch.tensor([200.0, 201.0, 202.0]))
    labels = bio_labels(("PER", "LOC", "ORG"))
    trans, start, end = cdt(labels)
    assert trans.shape == (7, 7)

    def generic(label: str, other: str) -> str:
        # name a concrete label by its relation to the previous one: x = same type, y = another
        return label if label == "O" else f"{label[0]}-{'x' if label[2:] == other else 'y'}"

    for i, prev in enumerate(labels):
        for j, cur in enumerate(labels):
            key = (generic(prev, prev[2:]), generic(cur, prev[2:] if prev != "O" else cur[2:]))
            f, t = SPEC_TABLE[key]
            assert trans[i, j].item() == FROM.index(f) * 5 + TO.index(t), (prev, cur)
        assert start[i].item() == 100 + FROM.index(prev[0])
        assert end[i].item() == 200 + FROM.index(prev[0])


def test_expansion_is_differentiable_and_shared():
    cdt = CDT()
    labels = bio_labels(("PER", "LOC"))
    trans, start, end = cdt(labels)
    (trans.sum() + start.sum() + end.sum()).backward()
    # O->O once; B->sB: B-PER->B-PER and B-LOC->B-LOC; B->dB: B-PER->B-LOC and B-LOC->B-PER
    grad = cdt.abstract.grad
    assert grad[FROM.index("O"), TO.index("O")] == 1
    assert grad[FROM.index("B"), TO.index("sB")] == 2 and grad[FROM.index("B"), TO.index("dB")] == 2
    assert grad.sum() == 25  # every one of the 5x5 concrete cells lands in exactly one abstract cell
    assert cdt.start.grad.tolist() == [1.0, 2.0, 2.0]


def test_bad_label_is_rejected():
    with pytest.raises(ValueError, match="is not O, B-x or I-x"):
        CDT()(("O", "S-PER"))
