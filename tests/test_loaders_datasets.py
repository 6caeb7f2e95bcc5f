"""Last.fm and MovieLens parsers on tiny handwritten copies of their formats, and (marker
``datasets``) on the real files, with the counts their SOURCE.md verifies."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from kgrec.graph.snapshot import build_snapshot
from kgrec.loaders import lastfm, movielens


def _write(path: Path, data: str | bytes) -> None:
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))


def make_lastfm(d: Path) -> Path:
    """Last.fm's quirks in miniature: CRLF and LF, Latin-1 tags, a tagged artist missing from
    artists.dat, friendships listed both ways, an outlier year, and two bad rows."""
    d.mkdir(parents=True, exist_ok=True)
    _write(d / "artists.dat", "id\tname\turl\tpictureURL\n1\tBjörk\thttp://www.last.fm/music/Bj%C3%B6rk\t\n"
           "2\tMALICE MIZER\thttp://www.last.fm/music/MALICE+MIZER\thttp://x/1.jpg\n")
    _write(d / "tags.dat", b"tagID\ttagValue\r\n1\tmetal\r\n2\tm\xfasica\r\n3\tunused\r\n")
    _write(d / "user_artists.dat", "userID\tartistID\tweight\r\n2\t1\t13883\r\n2\t2\t11690\r\n"
           "3\t1\tlots\r\n3\t2\t7\r\n")
    _write(d / "user_friends.dat", "userID\tfriendID\r\n2\t3\r\n3\t2\r\n3\t3\r\n")
    _write(d / "user_taggedartists.dat", "userID\tartistID\ttagID\tday\tmonth\tyear\r\n"
           "2\t1\t1\t1\t4\t2009\r\n2\t1\t2\t1\t4\t2009\r\n3\t1\t1\t9\t12\t1956\r\n2\t99\t2\t1\t1\t2010\r\n"
           "3\t99\t1\t1\t13\t2010\r\n")
    return d


def test_lastfm_quirks(tmp_path: Path) -> None:
    loaded = lastfm.load(make_lastfm(tmp_path / "lfm"))
    r, report = loaded.records, loaded.report
    assert sorted((x.file, x.line, x.reason) for x in report.rejects) == [
        ("user_artists.dat", 4, "weight"),
        ("user_friends.dat", 4, "self_loop"),
        ("user_taggedartists.dat", 6, "date"),
    ]
    items = {i.id: i for i in r.items}
    assert items["1"].title == "Björk" and items["1"].attrs == {"url": "http://www.last.fm/music/Bj%C3%B6rk"}
    assert items["99"].title is None  # tagged but absent from artists.dat: kept, title unknown
    assert any("1 artists referenced by 1 rows are absent" in n for n in report.notes)
    assert {t.id: t.name for t in r.tags} == {"1": "metal", "2": "música", "3": "unused"}
    assert {(x.user, x.item, x.weight) for x in r.interactions} == {("2", "1", 13883.0), ("2", "2", 11690.0),
                                                                     ("3", "2", 7.0)}
    ts = {(t.user, t.item, t.tag): t.ts for t in r.taggings}
    assert ts["2", "1", "1"] == int(datetime(2009, 4, 1, tzinfo=UTC).timestamp())
    assert ts["3", "1", "1"] == int(datetime(1956, 12, 1, tzinfo=UTC).timestamp())  # outlier year kept
    assert {(x.item, x.tag): x.count for x in r.item_tags} == {("1", "1"): 2.0, ("1", "2"): 1.0, ("99", "2"): 1.0}
    assert {(f.user, f.friend) for f in r.follows} == {("2", "3"), ("3", "2")}
    assert any("fully symmetric" in n for n in report.notes)
    assert [u.id for u in r.users] == ["2", "3"]
    assert build_snapshot(r).counts["items"] == 3


def make_ml100k(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    _write(d / "u.data", "1\t10\t5\t881250949\n1\t20\t3\t881250950\n2\t10\t4\t881250951\n2\t10\t2\t881250952\n"
           "2\t20\tx\t881250953\n")
    genres = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
              "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
              "War", "Western"]
    _write(d / "u.genre", "".join(f"{g}|{i}\n" for i, g in enumerate(genres)) + "\n")
    flags10 = ["0"] * 19
    flags10[1] = flags10[5] = "1"
    flags20 = ["0"] * 19
    flags20[0] = "1"
    _write(d / "u.item", (f"10|Amélie (2001)|01-Jan-2001||http://imdb/x|{'|'.join(flags10)}\r\n"
                          f"20|Untitled|||http://imdb/y|{'|'.join(flags20)}\n").encode("latin-1"))
    _write(d / "u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n")
    return d


def test_movielens_100k(tmp_path: Path) -> None:
    loaded = movielens.load(make_ml100k(tmp_path / "ml-100k"))
    r, report = loaded.records, loaded.report
    assert report.notes[0] == "layout: MovieLens 100k"
    assert sorted((x.file, x.line, x.reason) for x in report.rejects) == [("u.data", 4, "duplicate"),
                                                                         ("u.data", 5, "weight")]
    inter = {(x.user, x.item): x for x in r.interactions}
    assert inter["1", "10"].weight == 5.0 and inter["1", "10"].rating == 5.0 and inter["1", "10"].ts == 881250949
    assert inter["2", "10"].rating == 4.0  # the first of the duplicates wins
    items = {i.id: i for i in r.items}
    assert items["10"].title == "Amélie (2001)" and items["10"].attrs["release_date"] == "01-Jan-2001"
    assert {(x.item, x.tag, x.count) for x in r.item_tags} == {("10", "genre:action", 1.0),
                                                               ("10", "genre:comedy", 1.0)}
    assert {t.id: (t.name, t.kind) for t in r.tags} == {"genre:action": ("Action", "genre"),
                                                        "genre:comedy": ("Comedy", "genre")}
    users = {u.id: u for u in r.users}
    assert users["1"].attrs == {"age": 24, "gender": "M", "occupation": "technician", "zip": "85711"}


def test_movielens_1m(tmp_path: Path) -> None:
    d = tmp_path / "ml-1m"
    d.mkdir()
    _write(d / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::1193::::978300000\n")
    _write(d / "movies.dat", "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
           "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
           "5::Señor (1999)::Comedy\n".encode("latin-1"))
    _write(d / "users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n")
    loaded = movielens.load(d)
    r = loaded.records
    assert [(x.line, x.reason) for x in loaded.report.rejects] == [(3, "weight")]
    assert {i.id: i.title for i in r.items}["5"] == "Señor (1999)"
    assert {x.tag for x in r.item_tags if x.item == "661"} == {"genre:animation", "genre:children's",
                                                               "genre:musical"}
    users = {u.id: u.attrs for u in r.users}
    assert users["1"] == {"gender": "F", "age": 1, "occupation": "K-12 student", "zip": "48067"}
    assert users["2"]["occupation"] == "self-employed"


def make_ml_latest(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    _write(d / "ratings.csv", "userId,movieId,rating,timestamp\r\n1,1,4.0,964982703\r\n1,2,0.5,964981247\r\n"
           "2,1,5.0,964982224\r\n2,3,-1,964982224\r\n")
    _write(d / "movies.csv", 'movieId,title,genres\r\n1,Toy Story (1995),Adventure|Animation|Children\r\n'
           '2,"American President, The (1995)",Comedy|Drama|Romance\r\n'
           "3,Some Doc (2015),(no genres listed)\r\n4,Unrated (2000),Drama\r\n")
    _write(d / "tags.csv", "userId,movieId,tag,timestamp\r\n2,1,Pixar,1445714994\r\n2,1,pixar ,1445714995\r\n"
           "3,2,Highly  Quotable,1445714996\r\n1,4,pixar,1445714997\r\n4,1,,1\r\n")
    _write(d / "links.csv", "movieId,imdbId,tmdbId\r\n1,0114709,862\r\n2,0112346,\r\n")
    return d


def test_movielens_latest_small(tmp_path: Path) -> None:
    loaded = movielens.load(make_ml_latest(tmp_path / "ml-latest-small"))
    r, report = loaded.records, loaded.report
    assert sorted((x.file, x.line, x.reason) for x in report.rejects) == [
        ("ratings.csv", 5, "weight"),
        ("tags.csv", 3, "duplicate"),  # "pixar " is "Pixar" once normalised
        ("tags.csv", 6, "empty_id"),
    ]
    items = {i.id: i for i in r.items}
    assert items["2"].title == "American President, The (1995)"
    assert items["1"].attrs == {"imdb_id": "0114709", "tmdb_id": "862"} and items["2"].attrs == {"imdb_id": "0112346"}
    genre_items = {(x.item, x.tag) for x in r.item_tags if x.tag.startswith("genre:")}
    assert ("3", "genre:(no genres listed)") not in genre_items
    assert not any(x.item == "3" for x in r.item_tags)
    tags = {t.id: t for t in r.tags}
    assert "genre:(no genres listed)" not in tags
    assert tags["pixar"].name == "Pixar" and tags["pixar"].kind == "tag"
    assert tags["highly quotable"].name == "Highly  Quotable"
    assert {(t.user, t.item, t.tag) for t in r.taggings} == {("2", "1", "pixar"), ("3", "2", "highly quotable"),
                                                             ("1", "4", "pixar")}
    assert {(x.item, x.tag): x.count for x in r.item_tags}["1", "pixar"] == 1.0
    assert "3" in {u.id for u in r.users}  # a tagger without ratings is still a user
    assert any("have no ratings" in n for n in report.notes)


def test_movielens_unknown_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a MovieLens folder"):
        movielens.load(tmp_path)


# -- the real datasets --------------------------------------------------------------------------

@pytest.mark.datasets
def test_real_lastfm_counts(datasets_dir: str) -> None:
    loaded = lastfm.load(Path(datasets_dir) / "lastfm-2k")
    assert loaded.report.rejects == []
    assert loaded.report.rows == {"artists.dat": 17_632, "tags.dat": 11_946, "user_artists.dat": 92_834,
                                  "user_taggedartists.dat": 186_479, "user_friends.dat": 25_434}
    counts = build_snapshot(loaded.records).counts
    assert counts["users"] == 1_892
    assert counts["items"] == 17_632 + 390
    assert counts["tags"] == 11_946
    assert counts["interactions"] == 92_834
    assert counts["taggings"] == 186_479
    assert counts["follows"] == 25_434
    assert any(n.startswith("390 artists referenced by 1,538 rows") for n in loaded.report.notes)
    assert any("25,434 of them have their reverse (fully symmetric)" in n for n in loaded.report.notes)
    assert len({x.tag for x in loaded.records.item_tags}) == 9_749
    years = {datetime.fromtimestamp(t.ts, UTC).year for t in loaded.records.taggings if t.ts is not None}
    assert {1956, 1957, 1979} <= years


@pytest.mark.datasets
def test_real_ml_latest_small_counts(datasets_dir: str) -> None:
    loaded = movielens.load(Path(datasets_dir) / "ml-latest-small")
    assert loaded.report.rejects == []
    counts = build_snapshot(loaded.records).counts
    assert counts["users"] == 610
    assert counts["items"] == 9_742
    assert counts["interactions"] == 100_836
    assert counts["taggings"] == 3_683
    assert len({x.item for x in loaded.records.interactions}) == 9_724
    assert len({t.user for t in loaded.records.taggings}) == 58
    assert len({t.item for t in loaded.records.taggings}) == 1_572
    genres = [t for t in loaded.records.tags if t.kind == "genre"]
    assert len(genres) == 19  # 20 labels minus "(no genres listed)"
    assert any(n == "18 movies have no ratings" for n in loaded.report.notes)
