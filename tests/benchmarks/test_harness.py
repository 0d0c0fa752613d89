"""The benchmarks' shared harness (benchmarks/harness.py): its options, its table, its closing JSON line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import harness

DOC = """How fast something goes, measured.

More about it, not in the description.
"""


def test_the_json_line_is_the_last_line_and_parses(capsys):
    print("a caption")
    harness.table([("ours", 1_000, 0.5)], {"run": "<10", "rows": ">8,", "seconds": ">8.2f"})
    harness.finish({"rows_per_s": 2000, "ratio_vs_2019": 12.5, "shards_equal": None})
    lines = capsys.readouterr().out.splitlines()
    assert json.loads(lines[-1]) == {"rows_per_s": 2000, "ratio_vs_2019": 12.5, "shards_equal": None}
    assert len(lines) == 4


def test_the_table_prints_aligned_columns(capsys):
    harness.table(
        [
            ("full history", 4_124_160, 25.61, 161_260.4),
            ("2019 method", 40_000, 2.0, None, "  (a note)"),
            ("  a step", 3.25),
            "a line of its own",
        ],
        {"run": "<14", "readings": ">10,", "seconds": ">8.1f", "readings/s": ">11,.0f"},
    )
    header, full, old, step, line = capsys.readouterr().out.splitlines()
    assert header == f"{'run':<14} {'readings':>10} {'seconds':>8} {'readings/s':>11}"
    assert full == f"{'full history':<14} {'4,124,160':>10} {'25.6':>8} {'161,260':>11}"
    assert old == f"{'2019 method':<14} {'40,000':>10} {'2.0':>8} {'':>11}   (a note)"
    assert step == f"{'  a step':<14} {'3.25':>10}"  # a short row fills the first columns, then stops
    assert line == "a line of its own"
    # The right-aligned columns end where their headings end, one space apart.
    assert len(header) == len(full) == 46
    for end in (25, 34, 46):
        assert all(row[end - 1] != " " and (end == 46 or row[end] == " ") for row in (header, full))


def test_the_database_option_defaults_from_database_url(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://bench@db.example:5433/figures")
    url = harness.options(DOC).parse_args([]).database_url
    assert (url.drivername, url.username, url.host, url.port, url.database) == (
        "postgresql+psycopg2",
        "bench",
        "db.example",
        5433,
        "figures",
    )
    given = harness.options(DOC).parse_args(["--database-url", "postgresql://other@127.0.0.1/x"])
    assert given.database_url.username == "other"
    monkeypatch.delenv("DATABASE_URL")
    local = harness.options(DOC).parse_args([]).database_url
    assert local.render_as_string() == harness.LOCAL_DATABASE.replace("postgresql", "postgresql+psycopg2")
    assert not hasattr(harness.options(DOC, database=False).parse_args([]), "database_url")


def test_a_database_url_that_is_not_one_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        harness.options(DOC).parse_args(["--database-url", "mysql://someone@host/db"])
    assert "--database-url" in capsys.readouterr().err


def test_size_options_keep_their_names_defaults_and_types():
    parser = harness.options(
        DOC, database=False, nightly_sensors=(6500, "sensors of the nightly run"), seconds=15.0, skip=False
    )
    assert parser.description == "How fast something goes, measured."
    args = parser.parse_args([])
    assert (args.nightly_sensors, args.seconds, args.skip) == (6500, 15.0, False)
    args = parser.parse_args(["--nightly-sensors", "10", "--seconds", "2.5", "--skip"])
    assert (args.nightly_sensors, args.seconds, args.skip) == (10, 2.5, True)
    assert "sensors of the nightly run" in parser.format_help()


def test_rounds_and_medians():
    calls = []
    seconds, last = harness.rounds(3, lambda: calls.append(1) or len(calls))
    assert len(seconds) == 3 and all(s >= 0 for s in seconds) and last == 3
    assert harness.median([3.0, 1.0, 2.0]) == 2.0
    assert harness.medians([{"a": 1, "b": 5}, {"a": 3, "b": 4}, {"a": 2, "b": 6}]) == {"a": 2, "b": 5}


def test_a_scratch_folder_lies_under_var_and_goes_afterwards(monkeypatch, tmp_path):
    monkeypatch.setattr(harness, "ROOT", tmp_path)
    with harness.scratch_folder("fetch") as folder:
        assert Path(folder).parent == tmp_path / "var"
        assert Path(folder).name.startswith("bench_fetch_")
    assert not Path(folder).exists()
