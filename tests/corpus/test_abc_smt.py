"""Reading ABC and the SMT-ABC round trip, on generated multi-voice tunes and on every bundled tune."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpus.abc import AbcError, parse_tune, split_tunes
from corpus.smt import from_smt, to_abc, to_smt

FIGURE_1 = """X:1
M:4/4
L:1/8
K:C
V:1
"G" G2 G2 G4 | "C" e2 e2 e4 | "D7"
d2 d2 d4 | "G" g2 g2 g4 |]
V:2
"C" C2 C2 C4 | "G7" B2 B2 B4 | "C"
c2 c2 c4 | "G" d2 d2 d4 |]"""


def bar_texts(tune):
    return [[b.text for b in v.bars] for v in tune.voices]


def test_figure_1_becomes_four_synchronised_groups():
    smt = to_smt(parse_tune(FIGURE_1))
    assert smt.splitlines()[:4] == ["X:1", "M:4/4", "L:1/8", "K:C"]
    groups = smt.splitlines()[4:]
    assert groups[0] == '<|>[V:1]"G" G2 G2 G4|[V:2]"C" C2 C2 C4|<|>'
    assert groups[2] == '<|>[V:1]"D7" d2 d2 d4|[V:2]"C" c2 c2 c4|<|>'  # a bar split across lines
    assert groups[3].endswith('[V:2]"G" d2 d2 d4|]<|>')
    assert len(groups) == 4


def test_bar_lines_inside_chords_decorations_graces_fields_and_comments_do_not_cut_bars():
    tune = parse_tune(
        'X:3\nK:D\n"A|B" !trill!A +fermata+B {g|a}c [K:G] [CEG]2 % a | comment\nd :|2 e ||: f :: g |] [|] a |1 b'
    )
    first = tune.voices[0].bars[0]
    assert first.music == '"A|B" !trill!A +fermata+B {g|a}c [K:G] [CEG]2 d' and first.barline == ":|2"
    # A bar line with no music before it ("[|]" after "|]") opens the next bar.
    assert [b.text for b in tune.voices[0].bars][1:] == ["e||:", "f::", "g|]", "[|] a|1", "b"]


def test_voices_alternating_block_by_block_and_inline_voice_fields():
    text = "X:4\nM:2/4\nK:C\nV:1\nab|cd|\nV:2\nAB|CD|\nV:1\nef|\nV:2\nEF|\n[V:1]gg|[V:2]GG|"
    tune = parse_tune(text)
    assert [v.voice_id for v in tune.voices] == ["1", "2"]
    assert bar_texts(tune) == [["ab|", "cd|", "ef|", "gg|"], ["AB|", "CD|", "EF|", "GG|"]]


def test_lyrics_stay_with_their_voice_and_body_fields_become_inline():
    tune = parse_tune("X:5\nK:G\nV:1\nGAB|c2d|\nw: la la la | lo lo\nK:D\nde|\nV:2\nB,2|C2|D2|\nW: last words")
    v1, v2 = tune.voices
    assert v1.bars[1].attached == ("w: la la la | lo lo",)
    assert v1.bars[2].music == "[K:D] de"
    assert v2.bars[-1].attached == ("W: last words",)
    again = from_smt(to_smt(tune))
    assert again.voices == tune.voices


def test_tunes_with_different_bar_counts_are_refused_by_name():
    tune = parse_tune("X:6\nK:C\nV:1\nab|cd|\nV:2\nAB|")
    with pytest.raises(AbcError, match=r"different bar counts \(V:1 2, V:2 1\)"):
        to_smt(tune)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('"unclosed chord symbol ab|', "unbalanced quote"),
        ("{ab c|", "unbalanced grace-note brace"),
        ("[CEG ab|", "unbalanced chord bracket"),
        ("ab] c|", "unbalanced ']'"),
        ("V:9\nab|", "undeclared voice V:9"),
        ("ab\x00cd|", "binary junk"),
    ],
)
def test_malformed_tunes_raise_with_a_reason(body, reason):
    with pytest.raises(AbcError, match=reason):
        parse_tune(f"X:7\nV:1\nK:C\n{body}" if body.startswith("V:9") else f"X:7\nK:C\n{body}")


def test_split_tunes_reports_numbers_and_lines():
    tunes = list(split_tunes("% file comment\nX:1\nK:C\nabc|\n\nX:2\nT:two\nK:D\ndef|\n"))
    assert [(t.number, t.line) for t in tunes] == [("1", 2), ("2", 6)]


# ---- generated multi-voice tunes -------------------------------------------------

NOTE = st.sampled_from(["A", "B,", "c", "d'", "e2", "f/2", "g3/2", "z", "^F", "_B", "=c", "(3abc", "a>b", "x"])
EXTRA = st.sampled_from(['"Am"', '"^text|x"', "!trill!", "+fermata+", "{ga}", "[CEG]", "[K:D]", "[M:3/4]", "~", ".", "(", ")", "-"])
BARLINE = st.sampled_from(["|", "||", "|]", "[|", "|:", ":|", "::", ":|:", "|1", ":|2", ".|", "[|]"])


@st.composite
def bar_music(draw):
    items = draw(st.lists(st.one_of(NOTE, NOTE, EXTRA), min_size=1, max_size=6))
    items.append(draw(NOTE))  # every bar has at least one note
    sep = draw(st.sampled_from(["", " ", "  "]))
    return sep.join(items)


@st.composite
def multi_voice_tune(draw):
    n_voices = draw(st.integers(1, 4))
    n_bars = draw(st.integers(1, 8))
    ids = [str(i + 1) for i in range(n_voices)]
    header = ["X:1", "T:Generated", "M:4/4", "L:1/8"] + [f"V:{v}" for v in ids] + ["K:C"]
    voices = {v: [(draw(bar_music()), draw(BARLINE)) for _ in range(n_bars)] for v in ids}
    lyrics = {v: draw(st.sets(st.integers(0, n_bars - 1), max_size=2)) for v in ids}
    block = draw(st.integers(1, n_bars))  # voices alternate every `block` bars
    per_line = draw(st.integers(1, 4))
    body: list[str] = []
    for start in range(0, n_bars, block):
        for v in ids:
            body.append(f"V:{v}")
            chunk = voices[v][start : start + block]
            line: list[str] = []
            for offset, (music, barline) in enumerate(chunk):
                line.append(f"{music} {barline}")
                if len(line) == per_line or (start + offset) in lyrics[v] or offset == len(chunk) - 1:
                    body.append(" ".join(line))
                    line = []
                    if (start + offset) in lyrics[v]:
                        body.append(f"w: syl-la-ble {start + offset}")
    return "\n".join(header + body)


@settings(max_examples=300, deadline=None)
@given(multi_voice_tune())
def test_smt_round_trip_on_generated_multi_voice_tunes(text):
    tune = parse_tune(text)
    smt = to_smt(tune)
    back = from_smt(smt)
    assert back.header == tune.header
    assert [v.bars for v in back.voices] == [v.bars for v in tune.voices]
    assert to_smt(back) == smt
    reparsed = parse_tune(to_abc(back))
    assert bar_texts(reparsed) == bar_texts(tune)
    assert [[b.attached for b in v.bars] for v in reparsed.voices] == [[b.attached for b in v.bars] for v in tune.voices]
